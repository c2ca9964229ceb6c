// Package blob is cairn's content-addressed store: bytes named by their
// sha256 and size. Package archives, descriptors and evidence files are
// blobs. A store never trusts where bytes come from: every write is hashed
// while it streams and lands only when digest and size match, and every
// read is verified the same way and cut off at size+1 bytes.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// Ref names a blob.
type Ref struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func (r Ref) String() string { return fmt.Sprintf("sha256:%s (%d bytes)", r.SHA256, r.Size) }

// IsDigest reports whether s is a lowercase hex sha256.
func IsDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Check reports whether r is a well-formed reference.
func (r Ref) Check() error {
	if !IsDigest(r.SHA256) || r.Size < 0 {
		return fmt.Errorf("blob reference %q/%d: want a lowercase hex sha256 and a size ≥ 0", r.SHA256, r.Size)
	}
	return nil
}

// ErrMismatch is the parent of MismatchError.
var ErrMismatch = errors.New("blob does not match its digest")

// MismatchError is a security error: bytes that are not the blob they were
// asked for. It carries the evidence.
type MismatchError struct {
	Want      Ref
	GotSHA256 string // empty when the size alone was wrong
	GotSize   int64  // at most Want.Size+1: reading stops there
}

func (e *MismatchError) Error() string {
	if e.GotSize != e.Want.Size {
		more := ""
		if e.GotSize > e.Want.Size {
			more = " or more"
		}
		return fmt.Sprintf("SECURITY ERROR: blob sha256:%s: got %d%s bytes, want %d", e.Want.SHA256, e.GotSize, more, e.Want.Size)
	}
	return fmt.Sprintf("SECURITY ERROR: blob sha256:%s: content hashes to sha256:%s", e.Want.SHA256, e.GotSHA256)
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Store holds blobs.
//
// Open returns fs.ErrNotExist (wrapped) for a missing blob; its reader
// returns a *MismatchError instead of io.EOF when the stored bytes are not
// the blob. Put reads r and stores the blob only if the bytes match ref,
// returning a *MismatchError otherwise and storing nothing; putting a blob
// that is already stored succeeds. Stat reports whether a blob is stored.
// Implementations are safe for concurrent use, including concurrent Puts
// of the same blob.
type Store interface {
	Open(ctx context.Context, ref Ref) (io.ReadCloser, error)
	Put(ctx context.Context, ref Ref, r io.Reader) error
	Stat(ctx context.Context, ref Ref) (bool, error)
}

// verifier hashes what passes through it and checks ref at the end.
type verifier struct {
	r    io.Reader
	want Ref
	h    hash.Hash
	n    int64
	err  error
}

// VerifyReader wraps r so that it yields at most ref.Size+1 bytes and
// ends with a *MismatchError instead of io.EOF if they are not the blob.
func VerifyReader(r io.Reader, ref Ref) io.Reader {
	return &verifier{r: io.LimitReader(r, ref.Size+1), want: ref, h: sha256.New()}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.want.Size {
		v.err = &MismatchError{Want: v.want, GotSize: v.n}
		return n, v.err
	}
	if err == io.EOF {
		got := hex.EncodeToString(v.h.Sum(nil))
		if v.n != v.want.Size || got != v.want.SHA256 {
			v.err = &MismatchError{Want: v.want, GotSHA256: got, GotSize: v.n}
			return n, v.err
		}
		v.err = io.EOF
	}
	return n, err
}

// Digest hashes r to a Ref.
func Digest(r io.Reader) (Ref, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Ref{}, err
	}
	return Ref{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// DigestBytes returns the Ref of b.
func DigestBytes(b []byte) Ref {
	sum := sha256.Sum256(b)
	return Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// Adder is a Store that can take bytes whose digest is not known yet,
// hashing them on the way in: one pass instead of two.
type Adder interface {
	Store
	// Add stores what r yields and returns its Ref.
	Add(ctx context.Context, r io.Reader) (Ref, error)
}

// PutFile stores the file at path, returning its Ref.
func PutFile(ctx context.Context, s Store, path string) (Ref, error) {
	f, err := os.Open(path)
	if err != nil {
		return Ref{}, err
	}
	defer f.Close()
	if a, ok := s.(Adder); ok {
		return a.Add(ctx, f)
	}
	ref, err := Digest(f)
	if err != nil {
		return Ref{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Ref{}, err
	}
	return ref, s.Put(ctx, ref, f)
}

// ReadAll reads a whole blob, verified. For small blobs (descriptors).
func ReadAll(ctx context.Context, s Store, ref Ref) ([]byte, error) {
	rc, err := s.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
