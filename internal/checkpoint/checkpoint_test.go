package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/keys"
)

var intro = strings.Repeat("a", 64)

func example() Checkpoint {
	return Checkpoint{
		Origin: Origin(intro),
		Size:   42,
		Root:   tlog.Hash(sha256.Sum256([]byte("root"))),
		Map:    tlog.Hash(sha256.Sum256([]byte("map"))),
		Head:   strings.Repeat("b", 40),
		Time:   time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC),
	}
}

func newSigner(t testing.TB) keys.Signer {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewSigner(priv)
}

// The text is docs/transparency.md's, byte for byte.
func TestText(t *testing.T) {
	c := example()
	b64 := func(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }
	want := "cairn.dev/index/" + intro + "\n42\n" + b64(c.Root) + "\ncairn-map " + b64(c.Map) +
		"\ncairn-head " + c.Head + "\ncairn-time 1795320000\n"
	if got := c.Text(); got != want {
		t.Fatalf("Text:\n%s\nwant:\n%s", got, want)
	}
	if c.Introduction() != intro || c.Tree() != (tlog.Tree{N: 42, Hash: c.Root}) {
		t.Fatalf("Introduction %q, Tree %v", c.Introduction(), c.Tree())
	}
	got, err := Parse(want)
	if err != nil || got != c {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, c)
	}
}

// Parse takes exactly what Text writes: every other spelling of the same
// content, and every other line, is refused.
func TestParseStrict(t *testing.T) {
	good := example().Text()
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	with := func(i int, v string) string {
		l := append([]string(nil), lines...)
		l[i] = v
		return strings.Join(l, "\n") + "\n"
	}
	root := lines[2]
	for name, text := range map[string]string{
		"no newline at the end":  strings.TrimSuffix(good, "\n"),
		"two extension lines":    strings.Join(lines[:5], "\n") + "\n",
		"four extension lines":   good + "cairn-extra x\n",
		"extensions reordered":   strings.Join([]string{lines[0], lines[1], lines[2], lines[4], lines[3], lines[5]}, "\n") + "\n",
		"another origin":         with(0, "example.com/log"),
		"uppercase introduction": with(0, "cairn.dev/index/"+strings.Repeat("A", 64)),
		"short introduction":     with(0, "cairn.dev/index/"+strings.Repeat("a", 63)),
		"size with a zero":       with(1, "042"),
		"negative size":          with(1, "-1"),
		"a tree of 2^63-1":       with(1, "9223372036854775807"),
		"a tree past 2^62":       with(1, "4611686018427387905"),
		"root not canonical":     with(2, root[:len(root)-2]+"B="),
		"short root":             with(2, base64.StdEncoding.EncodeToString(make([]byte, 31))),
		"map not base64":         with(3, "cairn-map !!"),
		"map without a value":    with(3, "cairn-map "),
		"short map":              with(3, "cairn-map "+base64.StdEncoding.EncodeToString(make([]byte, 31))),
		"uppercase head":         with(4, "cairn-head "+strings.Repeat("B", 40)),
		"sha-256 head":           with(4, "cairn-head "+strings.Repeat("b", 64)),
		"time with a zero":       with(5, "cairn-time 01795147200"),
		"negative time":          with(5, "cairn-time -1"),
		"time in RFC 3339":       with(5, "cairn-time 2026-11-22T04:00:00Z"),
		"old format":             "cairn-checkpoint/v1\nintroduction " + intro + "\nhead " + strings.Repeat("b", 40) + "\nrecords 1\ntime 2026-11-22T04:00:00Z\n",
	} {
		if c, err := Parse(text); err == nil {
			t.Errorf("%s: parsed %+v", name, c)
		} else if !strings.Contains(err.Error(), "malformed checkpoint") {
			t.Errorf("%s: %v, want a malformed checkpoint error", name, err)
		}
	}
}

func TestSignOpen(t *testing.T) {
	s, other := newSigner(t), newSigner(t)
	c := example()
	msg, err := Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	granted := []ed25519.PublicKey{other.Public(), s.Public()}
	got, err := Open(msg, c.Origin, granted)
	if err != nil {
		t.Fatal(err)
	}
	if got.Checkpoint != c || got.Key != keys.ID(s.Public()) || !bytes.Equal(got.Raw, msg) {
		t.Fatalf("opened %+v", got)
	}
	// Signed by a key that may not sign checkpoints.
	msg2, err := Sign(c, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(msg2, c.Origin, []ed25519.PublicKey{s.Public()}); err == nil || !strings.Contains(err.Error(), "not signed by a key trusted to sign it") {
		t.Fatalf("another key's checkpoint: %v", err)
	}
	if _, err := Open(msg, c.Origin, nil); err == nil {
		t.Fatal("a checkpoint opened with no key that may sign")
	}
	// Of another index.
	if _, err := Open(msg, Origin(strings.Repeat("c", 64)), granted); err == nil || !strings.Contains(err.Error(), "another index") {
		t.Fatalf("another origin: %v", err)
	}
	// Any line changed after signing.
	lines := strings.Split(c.Text(), "\n")
	for i, edit := range []string{Origin(strings.Repeat("c", 64)), "43", base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"cairn-map " + base64.StdEncoding.EncodeToString(make([]byte, 32)), "cairn-head " + strings.Repeat("c", 40), "cairn-time 1795147201"} {
		bad := bytes.Replace(msg, []byte(lines[i]+"\n"), []byte(edit+"\n"), 1)
		if bytes.Equal(bad, msg) {
			t.Fatalf("edit %d changed nothing", i)
		}
		origin := c.Origin
		if i == 0 {
			origin = Origin(strings.Repeat("c", 64))
		}
		if _, err := Open(bad, origin, granted); err == nil {
			t.Errorf("edited checkpoint (%s) opened", edit)
		}
	}
	// A signature line of a granted key that does not verify.
	sigs := msg[bytes.LastIndex(msg, []byte("\n\n"))+2:]
	forged := append([]byte(c.Text()+"\n"), bytes.Replace(sigs, sigs[len(sigs)-6:len(sigs)-1], []byte("AAAAA"), 1)...)
	if _, err := Open(forged, c.Origin, granted); err == nil {
		t.Fatal("a forged signature opened")
	}
}

// Key rotation and witnesses: a note signed by two log keys and cosigned
// by a witness (torchwood's cosignature/v1) opens with either log key
// alone; the other signatures are ignored.
func TestOpenIgnoresOtherSignatures(t *testing.T) {
	old, cur := newSigner(t), newSigner(t)
	c := example()
	vo, err := verifierFor(c.Origin, old.Public())
	if err != nil {
		t.Fatal(err)
	}
	vc, err := verifierFor(c.Origin, cur.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, wpriv, _ := ed25519.GenerateKey(nil)
	witness, err := torchwood.NewCosignatureSigner("witness.example/w1", wpriv)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: c.Text()}, witness,
		&signer{s: old, name: vo.Name(), hash: vo.KeyHash()}, &signer{s: cur, name: vc.Name(), hash: vc.KeyHash()})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []keys.Signer{old, cur} {
		got, err := Open(msg, c.Origin, []ed25519.PublicKey{k.Public()})
		if err != nil || got.Key != keys.ID(k.Public()) || got.Checkpoint != c {
			t.Fatalf("with one of two keys: %+v, %v", got, err)
		}
	}
	// The witness's cosignature verifies with torchwood's verifier.
	if _, err := note.Open(msg, note.VerifierList(witness.Verifier())); err != nil {
		t.Fatalf("cosignature: %v", err)
	}
}

// Interoperability: a checkpoint cairn signs is a C2SP checkpoint that
// golang.org/x/mod/sumdb/note verifies with the VKey cairn prints, and
// torchwood parses to the same tree.
func TestInterop(t *testing.T) {
	s := newSigner(t)
	c := example()
	msg, err := Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	vkey := VKey(c.Origin, s.Public())
	if !strings.HasPrefix(vkey, c.Origin+"+") {
		t.Fatalf("VKey %q does not name the origin", vkey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("x/mod note: %v", err)
	}
	tc, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil {
		t.Fatalf("torchwood: %v", err)
	}
	if tc.Origin != c.Origin || tc.N != c.Size || tc.Hash != c.Root {
		t.Fatalf("torchwood read %+v, want %s %d %v", tc, c.Origin, c.Size, c.Root)
	}
	// And the other way: a note signed by x/mod's own signer opens here.
	skey, vkey2, err := note.GenerateKey(nil, c.Origin)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	msg2, err := note.Sign(&note.Note{Text: c.Text()}, ns)
	if err != nil {
		t.Fatal(err)
	}
	// x/mod's key: the 32 bytes after the algorithm byte of its vkey,
	// whose VKey here is x/mod's.
	pub := vkeyPublic(t, vkey2)
	if VKey(c.Origin, pub) != vkey2 {
		t.Fatalf("VKey %q, x/mod's %q", VKey(c.Origin, pub), vkey2)
	}
	got, err := Open(msg2, c.Origin, []ed25519.PublicKey{pub})
	if err != nil || got.Checkpoint != c {
		t.Fatalf("x/mod's signature: %+v, %v", got, err)
	}
}

func vkeyPublic(t *testing.T, vkey string) ed25519.PublicKey {
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 {
		t.Fatalf("vkey %q: %v", vkey, err)
	}
	return ed25519.PublicKey(raw[1:])
}

func TestFresh(t *testing.T) {
	c := example()
	if err := c.Fresh(c.Time.Add(23*time.Hour), 24*time.Hour, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Fresh(c.Time.Add(25*time.Hour), 24*time.Hour, time.Minute); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("a day-old checkpoint: %v", err)
	}
	if err := c.Fresh(c.Time.Add(-time.Hour), 24*time.Hour, time.Minute); err == nil {
		t.Fatal("a checkpoint from the future was fresh")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(example().Text())
	f.Add(Checkpoint{Origin: Origin(intro), Head: strings.Repeat("0", 40), Time: time.Unix(0, 0)}.Text())
	f.Add("cairn.dev/index/\n0\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		if c.Text() != text {
			t.Fatalf("Parse accepted %q, which Text writes as %q", text, c.Text())
		}
	})
}

// Claimed reads what a checkpoint says before it can be verified; what it
// reads is what Open verifies, for every input Open accepts.
func TestClaimed(t *testing.T) {
	s := newSigner(t)
	c := example()
	msg, err := Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Claimed(msg)
	if err != nil || got != c {
		t.Fatalf("Claimed = %+v, %v; want %+v", got, err, c)
	}
	for _, bad := range []string{"", "cairn-checkpoint/v1\n", c.Text(), "not a checkpoint\n\n— sig\n"} {
		if _, err := Claimed([]byte(bad)); err == nil {
			t.Errorf("Claimed(%q) succeeded", bad)
		}
	}
}

func FuzzClaimed(f *testing.F) {
	s := newSigner(f)
	c := example()
	msg, err := Sign(c, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte(c.Text() + "\n"))
	granted := []ed25519.PublicKey{s.Public()}
	f.Fuzz(func(t *testing.T, msg []byte) {
		claimed, cerr := Claimed(msg)
		sc, err := Open(msg, c.Origin, granted)
		if err != nil {
			return
		}
		if cerr != nil || claimed != sc.Checkpoint {
			t.Fatalf("Open verified %+v, Claimed read %+v (%v)", sc.Checkpoint, claimed, cerr)
		}
	})
}
