package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/keys"
)

func TestSignOpen(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	s := keys.NewSigner(priv)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	other := keys.NewSigner(otherPriv)
	c := Checkpoint{Introduction: strings.Repeat("a", 64), Head: strings.Repeat("b", 40), Records: 42, Time: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)}
	msg, err := Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	granted := func(id string) ed25519.PublicKey {
		if id == keys.ID(s.Public()) {
			return s.Public()
		}
		return nil
	}
	got, err := Open(msg, granted)
	if err != nil {
		t.Fatal(err)
	}
	if got.Checkpoint != c || got.Key != keys.ID(s.Public()) {
		t.Fatalf("opened %+v", got)
	}
	// Signed by a key that may not sign checkpoints.
	msg2, _ := Sign(c, other)
	if _, err := Open(msg2, granted); err == nil || !strings.Contains(err.Error(), "not signed by a key granted the checkpoint scope") {
		t.Fatalf("another key's checkpoint: %v", err)
	}
	// A count or a head changed after signing.
	for _, edit := range [][2]string{{"records 42", "records 43"}, {"head bbbb", "head cbbb"}} {
		bad := bytes.Replace(msg, []byte(edit[0]), []byte(edit[1]), 1)
		if _, err := Open(bad, granted); err == nil {
			t.Fatalf("edited checkpoint (%s) opened", edit[1])
		}
	}
	// Freshness.
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
	f.Add(Checkpoint{Introduction: "x", Head: "y", Records: 1, Time: time.Unix(0, 0)}.Text())
	f.Add("cairn-checkpoint/v1\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		c2, err := Parse(c.Text())
		if err != nil || c2 != c {
			t.Fatalf("round trip of %q: %+v, %v", text, c2, err)
		}
	})
}

// Claimed reads what a checkpoint says before it can be verified; what it
// reads is what Open verifies, for every input Open accepts.
func TestClaimed(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	s := keys.NewSigner(priv)
	c := Checkpoint{Introduction: strings.Repeat("a", 64), Head: strings.Repeat("b", 40), Records: 7, Time: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)}
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
	_, priv, _ := ed25519.GenerateKey(nil)
	s := keys.NewSigner(priv)
	msg, err := Sign(Checkpoint{Introduction: "x", Head: "y", Records: 1, Time: time.Unix(0, 0).UTC()}, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte("cairn-checkpoint/v1\n\n"))
	granted := func(string) ed25519.PublicKey { return s.Public() }
	f.Fuzz(func(t *testing.T, msg []byte) {
		claimed, cerr := Claimed(msg)
		sc, err := Open(msg, granted)
		if err != nil {
			return
		}
		if cerr != nil || claimed != sc.Checkpoint {
			t.Fatalf("Open verified %+v, Claimed read %+v (%v)", sc.Checkpoint, claimed, cerr)
		}
	})
}
