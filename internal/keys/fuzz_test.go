package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzParsePublic: whatever line it is given, ParsePublic does not panic,
// and a key it accepts is a strong ed25519 key that writes back to a line
// naming the same key and comment, with a fingerprint that round-trips.
func FuzzParsePublic(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	line := FormatPublic(pub)
	f.Add([]byte(line))
	f.Add([]byte(line + " alice@example.org\n"))
	f.Add([]byte(`restrict,command="true" ` + line + " with options"))
	f.Add([]byte("# a comment line\n\n" + line + "  spaced  comment  \r\n"))
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== short"))
	f.Add([]byte("ssh-ed25519 not-base64"))
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	if sk, err := ssh.NewPublicKey(&rk.PublicKey); err == nil {
		f.Add(ssh.MarshalAuthorizedKey(sk)) // not ed25519
	}
	identity := make([]byte, 32)
	identity[0] = 1 // a weak key: the neutral point
	if sk, err := ssh.NewPublicKey(ed25519.PublicKey(identity)); err == nil {
		f.Add(ssh.MarshalAuthorizedKey(sk))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, line []byte) {
		pub, comment, err := ParsePublic(line)
		if err != nil {
			if errors.Is(err, ErrWeakKey) && pub == nil {
				t.Fatalf("ParsePublic(%q): a weak key refused without the key as evidence", line)
			}
			return
		}
		if len(pub) != ed25519.PublicKeySize {
			t.Fatalf("ParsePublic(%q) = a key of %d bytes", line, len(pub))
		}
		if err := CheckPublic(pub); err != nil {
			t.Fatalf("ParsePublic(%q) accepted a weak key: %v", line, err)
		}
		again := FormatPublic(pub)
		if comment != "" {
			again += " " + comment
		}
		pub2, comment2, err := ParsePublic([]byte(again))
		if err != nil || !pub2.Equal(pub) || comment2 != comment {
			t.Fatalf("ParsePublic(%q) = %x %q, written back as %q it reads %x %q, %v", line, pub, comment, again, pub2, comment2, err)
		}
		h, err := HexFromID(ID(pub))
		if err != nil || h != IDHex(pub) {
			t.Fatalf("the fingerprint %s of %x does not round-trip: %q, %v", ID(pub), pub, h, err)
		}
		if bytes.ContainsAny([]byte(comment), "\n") {
			t.Fatalf("ParsePublic(%q): a comment across lines %q", line, comment)
		}
	})
}
