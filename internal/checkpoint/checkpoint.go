// Package checkpoint is a server's signed, timestamped statement of an
// index's head: which commit main is at, how many record files it holds,
// and when the server said so. It is a signed note (the format of Go's
// checksum database, golang.org/x/mod/sumdb/note), signed by a key the
// index's root granted the checkpoint scope, so that a client can tell a
// frozen mirror (an old time) and a server showing two histories (two
// signed heads for one count) from an honest one.
package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"cairn.dev/cairn/internal/keys"
)

// Header is the first line of every checkpoint.
const Header = "cairn-checkpoint/v1"

// ErrStale is the parent of errors about checkpoints older than allowed.
var ErrStale = errors.New("checkpoint too old")

// Checkpoint is the signed content.
type Checkpoint struct {
	Introduction string    // the index's introduction: which index this is
	Head         string    // the commit main is at
	Records      int       // record files in the index at Head
	Time         time.Time // when it was signed (seconds, UTC)
}

// Text returns the checkpoint's text, the bytes that are signed.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\nintroduction %s\nhead %s\nrecords %d\ntime %s\n",
		Header, c.Introduction, c.Head, c.Records, c.Time.UTC().Format(time.RFC3339))
}

// Parse parses a checkpoint's text.
func Parse(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 5 || lines[0] != Header {
		return c, fmt.Errorf("not a %s checkpoint", Header)
	}
	field := func(i int, name string) (string, error) {
		v, ok := strings.CutPrefix(lines[i], name+" ")
		if !ok || v == "" {
			return "", fmt.Errorf("checkpoint line %d: want %q", i+1, name+" …")
		}
		return v, nil
	}
	var err error
	if c.Introduction, err = field(1, "introduction"); err != nil {
		return c, err
	}
	if c.Head, err = field(2, "head"); err != nil {
		return c, err
	}
	n, err := field(3, "records")
	if err != nil {
		return c, err
	}
	if c.Records, err = strconv.Atoi(n); err != nil || c.Records < 0 {
		return c, fmt.Errorf("checkpoint records %q: not a count", n)
	}
	t, err := field(4, "time")
	if err != nil {
		return c, err
	}
	if c.Time, err = time.Parse(time.RFC3339, t); err != nil {
		return c, fmt.Errorf("checkpoint time %q: %w", t, err)
	}
	return c, nil
}

// signerName is the note name of a key: its id in hex.
func signerName(pub ed25519.PublicKey) string { return keys.IDHex(pub) }

type signer struct {
	s    keys.Signer
	name string
	hash uint32
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return s.s.Sign(msg) }

func verifierFor(pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(signerName(pub), pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// Sign signs c with s (an ed25519 key, on disk or in ssh-agent).
func Sign(c Checkpoint, s keys.Signer) ([]byte, error) {
	v, err := verifierFor(s.Public())
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: c.Text()}, &signer{s: s, name: v.Name(), hash: v.KeyHash()})
}

// Signed is an opened checkpoint: its content and the key that signed it.
type Signed struct {
	Checkpoint
	Key string // the signing key's id
	Raw []byte // the whole signed note, as evidence
}

// Open verifies a signed checkpoint. lookup returns the public key of a
// key id that may sign checkpoints (nil if it may not); the first
// signature by such a key counts.
func Open(msg []byte, lookup func(keyID string) ed25519.PublicKey) (*Signed, error) {
	var key string
	n, err := note.Open(msg, verifierFunc(func(name string, hash uint32) (note.Verifier, error) {
		id, err := keys.IDFromHex(name)
		if err != nil {
			return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
		}
		pub := lookup(id)
		if pub == nil {
			return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
		}
		v, err := verifierFor(pub)
		if err != nil || v.KeyHash() != hash {
			return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
		}
		key = id
		return v, nil
	}))
	if err != nil {
		var unknown *note.UnknownVerifierError
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unknown) || errors.As(err, &unverified) {
			return nil, fmt.Errorf("the checkpoint is not signed by a key granted the checkpoint scope: %w", err)
		}
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := Parse(n.Text)
	if err != nil {
		return nil, err
	}
	return &Signed{Checkpoint: c, Key: key, Raw: msg}, nil
}

// Claimed parses a signed checkpoint's text without checking any
// signature: what it claims, to be trusted only once Open has verified
// it. A client reads it to know which head to verify up to (never past
// it) before it holds the history that says which keys may sign.
func Claimed(msg []byte) (Checkpoint, error) {
	// A note is its text, a blank line, then signature lines; the text
	// itself holds no blank line.
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("checkpoint: not a signed note (no blank line before the signatures)")
	}
	return Parse(string(msg[:i+1]))
}

type verifierFunc func(name string, hash uint32) (note.Verifier, error)

func (f verifierFunc) Verifier(name string, hash uint32) (note.Verifier, error) { return f(name, hash) }

// Fresh reports an error if c was signed more than maxAge before now (a
// frozen mirror) or more than skew after it. Its caller, which holds the
// signed note as evidence, raises the security error.
func (c Checkpoint) Fresh(now time.Time, maxAge, skew time.Duration) error {
	if age := now.Sub(c.Time); age > maxAge {
		return fmt.Errorf("%w: the server's checkpoint of head %.12s was signed at %s, %s ago, past the %s bound: the mirror may be frozen, hiding what came after",
			ErrStale, c.Head, c.Time.UTC().Format(time.RFC3339), age.Truncate(time.Second), maxAge)
	}
	if c.Time.After(now.Add(skew)) {
		return fmt.Errorf("checkpoint signed at %s, in the future of this clock (%s)", c.Time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}
