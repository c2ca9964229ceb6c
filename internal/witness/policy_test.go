package witness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// cosignedBy returns the log's checkpoint of a 9-leaf tree with the
// cosignature lines of each witness (cairn's own, over HTTP), who may
// have cosigned it before.
func cosignedBy(t *testing.T, l testLog, ws ...*testWitness) []byte {
	t.Helper()
	tr := newTree(t, 9, 9, "")
	signed := l.checkpoint(t, tr.root(t, 9))
	for _, w := range ws {
		cosigs, err := Cosign(context.Background(), nil, w.url, 0, l.checkpoint(t, tr.root(t, 9)), tr.prover(9))
		if err != nil {
			t.Fatal(err)
		}
		if signed, err = AppendCosignatures(signed, cosigs); err != nil {
			t.Fatal(err)
		}
	}
	return signed
}

// TestPolicy: the quorum counts valid cosignatures by distinct trusted
// keys, and refuses below it naming who was found and who is missing.
func TestPolicy(t *testing.T) {
	l := newTestLog(t, origin)
	a := newTestWitness(t, "witness.example.com/a", l)
	b := newTestWitness(t, "witness.example.com/b", l)
	c := newTestWitness(t, "witness.example.com/c", l)
	stranger := newTestWitness(t, "witness.example.com/stranger", l)
	vkeys := []string{a.VerifierKey(), b.VerifierKey(), c.VerifierKey()}
	p, err := NewPolicy(vkeys, 2)
	if err != nil {
		t.Fatal(err)
	}

	two := cosignedBy(t, l, a, stranger, b)
	if n, err := p.Check(two, origin); n != 2 || err != nil {
		t.Errorf("a and b of a, b, c (and a stranger): %d, %v; want 2, nil", n, err)
	}
	cs, err := p.Cosignatures(two, origin)
	if err != nil || len(cs) != 2 || cs[0].Witness.Name != a.name || cs[0].Time.IsZero() {
		t.Errorf("Cosignatures: %+v, %v", cs, err)
	}

	// Attack: a cosignature by an unknown witness key does not count.
	one := cosignedBy(t, l, a, stranger)
	n, err := p.Check(one, origin)
	var qe *QuorumError
	if n != 1 || !errors.As(err, &qe) || len(qe.Found) != 1 || qe.Found[0] != a.name ||
		strings.Join(qe.Missing, " ") != b.name+" "+c.name || qe.Checkpoint != string(one) {
		t.Fatalf("a and a stranger: %d, %v; want 1 and a QuorumError naming a found and b, c missing", n, err)
	}
	if want := "is cosigned by 1 of the 2 trusted witnesses required (found: witness.example.com/a; missing: witness.example.com/b, witness.example.com/c)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to say %q", err, want)
	}

	// Attack: the same cosignature line twice counts once.
	_, rest, _ := strings.Cut(string(one), "\n\n")
	aLine := ""
	for _, line := range strings.SplitAfter(rest, "\n") {
		if strings.HasPrefix(line, "— "+a.name+" ") {
			aLine = line
		}
	}
	doubled := append([]byte(string(one)), aLine...)
	if n, err := p.Check(doubled, origin); n != 1 || !errors.As(err, &qe) {
		t.Errorf("a's cosignature twice: %d, %v; want 1 and refused", n, err)
	}

	// Attack: one key listed under two names, its signature copied
	// under the other name (cosignature/v1 does not sign the name):
	// counted once.
	alias := Witness{Name: "witness.example.com/alias", Key: a.witness().Key}
	p2 := Policy{Witnesses: []Witness{a.witness(), alias, b.witness()}, Quorum: 2}
	sigB64 := strings.Fields(aLine)[2]
	raw, _ := base64.StdEncoding.DecodeString(sigB64)
	aliasHash := alias.Verifier().KeyHash()
	raw[0], raw[1], raw[2], raw[3] = byte(aliasHash>>24), byte(aliasHash>>16), byte(aliasHash>>8), byte(aliasHash)
	aliased := append([]byte(string(one)), "— "+alias.Name+" "+base64.StdEncoding.EncodeToString(raw)+"\n"...)
	if cs, err := p2.Cosignatures(aliased, origin); err != nil || len(cs) != 1 {
		t.Fatalf("the alias's copy should verify and count once: %+v, %v", cs, err)
	}
	if n, err := p2.Check(aliased, origin); n != 1 || !errors.As(err, &qe) {
		t.Errorf("one key under two names: %d, %v; want 1 and refused", n, err)
	}
	// The same vkey listed twice is one witness.
	if _, err := NewPolicy([]string{a.VerifierKey(), a.VerifierKey()}, 2); err == nil {
		t.Error("quorum 2 of one witness listed twice accepted")
	}
	if p3, err := NewPolicy([]string{a.VerifierKey(), a.VerifierKey()}, 1); err != nil {
		t.Error(err)
	} else if n, err := p3.Check(one, origin); n != 1 || err != nil {
		t.Errorf("a witness listed twice: %d, %v", n, err)
	}

	// Attack: a forged cosignature by a trusted key is refused outright.
	aTwo := ""
	for _, line := range strings.SplitAfter(string(two), "\n") {
		if strings.HasPrefix(line, "— "+a.name+" ") {
			aTwo = line
		}
	}
	sig, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.Fields(aTwo)[2]))
	sig[len(sig)-1] ^= 1
	forged := []byte(strings.Replace(string(two), aTwo, "— "+a.name+" "+base64.StdEncoding.EncodeToString(sig)+"\n", 1))
	if _, err := p.Check(forged, origin); err == nil || errors.As(err, &qe) {
		t.Errorf("a forged cosignature by a: %v, want an invalid-signature error", err)
	}
	// The checkpoint must be of the origin asked about.
	if _, err := p.Check(two, "example.com/other"); err == nil {
		t.Error("a checkpoint of another origin accepted")
	}
	// No cosignature at all.
	if n, err := p.Check(l.checkpoint(t, newTree(t, 2, 2, "").root(t, 2)), origin); n != 0 || !errors.As(err, &qe) {
		t.Errorf("no cosignatures: %d, %v", n, err)
	}
}

// TestUnwitnessed: a policy without witnesses is allowed, accepts any
// checkpoint, and says that a split view cannot be detected.
func TestUnwitnessed(t *testing.T) {
	l := newTestLog(t, origin)
	p, err := NewPolicy(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Unwitnessed() {
		t.Error("a policy without witnesses is not Unwitnessed")
	}
	if n, err := p.Check(l.checkpoint(t, newTree(t, 2, 2, "").root(t, 2)), origin); n != 0 || err != nil {
		t.Errorf("Check: %d, %v", n, err)
	}
	if !strings.Contains(ErrUnwitnessed.Error(), "a split view cannot be detected") {
		t.Errorf("ErrUnwitnessed says %q", ErrUnwitnessed)
	}
	if _, err := NewPolicy(nil, 1); err == nil {
		t.Error("quorum 1 of no witnesses accepted")
	}
	if _, err := NewPolicy(nil, -1); err == nil {
		t.Error("quorum -1 accepted")
	}
	w := newTestWitness(t, "witness.example.com/a", l)
	if p, _ := NewPolicy([]string{w.VerifierKey()}, 1); p.Unwitnessed() {
		t.Error("a policy of quorum 1 is Unwitnessed")
	}
}

// TestParseWitness: vkeys of cosignature/v1 (as torchwood prints them)
// parse; a log's key, a wrong hash or name are refused.
func TestParseWitness(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ts, err := torchwood.NewCosignatureSigner("witness.example.com/w", priv)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ParseWitness(ts.Verifier().String())
	if err != nil || w.Name != "witness.example.com/w" || !w.Key.Equal(pub) || w.String() != ts.Verifier().String() {
		t.Fatalf("ParseWitness(%s) = %+v, %v", ts.Verifier(), w, err)
	}
	// torchwood's signature verifies with cairn's verifier.
	signed, err := note.Sign(&note.Note{Text: origin + "\n1\n" + newTree(t, 1, 1, "").root(t, 1).Hash.String() + "\n"}, ts)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := (Policy{Witnesses: []Witness{w}, Quorum: 1}).Check(signed, origin); n != 1 || err != nil {
		t.Errorf("torchwood's cosignature: %d, %v", n, err)
	}
	logKey, err := note.NewEd25519VerifierKey("example.com/log", pub)
	if err != nil {
		t.Fatal(err)
	}
	good := ts.Verifier().String()
	name, rest, _ := strings.Cut(good, "+")
	for _, bad := range []string{
		logKey,                        // signature type 0x01: a log's key
		name + "+00000000" + rest[8:], // wrong key hash
		"other.example/w+" + rest,     // another name, the hash of this one
		"w+" + rest[:9] + "AAAA",      // key too short
		"no-plus-signs",
		"",
	} {
		if _, err := ParseWitness(bad); err == nil {
			t.Errorf("ParseWitness(%q) accepted", bad)
		}
	}
}

// TestAppendCosignatures: lines are added after the note's own, once.
func TestAppendCosignatures(t *testing.T) {
	l := newTestLog(t, origin)
	signed := l.checkpoint(t, newTree(t, 2, 2, "").root(t, 2))
	line := "— witness.example.com/a AAAAAAAAAAAAAAAA\n"
	got, err := AppendCosignatures(signed, []byte(line))
	if err != nil || string(got) != string(signed)+line {
		t.Fatalf("AppendCosignatures = %q, %v", got, err)
	}
	again, err := AppendCosignatures(got, []byte(line))
	if err != nil || string(again) != string(got) {
		t.Errorf("appending a line again: %q, %v", again, err)
	}
	for _, bad := range []string{"", "no dash\n", "— name\n", "— a b c\n", "— a AAAA"} {
		if _, err := AppendCosignatures(signed, []byte(bad)); err == nil {
			t.Errorf("AppendCosignatures(%q) accepted", bad)
		}
	}
	if _, err := AppendCosignatures([]byte("not a note\n"), []byte(line)); err == nil {
		t.Error("AppendCosignatures to a non-note accepted")
	}
}

// FuzzParseRequest: the add-checkpoint parser never panics, and what it
// accepts is what Submit would have sent.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nexample.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— example.com/log AAAA\n"))
	f.Add([]byte("old 5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		old, proof, signed, err := parseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if old < 0 || len(proof) > maxProof || len(signed) > len(body) {
			t.Fatalf("parsed old %d, %d proof lines, %d note bytes of a %d-byte body", old, len(proof), len(signed), len(body))
		}
	})
}

// FuzzParseWitness: a vkey that parses prints back as itself.
func FuzzParseWitness(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ts, _ := torchwood.NewCosignatureSigner("witness.example.com/w", priv)
	f.Add(ts.Verifier().String())
	f.Add("a+00000000+BA==")
	f.Fuzz(func(t *testing.T, vkey string) {
		w, err := ParseWitness(vkey)
		if err == nil && w.String() != vkey {
			t.Fatalf("ParseWitness(%q) prints back as %q", vkey, w.String())
		}
	})
}
