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
			tr.MaySign = func(id string, at time.Time) error { return fmt.Errorf("expired") }
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
			p.Extra, _ = json.Marshal(translog.ProofExtra{Entry: x.Entry, Content: x.Content})
		}, "a proof made before map leaves were logged"},
		{"extra not written as cairn writes it", func(p *translog.Proof, tr *Trust) {
			p.Extra = append([]byte(" "), p.Extra...)
		}, "not written as cairn writes it"},
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

// A key revoked since, or whose grant expired before the checkpoint was
// signed, does not make a proof: the repository's trust asks the rules.
func TestVerifyRevokedKey(t *testing.T) {
	f := newFixture(t)
	made, err := FromRepo(context.Background(), f.w.Repo, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	data := made.Proof.Marshal()
	if _, err := author.RevokeKey(f.w.Ctx, f.w.Repo, keys.ID(f.w.Checkpointer.Public()), "lost", f.w.Root); err != nil {
		t.Fatal(err)
	}
	trust, err := TrustOf(context.Background(), f.w.Repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(data, trust); !errors.Is(err, checkpoint.ErrUnsigned) {
		t.Fatalf("a proof by a revoked key = %v", err)
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
