// Package checkpoint is a server's signed statement of an index's
// transparency log: a C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint)
// naming the index by its origin, the log's size and RFC 6962 root hash,
// with extension lines for the map root, the git head and the time it was
// signed (docs/transparency.md, "The checkpoint"). It is a C2SP signed
// note (golang.org/x/mod/sumdb/note), signed by a key the index's root
// granted the checkpoint scope under the key name of the origin, so that
// a client can tell a frozen mirror (an old time) and a server showing
// two histories (two trees for one origin) from an honest one. Witness
// cosignatures are further signature lines, which Open ignores and
// internal/witness counts.
package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/translog"
)

// OriginPrefix begins every cairn index's origin line.
const OriginPrefix = "cairn.dev/index/"

// The extension lines' keywords, in the order they appear.
const (
	mapLine  = "cairn-map"
	headLine = "cairn-head"
	timeLine = "cairn-time"
)

// DefaultMaxAge is how old a checkpoint a client accepts by default (a
// remote's --max-age); a server signs a new one well within it.
const DefaultMaxAge = 24 * time.Hour

// ErrStale is the parent of errors about checkpoints older than allowed.
var ErrStale = errors.New("checkpoint too old")

// ErrMalformed is the parent of errors about a checkpoint's text.
var ErrMalformed = errors.New("malformed checkpoint")

// Origin returns the origin line of the index whose introduction (the id
// of its first root record, 64 hex) is introduction.
func Origin(introduction string) string { return OriginPrefix + introduction }

// Checkpoint is the signed content.
type Checkpoint struct {
	Origin string    // Origin(the index's introduction): which index this is
	Size   int64     // the log's size at Head: the files the index holds there
	Root   tlog.Hash // the log's RFC 6962 root hash at Size
	Map    tlog.Hash // the map's root at Head
	Head   string    // the git commit the log and map are computed at
	Time   time.Time // when it was signed (whole seconds, UTC)
}

// Introduction returns the introduction the origin names ("" if it names
// no cairn index).
func (c Checkpoint) Introduction() string {
	intro, _ := strings.CutPrefix(c.Origin, OriginPrefix)
	if !translog.IsLowerHex(intro, 64) {
		return ""
	}
	return intro
}

// Tree returns the log's tree at the checkpoint.
func (c Checkpoint) Tree() tlog.Tree { return tlog.Tree{N: c.Size, Hash: c.Root} }

// Text returns the checkpoint's note text, the bytes that are signed.
func (c Checkpoint) Text() string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("%s\n%d\n%s\n%s %s\n%s %s\n%s %d\n",
		c.Origin, c.Size, b64(c.Root[:]),
		mapLine, b64(c.Map[:]), headLine, c.Head, timeLine, c.Time.Unix())
}

// MaxSize is the largest tree a checkpoint may claim (2^62 leaves).
const MaxSize = 1 << 62

// Parse parses a checkpoint's note text strictly: the three lines of a
// C2SP checkpoint (torchwood.ParseCheckpoint) with a cairn origin, then
// exactly the three extension lines cairn-map, cairn-head and cairn-time,
// in that order, each written as Text writes it.
func Parse(text string) (Checkpoint, error) {
	var c Checkpoint
	tc, err := torchwood.ParseCheckpoint(text)
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c.Origin, c.Size, c.Root = tc.Origin, tc.N, tc.Hash
	if c.Size > MaxSize {
		// x/mod's tlog proof arithmetic overflows past it: a client
		// reading tiles at such a size, even before the signature is
		// checked, would spin for good.
		return c, fmt.Errorf("%w: a tree of %d leaves, more than %d", ErrMalformed, c.Size, int64(MaxSize))
	}
	if c.Introduction() == "" {
		return c, fmt.Errorf("%w: origin %q is not %s followed by an introduction (64 lowercase hex)", ErrMalformed, c.Origin, OriginPrefix)
	}
	if base64.StdEncoding.EncodeToString(c.Root[:]) != strings.SplitN(text, "\n", 4)[2] {
		return c, fmt.Errorf("%w: root hash %q is not in canonical base64", ErrMalformed, strings.SplitN(text, "\n", 4)[2])
	}
	ext := strings.Split(strings.TrimSuffix(tc.Extension, "\n"), "\n")
	if len(ext) != 3 {
		return c, fmt.Errorf("%w: %d extension lines, want 3 (%s, %s, %s)", ErrMalformed, len(ext), mapLine, headLine, timeLine)
	}
	field := func(i int, name string) (string, error) {
		v, ok := strings.CutPrefix(ext[i], name+" ")
		if !ok || v == "" {
			return "", fmt.Errorf("%w: line %d is %q, want %q", ErrMalformed, i+4, ext[i], name+" …")
		}
		return v, nil
	}
	m, err := field(0, mapLine)
	if err != nil {
		return c, err
	}
	raw, err := base64.StdEncoding.DecodeString(m)
	if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != m {
		return c, fmt.Errorf("%w: %s %q is not a hash in canonical base64", ErrMalformed, mapLine, m)
	}
	copy(c.Map[:], raw)
	if c.Head, err = field(1, headLine); err != nil {
		return c, err
	}
	if !translog.IsLowerHex(c.Head, 40) {
		return c, fmt.Errorf("%w: %s %q is not a git commit id (40 lowercase hex)", ErrMalformed, headLine, c.Head)
	}
	t, err := field(2, timeLine)
	if err != nil {
		return c, err
	}
	secs, err := strconv.ParseInt(t, 10, 64)
	if err != nil || secs < 0 || strconv.FormatInt(secs, 10) != t {
		if err == nil {
			err = strconv.ErrSyntax
		}
		return c, fmt.Errorf("%w: %s %q is not Unix seconds: %w", ErrMalformed, timeLine, t, err)
	}
	c.Time = time.Unix(secs, 0).UTC()
	return c, nil
}

type signer struct {
	s    keys.Signer
	name string
	hash uint32
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return s.s.Sign(msg) }

// VKey returns the note verifier key ("<origin>+<hash>+<base64>") of a
// log key: what a witness (cairn witness add-log, litewitness) or any
// note verifier is given to check the log's signatures. origin must be a
// note key name (no spaces, no '+': every Origin is one) and pub an
// ed25519 key; anything else is a programming error, and panics.
func VKey(origin string, pub ed25519.PublicKey) string {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		panic(fmt.Sprintf("checkpoint.VKey(%q, %d-byte key): %v", origin, len(pub), err))
	}
	return vkey
}

func verifierFor(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, fmt.Errorf("the verifier key of a %d-byte key for origin %q: %w", len(pub), origin, err)
	}
	return note.NewVerifier(vkey)
}

// Sign signs c with s (an ed25519 key, on disk or in ssh-agent), as a
// note signature whose key name is c's origin.
func Sign(c Checkpoint, s keys.Signer) ([]byte, error) {
	if _, err := Parse(c.Text()); err != nil {
		return nil, fmt.Errorf("signing a checkpoint: %w", err)
	}
	v, err := verifierFor(c.Origin, s.Public())
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: c.Text()}, &signer{s: s, name: v.Name(), hash: v.KeyHash()})
}

// Signed is an opened checkpoint: its content and the key that signed it.
type Signed struct {
	Checkpoint
	Key string // the signing key's id (keys.ID)
	Raw []byte // the whole signed note, cosignatures included, as evidence
}

// ErrUnsigned is the parent of the errors Open returns for a note that no
// candidate key signed.
var ErrUnsigned = errors.New("the checkpoint is not signed by a key trusted to sign it")

// Open verifies a signed checkpoint of origin: one of candidates (the
// keys that may sign it) must have signed it under the key name origin;
// the first whose key hash a signature line names counts. Signature lines
// by other keys (witness cosignatures, keys rotated out) are ignored; a
// bad signature by a candidate is an error.
func Open(msg []byte, origin string, candidates []ed25519.PublicKey) (*Signed, error) {
	claimed, err := Claimed(msg)
	if err != nil {
		return nil, err
	}
	if claimed.Origin != origin {
		return nil, fmt.Errorf("the checkpoint is of origin %s, not %s: it signs another index", claimed.Origin, origin)
	}
	byHash := map[uint32]ed25519.PublicKey{}
	verifiers := map[uint32]note.Verifier{}
	for _, pub := range candidates {
		v, err := verifierFor(origin, pub)
		if err != nil {
			return nil, err
		}
		if _, dup := verifiers[v.KeyHash()]; !dup {
			verifiers[v.KeyHash()], byHash[v.KeyHash()] = v, pub
		}
	}
	n, err := note.Open(msg, verifierFunc(func(name string, hash uint32) (note.Verifier, error) {
		if v, ok := verifiers[hash]; ok && name == origin {
			return v, nil
		}
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}))
	if err != nil {
		var unknown *note.UnknownVerifierError
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unknown) || errors.As(err, &unverified) {
			return nil, fmt.Errorf("%w (%d key(s) may sign for %s): %w", ErrUnsigned, len(candidates), origin, err)
		}
		return nil, fmt.Errorf("checkpoint of %s: %w", origin, err)
	}
	c, err := Parse(n.Text)
	if err != nil {
		return nil, err
	}
	return &Signed{Checkpoint: c, Key: keys.ID(byHash[n.Sigs[0].Hash]), Raw: msg}, nil
}

// Claimed parses a signed checkpoint's text without checking any
// signature: what it claims, to be trusted only once Open has verified
// it. A client reads it to know which head to verify up to (never past
// it) before it holds the history that says which keys may sign.
func Claimed(msg []byte) (Checkpoint, error) {
	// As note.Open splits a note: the text, a blank line, then the
	// signature lines.
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: not a signed note (no blank line before the signatures)", ErrMalformed)
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
