package proof

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

// fixture is an index whose server signed a checkpoint of main: a
// published version and an audit record to prove.
type fixture struct {
	w     *indextest.World
	audit string // the audit record's id
	note  []byte // the signed checkpoint, as the server keeps it
	c     checkpoint.Checkpoint
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	f := &fixture{w: w, audit: w.Audit("acme/fastjson", "1.0.0")}
	w.Publish(indextest.Package{Name: "acme/other", Version: "2.0.0"})
	f.note, f.c = f.sign(t, w.Checkpointer)
	if err := os.WriteFile(ServedCheckpoint(w.Repo), f.note, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// sign signs a checkpoint of main's log as it is, with s.
func (f *fixture) sign(t *testing.T, s keys.Signer) ([]byte, checkpoint.Checkpoint) {
	t.Helper()
	if _, err := f.w.Repo.Verified(f.w.Ctx); err != nil {
		t.Fatal(err)
	}
	st, err := f.w.Repo.StoreOf(f.w.Repo.Main())
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Map()
	if err != nil {
		t.Fatal(err)
	}
	c := checkpoint.Checkpoint{Origin: checkpoint.Origin(f.w.Intro), Size: m.Size, Root: m.Root, Map: m.Map.Root(), Head: st.Head(), Time: time.Now().UTC().Truncate(time.Second)}
	msg, err := checkpoint.Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg, c
}

// logKey is the fixture's log key as a reader names it.
func (f *fixture) logKey(t *testing.T) LogKey {
	t.Helper()
	k, err := ParseLogKey(checkpoint.VKey(checkpoint.Origin(f.w.Intro), f.w.Checkpointer.Public()))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// cosigner is a witness written elsewhere: torchwood's cosignature/v1
// signer.
type cosigner struct {
	s    *torchwood.CosignatureSigner
	vkey string
}

func newCosigner(t *testing.T, name string) cosigner {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	s, err := torchwood.NewCosignatureSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	return cosigner{s, s.Verifier().String()}
}

// cosign adds the cosigners' signature lines to a signed note.
func cosign(t *testing.T, msg []byte, cs ...cosigner) []byte {
	t.Helper()
	text, sigs, _ := bytes.Cut(msg, []byte("\n\n"))
	for _, c := range cs {
		n, err := note.Sign(&note.Note{Text: string(text) + "\n"}, c.s)
		if err != nil {
			t.Fatal(err)
		}
		_, sig, _ := bytes.Cut(n, []byte("\n\n"))
		sigs = append(sigs, sig...)
	}
	return append(append(text, "\n\n"...), sigs...)
}

func policy(t *testing.T, quorum int, cs ...cosigner) witness.Policy {
	t.Helper()
	var vkeys []string
	for _, c := range cs {
		vkeys = append(vkeys, c.vkey)
	}
	p, err := witness.NewPolicy(vkeys, quorum)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withCheckpoint returns the proof with its checkpoint replaced.
func withCheckpoint(t *testing.T, p *translog.Proof, msg []byte) []byte {
	t.Helper()
	q := *p
	q.Checkpoint = msg
	return q.Marshal()
}

// A replica proves a record against its server's checkpoint; the proof
// verifies with the repository's own keys and with the log's vkey alone,
// and says what it proved.
func TestFromRepoVerify(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	made, err := FromRepo(ctx, f.w.Repo, f.audit[:12])
	if err != nil {
		t.Fatal(err)
	}
	if made.ID != f.audit || made.Source != "this repository's server" || made.Checkpoint != f.c {
		t.Fatalf("made %+v", made)
	}
	data := made.Proof.Marshal()
	trust, err := TrustOf(ctx, f.w.Repo)
	if err != nil {
		t.Fatal(err)
	}
	for name, trust := range map[string]Trust{
		"the repository's keys": trust,
		"the log's vkey":        {LogKeys: []LogKey{f.logKey(t)}},
		"the vkey, pinned":      {LogKeys: []LogKey{f.logKey(t)}, Introduction: f.w.Intro},
	} {
		p, err := Verify(data, trust)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Record == nil || p.Record.ID != f.audit || p.Record.Kind != "audited" || p.Subject != "package acme/fastjson" ||
			p.Checkpoint != f.c || p.Key != keys.ID(f.w.Checkpointer.Public()) || !p.Unwitnessed || len(p.Cosignatures) != 0 {
			t.Fatalf("%s: proven %+v", name, p)
		}
		if !strings.HasSuffix(p.Entry.Path, "/"+f.audit+".json") || p.Index < 0 || p.Index >= f.c.Size {
			t.Fatalf("%s: entry %+v at %d", name, p.Entry, p.Index)
		}
	}
}

// A light client proves a record from a server's tiles with no
// repository; the server's own repository proves it from its log against
// the checkpoint it served: both write the same bytes, and the proof
// verifies with the log's key.
func TestFromView(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	audit := w.Audit("acme/fastjson", "1.0.0")
	url := servertest.Serve(w)
	ctx := context.Background()
	v, err := (&light.Client{BaseURL: url, Introduction: w.Intro, StateDir: t.TempDir()}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	made, err := FromView(ctx, v, url, audit)
	if err != nil {
		t.Fatal(err)
	}
	if made.ID != audit || made.Source != "the server at "+url || made.Checkpoint != v.Checkpoint.Checkpoint {
		t.Fatalf("made %+v", made)
	}
	local, err := FromRepo(ctx, w.Repo, audit)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(local.Proof.Marshal(), made.Proof.Marshal()) {
		t.Fatalf("the server's repository and a light client prove the record differently:\n%s\n---\n%s", local.Proof.Marshal(), made.Proof.Marshal())
	}
	key, err := ParseLogKey(checkpoint.VKey(checkpoint.Origin(w.Intro), w.Checkpointer.Public()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Verify(made.Proof.Marshal(), Trust{LogKeys: []LogKey{key}, Introduction: w.Intro})
	if err != nil || p.Record.ID != audit {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
	if _, err := FromView(ctx, v, url, strings.Repeat("0", 64)); err == nil {
		t.Fatal("FromView of no record succeeded")
	}
}

// A record newer than every checkpoint the repository holds cannot be
// proved yet; a repository without checkpoints says how to get one.
func TestFromRepoNotCovered(t *testing.T) {
	f := newFixture(t)
	later := f.w.Audit("acme/other", "2.0.0")
	_, err := FromRepo(context.Background(), f.w.Repo, later)
	if !errors.Is(err, ErrNotCovered) || !strings.Contains(err.Error(), "wait for a checkpoint that covers it") {
		t.Fatalf("FromRepo of a record after the checkpoint = %v", err)
	}
	os.Remove(ServedCheckpoint(f.w.Repo))
	if _, err := FromRepo(context.Background(), f.w.Repo, f.audit); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("FromRepo without a checkpoint = %v", err)
	}
	if _, err := FromRepo(context.Background(), f.w.Repo, strings.Repeat("0", 64)); err == nil {
		t.Fatal("FromRepo of no record succeeded")
	}
}

// A checkpoint of another log (signed by the right key, but over a tree
// this replica does not compute) makes no proof.
func TestFromRepoOtherLog(t *testing.T) {
	f := newFixture(t)
	c := f.c
	c.Root[0] ^= 1
	msg, err := checkpoint.Sign(c, f.w.Checkpointer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ServedCheckpoint(f.w.Repo), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromRepo(context.Background(), f.w.Repo, f.audit); !errors.Is(err, ErrOtherLog) || !strings.Contains(err.Error(), "the log "+f.w.Repo.Main().LogDir()+" computes") {
		t.Fatalf("FromRepo against another log's checkpoint = %v", err)
	}
}

// Witnesses written elsewhere (torchwood's cosigner) cosign the
// checkpoint: a quorum met verifies and names them; a quorum not met, one
// cosignature repeated, or a forged one by a trusted witness is refused;
// an unknown witness's is ignored.
func TestVerifyWitnesses(t *testing.T) {
	f := newFixture(t)
	made, err := FromRepo(context.Background(), f.w.Repo, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2, w3, stranger := newCosigner(t, "w1.example"), newCosigner(t, "w2.example"), newCosigner(t, "w3.example"), newCosigner(t, "stranger.example")
	trust := Trust{LogKeys: []LogKey{f.logKey(t)}, Witnesses: policy(t, 2, w1, w2, w3)}

	both := cosign(t, f.note, w1, stranger, w3)
	p, err := Verify(withCheckpoint(t, made.Proof, both), trust)
	if err != nil {
		t.Fatal(err)
	}
	if p.Unwitnessed || p.Quorum != 2 || len(p.Cosignatures) != 2 || p.Cosignatures[0].Witness.Name != "w1.example" || p.Cosignatures[1].Witness.Name != "w3.example" {
		t.Fatalf("cosignatures %+v", p.Cosignatures)
	}

	one := cosign(t, f.note, w2, stranger)
	_, err = Verify(withCheckpoint(t, made.Proof, one), trust)
	var qe *witness.QuorumError
	if !errors.As(err, &qe) || !errors.Is(err, ErrRefused) || len(qe.Found) != 1 || qe.Found[0] != "w2.example" {
		t.Fatalf("quorum not met: %v", err)
	}

	// The same cosignature line twice counts once.
	twice := cosign(t, f.note, w1)
	line := twice[bytes.LastIndex(twice[:len(twice)-1], []byte("\n"))+1:]
	twice = append(twice, line...)
	if _, err := Verify(withCheckpoint(t, made.Proof, twice), trust); !errors.As(err, &qe) {
		t.Fatalf("one cosignature twice: %v", err)
	}

	// A trusted witness's line that does not verify is a forgery.
	forged := cosign(t, f.note, w1, w2)
	i := bytes.LastIndex(forged, []byte("— w2.example "))
	sig := forged[i+len("— w2.example "):]
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	raw[len(raw)-1] ^= 1
	forged = append(forged[:i+len("— w2.example ")], base64.StdEncoding.EncodeToString(raw)+"\n"...)
	if _, err := Verify(withCheckpoint(t, made.Proof, forged), trust); !errors.Is(err, ErrRefused) {
		t.Fatalf("a forged cosignature: %v", err)
	}
}

// Attacks on a proof: each alteration is refused, and the refusal says
// what was wrong. Each was watched to pass when the check it tests was
// taken out.
func TestVerifyTampered(t *testing.T) {
	f := newFixture(t)
	made, err := FromRepo(context.Background(), f.w.Repo, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	good := made.Proof
	w1, w2 := newCosigner(t, "w1.example"), newCosigner(t, "w2.example")
	cosigned := cosign(t, f.note, w1, w2)
	trust := Trust{LogKeys: []LogKey{f.logKey(t)}, Introduction: f.w.Intro, Witnesses: policy(t, 2, w1, w2)}
	if _, err := Verify(withCheckpoint(t, good, cosigned), trust); err != nil {
		t.Fatal(err)
	}
	x, err := ParseExtra(good)
	if err != nil {
		t.Fatal(err)
	}
	withExtra := func(y Extra) []byte {
		b, err := marshalExtra(y)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	extra := func(entry string, content []byte) []byte {
		y := x
		y.Entry, y.Content = entry, content
		return withExtra(y)
	}
	// The log's key holder signs the tree with another map root (one that
	// omits a record); witnesses, who check only the tree, cosign it.
	swapped := f.c
	swapped.Map[0] ^= 1
	swappedNote, err := checkpoint.Sign(swapped, f.w.Checkpointer)
	if err != nil {
		t.Fatal(err)
	}

	other, _ := checkpoint.Claimed(f.note)
	otherKey := indextest.NewSigner()
	stranger, err := checkpoint.Sign(other, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	anotherIndex := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name   string
		change func(p *translog.Proof, tr *Trust)
		want   string
	}{
		{"content", func(p *translog.Proof, tr *Trust) {
			p.Extra = extra(x.Entry, bytes.Replace(x.Content, []byte(`"`), []byte(`'`), 1))
		}, "the content's sha256 is"},
		{"content and entry's sha256", func(p *translog.Proof, tr *Trust) {
			e, _ := translog.ParseEntry([]byte(x.Entry))
			evil := bytes.Replace(x.Content, []byte(`"`), []byte(`'`), 1)
			p.Extra = extra(string(translog.NewEntry(e.Commit, e.Time, e.Path, evil).Text()), evil)
		}, "does not lead to the root"},
		{"entry's path", func(p *translog.Proof, tr *Trust) {
			p.Extra = extra(strings.Replace(x.Entry, "packages/", "packages/x", 1), x.Content)
		}, "does not lead to the root"},
		{"index", func(p *translog.Proof, tr *Trust) { p.Index-- }, "does not lead to the root"},
		{"path hash", func(p *translog.Proof, tr *Trust) { p.Path[0][0] ^= 1 }, "does not lead to the root"},
		{"checkpoint root", func(p *translog.Proof, tr *Trust) {
			lines := strings.SplitN(string(p.Checkpoint), "\n", 4)
			h, _ := base64.StdEncoding.DecodeString(lines[2])
			h[0] ^= 1
			lines[2] = base64.StdEncoding.EncodeToString(h)
			p.Checkpoint = []byte(strings.Join(lines, "\n"))
		}, "does not lead to the root"},
		{"checkpoint signed by a key not given", func(p *translog.Proof, tr *Trust) { p.Checkpoint = cosign(t, stranger, w1, w2) }, checkpoint.ErrUnsigned.Error()},
		{"no log key for the origin", func(p *translog.Proof, tr *Trust) {
			k := f.logKey(t)
			k.Origin = checkpoint.Origin(anotherIndex)
			tr.LogKeys, tr.Introduction = []LogKey{k}, ""
		}, "none of the 1 log key(s) given is for " + checkpoint.Origin(f.w.Intro)},
		{"another index", func(p *translog.Proof, tr *Trust) { tr.Introduction = anotherIndex }, "it proves a record of another index"},
		{"quorum not met", func(p *translog.Proof, tr *Trust) { p.Checkpoint = cosign(t, f.note, w2) }, "cosigned by 1 of the 2 trusted witnesses required"},
		{"the key not allowed then", func(p *translog.Proof, tr *Trust) {
			tr.MaySign = func(id string, c checkpoint.Checkpoint, witnessed bool) error { return fmt.Errorf("expired") }
		}, "by key " + keys.ID(f.w.Checkpointer.Public()) + ": expired"},
		{"map root swapped, checkpoint signed again", func(p *translog.Proof, tr *Trust) {
			p.Checkpoint = cosign(t, swappedNote, w1, w2)
		}, "is not the map leaf of its cairn-map " + hex.EncodeToString(swapped.Map[:]) + " and cairn-head " + f.c.Head + ": its inclusion path does not lead to the checkpoint's root"},
		{"map time", func(p *translog.Proof, tr *Trust) {
			y := x
			y.MapTime++
			p.Extra = withExtra(y)
		}, "its inclusion path does not lead to the checkpoint's root"},
		{"map path hash", func(p *translog.Proof, tr *Trust) {
			y := x
			y.MapPath = bytes.Clone(x.MapPath)
			y.MapPath[0] ^= 1
			p.Extra = withExtra(y)
		}, "its inclusion path does not lead to the checkpoint's root"},
		{"map path cut", func(p *translog.Proof, tr *Trust) {
			y := x
			y.MapPath = x.MapPath[:len(x.MapPath)-32]
			p.Extra = withExtra(y)
		}, "its inclusion path does not lead to the checkpoint's root"},
		{"map path not whole hashes", func(p *translog.Proof, tr *Trust) {
			y := x
			y.MapPath = x.MapPath[:len(x.MapPath)-1]
			p.Extra = withExtra(y)
		}, "not whole 32-byte hashes"},
		{"no map leaf", func(p *translog.Proof, tr *Trust) {
			p.Extra, _ = json.Marshal(map[string]any{"entry": x.Entry, "content": x.Content})
		}, "a proof made before map leaves were logged"},
		{"extra not written as cairn writes it", func(p *translog.Proof, tr *Trust) {
			p.Extra = append([]byte(" "), p.Extra...)
		}, "not written as cairn writes it"},
		{"extra not JSON", func(p *translog.Proof, tr *Trust) { p.Extra = []byte("entry") }, "extra data is not cairn's"},
		{"extra with another field", func(p *translog.Proof, tr *Trust) {
			p.Extra = append(bytes.TrimSuffix(withExtra(x), []byte("}")), `,"index":3}`...)
		}, "extra data is not cairn's"},
		{"extra with trailing data", func(p *translog.Proof, tr *Trust) { p.Extra = append(withExtra(x), " {}"...) }, "not written as cairn writes it"},
		{"checkpoint not a note", func(p *translog.Proof, tr *Trust) {
			p.Checkpoint = []byte(f.c.Text())
		}, "malformed offline proof: the proof's checkpoint: malformed checkpoint: not a signed note"},
		{"checkpoint not a cairn checkpoint", func(p *translog.Proof, tr *Trust) {
			p.Checkpoint = []byte("hello\n\n— o x\n")
		}, "malformed offline proof: the proof's checkpoint: malformed checkpoint"},
		{"malformed", func(p *translog.Proof, tr *Trust) { p.Index = -1 }, "malformed offline proof"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := translog.ParseProof(withCheckpoint(t, good, cosigned))
			if err != nil {
				t.Fatal(err)
			}
			tr := trust
			c.change(p, &tr)
			_, err = Verify(p.Marshal(), tr)
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Verify = %v\nwant a refusal saying %q", err, c.want)
			}
			if c.name != "malformed" && !bytes.Equal(re.Checkpoint, p.Checkpoint) {
				t.Fatalf("the refusal's evidence is %q, not the proof's checkpoint", re.Checkpoint)
			}
		})
	}
}

// A checkpoint key rotated out (a successor granted, then the key
// revoked at leaf R) still proves what it signed before: a tree of at most
// R leaves that the verifier's log holds, or (a verifier with no log) that
// its witness quorum cosigned. What the key signs after its revocation,
// and an old tree of its own making, are refused, saying why. Before
// revoked keys' checkpoints were placed in the log, the first two
// verifications failed (the key was not a log key any more).
func TestVerifyRotatedKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	made, err := FromRepo(ctx, f.w.Repo, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	data := made.Proof.Marshal()
	old := f.w.Checkpointer
	oldID := keys.ID(old.Public())
	next := indextest.NewSigner()
	f.w.Grant(next, "server", "checkpoint")
	revoked, err := author.RevokeKey(f.w.Ctx, f.w.Repo, oldID, "rotated", f.w.Root)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := TrustOf(ctx, f.w.Repo)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.w.Repo.StoreOf(f.w.Repo.Main())
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := Leaf(st, revoked.Paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if r < f.c.Size {
		t.Fatalf("the revocation is leaf %d, inside the checkpoint's %d leaves", r, f.c.Size)
	}

	// (a) The verifier's log holds the tree: the proof verifies.
	p, err := Verify(data, trust)
	if err != nil {
		t.Fatalf("a proof under a key rotated out since, whose tree the log holds: %v", err)
	}
	if p.Key != oldID {
		t.Fatalf("proven by key %s, want %s", p.Key, oldID)
	}

	// (b) A verifier with no log of its own (the keys and the
	// revocation's leaf as a light client proves them): the witness
	// quorum vouches for the tree; without it, refused.
	head, err := f.w.Repo.Verified(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := f.w.Repo.KeysGrantedEver(ctx, head.Head, "checkpoint")
	if err != nil || len(ks) != 2 {
		t.Fatalf("keys granted checkpoint, revoked ones included: %d, %v", len(ks), err)
	}
	for _, k := range ks {
		if err := k.PlaceRevocationInLog(st); err != nil {
			t.Fatal(err)
		}
		if k.ID == oldID && (k.RevokedLeaf != r || k.RevokedTime.IsZero()) {
			t.Fatalf("the revocation placed at leaf %d (%s), want leaf %d", k.RevokedLeaf, k.RevokedTime, r)
		}
	}
	light := TrustOfKeys(f.w.Intro, ks, nil, "a light client")
	w1, w2 := newCosigner(t, "w1.example"), newCosigner(t, "w2.example")
	cosigned := withCheckpoint(t, made.Proof, cosign(t, f.note, w1, w2))
	light.Witnesses = policy(t, 2, w1, w2)
	if _, err := Verify(cosigned, light); err != nil {
		t.Fatalf("a proof under a key rotated out since, cosigned by the quorum: %v", err)
	}
	light.Witnesses = witness.Policy{}
	var se *index.SignError
	_, err = Verify(cosigned, light)
	if !errors.Is(err, ErrRefused) || !errors.As(err, &se) || se.Rule != index.RuleKeyRevoked ||
		!strings.Contains(err.Error(), fmt.Sprintf("was revoked by record %.16s (rotated) at leaf %d (", revoked.Records[0], r)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("the checkpoint of %d leaves signed at", f.c.Size)) ||
		!strings.Contains(err.Error(), "the verifier's log does not hold that tree and no witness quorum cosigned it") {
		t.Fatalf("a key rotated out, no log and no witnesses: %v", err)
	}

	// The key signs the log as it is after its revocation (a tree that
	// holds it): refused, though the log holds the tree and the witnesses
	// cosigned it.
	x, err := ParseExtra(made.Proof)
	if err != nil {
		t.Fatal(err)
	}
	e, err := translog.ParseEntry([]byte(x.Entry))
	if err != nil {
		t.Fatal(err)
	}
	after, ac := f.sign(t, old)
	pa, err := Make(st, e.Path, x.Content, cosign(t, after, w1, w2))
	if err != nil {
		t.Fatal(err)
	}
	trust.Witnesses = policy(t, 2, w1, w2)
	_, err = Verify(pa.Marshal(), trust)
	if !errors.As(err, &se) || se.Rule != index.RuleKeyRevoked ||
		!strings.Contains(err.Error(), fmt.Sprintf("the checkpoint of %d leaves signed at", ac.Size)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("is of a tree that holds the revocation (leaf %d < %d)", r, ac.Size)) {
		t.Fatalf("a checkpoint signed by the key after its revocation: %v", err)
	}
	// Its successor signs it.
	now, _ := f.sign(t, next)
	pn, err := Make(st, e.Path, x.Content, cosign(t, now, w1, w2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(pn.Marshal(), trust); err != nil {
		t.Fatalf("the successor's checkpoint: %v", err)
	}

	// Whoever holds the old key now signs an old tree of its own making,
	// smaller than the revocation's leaf, that holds the record: refused,
	// the verifier's log holds another tree, and no witness cosigned it.
	forged, err := translog.OpenStore(t.TempDir(), index.SubjectsOf)
	if err != nil {
		t.Fatal(err)
	}
	defer forged.Close()
	intro, err := f.w.Repo.LeafFile(ctx, head.Head, "root/00000001.json")
	if err != nil {
		t.Fatal(err)
	}
	one, two := strings.Repeat("1", 40), strings.Repeat("2", 40)
	if _, err := forged.AppendCommit(one, 1, []translog.Entry{translog.NewEntry(one, 1, "root/00000001.json", intro)}); err != nil {
		t.Fatal(err)
	}
	me, err := forged.AppendCommit(two, 2, []translog.Entry{translog.NewEntry(two, 2, e.Path, x.Content)})
	if err != nil {
		t.Fatal(err)
	}
	if err := forged.Commit(two); err != nil {
		t.Fatal(err)
	}
	fc := checkpoint.Checkpoint{Origin: checkpoint.Origin(f.w.Intro), Size: 4, Root: forged.Root(), Map: me.Root, Head: two, Time: f.c.Time}
	fnote, err := checkpoint.Sign(fc, old)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := Make(forged, e.Path, x.Content, fnote)
	if err != nil {
		t.Fatal(err)
	}
	if fc.Size > r {
		t.Fatalf("the forged tree has %d leaves, not fewer than the revocation's leaf %d", fc.Size, r)
	}
	trust.Witnesses = witness.Policy{}
	_, err = Verify(pf.Marshal(), trust)
	if !errors.As(err, &se) || se.Rule != index.RuleKeyRevoked ||
		!strings.Contains(err.Error(), "the checkpoint of 4 leaves signed at") ||
		!strings.Contains(err.Error(), "is of a tree that ends before the revocation, but the verifier's log does not hold that tree and no witness quorum cosigned it") {
		t.Fatalf("an old tree forged under the key revoked since: %v", err)
	}
	// With witnesses required, their quorum is what is missing.
	trust.Witnesses = policy(t, 1, w1)
	if _, err := Verify(pf.Marshal(), trust); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "cosigned by 0 of the 1 trusted witnesses required") {
		t.Fatalf("an old tree forged under the key revoked since, witnesses required: %v", err)
	}
}

// A file whose path names a record id but holds another record is
// refused, though the log holds it: the name is part of what is proved.
func TestVerifyMisnamedRecord(t *testing.T) {
	f := newFixture(t)
	data, path, err := f.w.Repo.Record(context.Background(), f.audit)
	if err != nil {
		t.Fatal(err)
	}
	st, err := translog.OpenStore(t.TempDir(), index.SubjectsOf)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wrong := strings.Replace(path, f.audit, strings.Repeat("0", 64), 1)
	one, two := strings.Repeat("1", 40), strings.Repeat("2", 40)
	if _, err := st.AppendCommit(one, 1, []translog.Entry{translog.NewEntry(one, 1, "root/00000001.json", []byte("{}"))}); err != nil {
		t.Fatal(err)
	}
	me, err := st.AppendCommit(two, 2, []translog.Entry{translog.NewEntry(two, 2, wrong, data)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(two); err != nil {
		t.Fatal(err)
	}
	c := checkpoint.Checkpoint{Origin: checkpoint.Origin(f.w.Intro), Size: 4, Root: st.Root(), Map: me.Root, Head: two, Time: time.Now().UTC().Truncate(time.Second)}
	msg, err := checkpoint.Sign(c, f.w.Checkpointer)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Make(st, wrong, data, msg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(p.Marshal(), Trust{LogKeys: []LogKey{f.logKey(t)}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not the record "+strings.Repeat("0", 64)+" its path names") {
		t.Fatalf("Verify of a misnamed record = %v", err)
	}
}

// Log keys are parsed from their vkeys; a witness's key is not one.
func TestParseLogKey(t *testing.T) {
	s := indextest.NewSigner()
	origin := checkpoint.Origin(strings.Repeat("cd", 32))
	k, err := ParseLogKey(checkpoint.VKey(origin, s.Public()))
	if err != nil || k.Origin != origin || !k.Key.Equal(s.Public()) {
		t.Fatalf("ParseLogKey = %+v, %v", k, err)
	}
	w := newCosigner(t, "w.example")
	for _, bad := range []string{w.vkey, "", "x+1+2", strings.Replace(checkpoint.VKey(origin, s.Public()), "+", "+0", 1)} {
		if _, err := ParseLogKey(bad); err == nil {
			t.Errorf("ParseLogKey(%q) succeeded", bad)
		}
	}
}

// isExtraOf accepts exactly marshalExtra's bytes: not a byte more (a
// trailing newline, which the encoder writes after the value, included),
// not one less, not one changed.
func TestIsExtraOf(t *testing.T) {
	x := Extra{Entry: "entry <&> line", Content: []byte("content\x00"), MapTime: 7, MapPath: bytes.Repeat([]byte{1}, 64)}
	canon, err := marshalExtra(x)
	if err != nil {
		t.Fatal(err)
	}
	if !isExtraOf(canon, x) {
		t.Fatalf("isExtraOf(marshalExtra(x), x) = false for %s", canon)
	}
	changed := bytes.Clone(canon)
	changed[len(changed)/2] ^= 1
	for name, data := range map[string][]byte{
		"a trailing newline": append(bytes.Clone(canon), '\n'),
		"a trailing space":   append(bytes.Clone(canon), ' '),
		"a leading space":    append([]byte(" "), canon...),
		"the last byte cut":  canon[:len(canon)-1],
		"a byte changed":     changed,
		"empty":              {},
		"HTML escaped":       bytes.Replace(canon, []byte("<"), []byte(`\u003c`), 1),
	} {
		if isExtraOf(data, x) {
			t.Errorf("isExtraOf accepts the extra data with %s: %q", name, data)
		}
	}
}
