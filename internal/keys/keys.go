// Package keys holds cairn's signing keys: ed25519 keys in OpenSSH format,
// identified by their OpenSSH SHA256 fingerprint, that sign either from a
// key file or through an ssh-agent.
//
// A key id is exactly what `ssh-keygen -lf` prints: "SHA256:" followed by
// the unpadded base64 of the sha256 of the key's SSH wire encoding. Because
// the id is a hash of the public key, a public key whose fingerprint equals
// an id is that key, whoever supplied it.
package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/ssh"

	"cairn.dev/cairn/internal/safefile"
)

// ErrNotEd25519 is returned for keys of any other algorithm.
var ErrNotEd25519 = errors.New("not an ed25519 key")

// ErrWeakKey is returned for ed25519 public keys that are not a canonical
// encoding of a point of large order. A small-order key lets anyone make
// signatures that verify, whatever the message.
var ErrWeakKey = errors.New("weak ed25519 public key")

// CheckPublic refuses weak keys: a non-canonical encoding, or a point whose
// order divides the cofactor.
func CheckPublic(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %d bytes", ErrWeakKey, len(pub))
	}
	if checked.has(pub) {
		return nil
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return fmt.Errorf("%w: not a curve point", ErrWeakKey)
	}
	if !bytes.Equal(p.Bytes(), pub) {
		return fmt.Errorf("%w: non-canonical encoding", ErrWeakKey)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: small order", ErrWeakKey)
	}
	checked.add(pub)
	return nil
}

// checked remembers the keys CheckPublic found strong: a replay meets the
// same few keys in every grant, root record and key document it reads,
// and decompressing a point costs as much as a third of a signature
// check. The result is a pure function of the key's bytes, so the cache
// needs no invalidation; it is emptied when full.
var checked strongKeys

type strongKeys struct {
	mu   sync.RWMutex
	keys map[[ed25519.PublicKeySize]byte]struct{}
}

const maxStrongKeys = 1 << 16

func (c *strongKeys) has(pub ed25519.PublicKey) bool {
	c.mu.RLock()
	_, ok := c.keys[[ed25519.PublicKeySize]byte(pub)]
	c.mu.RUnlock()
	return ok
}

func (c *strongKeys) add(pub ed25519.PublicKey) {
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= maxStrongKeys {
		c.keys = make(map[[ed25519.PublicKeySize]byte]struct{})
	}
	c.keys[[ed25519.PublicKeySize]byte(pub)] = struct{}{}
	c.mu.Unlock()
}

// Signer signs with one ed25519 key.
//
// Sign returns a raw 64-byte ed25519 signature over data. Implementations
// are safe for concurrent use.
type Signer interface {
	Public() ed25519.PublicKey
	Sign(data []byte) ([]byte, error)
}

// ID returns the OpenSSH SHA256 fingerprint of an ed25519 public key.
func ID(pub ed25519.PublicKey) string {
	sum := Digest(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Digest returns the sha256 of the key's SSH wire encoding: the bytes
// behind its fingerprint.
func Digest(pub ed25519.PublicKey) [32]byte {
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err) // only for a key of the wrong length: a programming error
	}
	return sha256.Sum256(sk.Marshal())
}

// IDHex returns the fingerprint digest in lowercase hex, used in index paths.
func IDHex(pub ed25519.PublicKey) string {
	d := Digest(pub)
	return hex.EncodeToString(d[:])
}

// HexFromID converts a "SHA256:…" fingerprint to the hex of its digest.
func HexFromID(id string) (string, error) {
	d, err := digestOfID(id)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(d[:]), nil
}

// CheckID returns HexFromID's error, nil for a key id it converts.
func CheckID(id string) error {
	_, err := digestOfID(id)
	return err
}

// idLen is the length of a fingerprint's base64: 32 bytes, unpadded.
const idLen = 43 // base64.RawStdEncoding.EncodedLen(sha256.Size)

// digestOfID returns the digest a "SHA256:…" fingerprint names. A key
// has one spelling, the one ID gives and ssh-keygen -l prints: 43
// characters of unpadded standard base64 whose unused last bits are
// zero. Another spelling of the same digest (a line break inside, the
// last character with those bits set) is refused, so that a key id read
// from a record, a grant or a policy names one key one way: two strings
// for one key could be counted as two issuers, or fail to match the
// issuer a revocation names.
func digestOfID(id string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	b64, ok := strings.CutPrefix(id, "SHA256:")
	if !ok {
		return d, fmt.Errorf("key id %q: want an OpenSSH fingerprint starting SHA256:", id)
	}
	bad := func() error {
		return fmt.Errorf("key id %q: not a SHA256 fingerprint as ssh-keygen -l prints one (SHA256: and %d characters of unpadded base64)", id, idLen)
	}
	if len(b64) != idLen {
		return d, bad()
	}
	// Decoded on the stack. The decoder skips line breaks: one inside
	// leaves fewer than 32 bytes, refused below.
	var src [idLen]byte
	copy(src[:], b64)
	n, err := base64.RawStdEncoding.Strict().Decode(d[:], src[:])
	if err != nil || n != sha256.Size {
		return [sha256.Size]byte{}, bad()
	}
	return d, nil
}

// FormatPublic returns the authorized_keys line of pub ("ssh-ed25519 AAAA…"),
// without a comment or newline.
func FormatPublic(pub ed25519.PublicKey) string {
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))
}

// ParsePublic parses an authorized_keys line (with or without a comment).
func ParsePublic(line []byte) (ed25519.PublicKey, string, error) {
	sk, comment, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return nil, "", fmt.Errorf("parse public key: %w", err)
	}
	pub, err := edPublic(sk)
	return pub, comment, err
}

func edPublic(sk ssh.PublicKey) (ed25519.PublicKey, error) {
	if sk.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("%w: %s", ErrNotEd25519, sk.Type())
	}
	cpk, ok := sk.(ssh.CryptoPublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotEd25519, sk.Type())
	}
	pub, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotEd25519, sk.Type())
	}
	return pub, CheckPublic(pub)
}

// Generate writes a new ed25519 key to path (OpenSSH private key format,
// mode 0600) and path+".pub", refusing to overwrite either. It returns the
// public key.
func Generate(path, comment string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	line := FormatPublic(pub)
	if comment != "" {
		line += " " + comment
	}
	if err := writeNew(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		os.Remove(path)
		return nil, err
	}
	return pub, nil
}

// NoDirError reports that a new key's directory does not exist. Like
// ssh-keygen, cairn makes no directory for a key: a mistyped path should
// not leave a private key somewhere unexpected. It unwraps to
// fs.ErrNotExist.
type NoDirError struct {
	Path string // the key file asked for
	Dir  string // its directory, which does not exist
}

func (e *NoDirError) Error() string {
	return fmt.Sprintf("key %s: directory %s does not exist", e.Path, e.Dir)
}

// Unwrap makes errors.Is(err, fs.ErrNotExist) hold.
func (e *NoDirError) Unwrap() error { return fs.ErrNotExist }

// writeNew writes a key file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	err := safefile.Write(path, data, safefile.Options{Perm: perm, Exclusive: true})
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite a key", path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(path)
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return &NoDirError{Path: path, Dir: dir}
		}
	}
	return err
}

// fileSigner signs with a private key held in memory.
type fileSigner struct{ priv ed25519.PrivateKey }

func (s fileSigner) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }
func (s fileSigner) Sign(data []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, data), nil
}

// NewSigner returns a Signer for an in-memory private key.
func NewSigner(priv ed25519.PrivateKey) Signer { return fileSigner{priv} }

// LoadPrivate reads an unencrypted OpenSSH ed25519 private key file.
func LoadPrivate(path string) (Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("%s is passphrase-protected: add it to ssh-agent (ssh-add %s) and pass its .pub file", path, path)
		}
		return nil, fmt.Errorf("%s: not an OpenSSH private key: %w", path, err)
	}
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		return fileSigner{*k}, nil
	case ed25519.PrivateKey:
		return fileSigner{k}, nil
	default:
		return nil, fmt.Errorf("%s: %w (%T)", path, ErrNotEd25519, raw)
	}
}

// LoadPublic reads a public key from a .pub file, or from the public half
// of a private key file.
func LoadPublic(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if pub, _, err := ParsePublic(data); err == nil {
		return pub, nil
	} else if !strings.Contains(string(data), "PRIVATE KEY") {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := LoadPrivate(path)
	if err != nil {
		return nil, err
	}
	return s.Public(), nil
}

// IDFromHex converts the hex digest of a fingerprint back to "SHA256:…".
func IDFromHex(h string) (string, error) {
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != sha256.Size {
		return "", fmt.Errorf("%q is not a fingerprint digest", h)
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(raw), nil
}
