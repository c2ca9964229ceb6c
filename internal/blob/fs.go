package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cairn.dev/cairn/internal/safefile"
)

// FS is the filesystem store: blob sha256:abcd… lives at
// DIR/sha256/ab/abcd…. Writes go to DIR/tmp, are hashed while streaming,
// fsynced, and renamed into place only when they match.
//
// A writer holds an exclusive flock on its temporary file from its
// creation until the file is renamed into place or removed; the kernel
// drops the lock when the writer's process ends, however it ends (kill
// -9, a power cut before the next boot). CollectTemp removes the
// temporary files whose lock it can take: those of dead writers, never
// one that a live writer, in any process, is still writing. (A lock, not
// an age: a writer fed by a stalled mirror may be silent for minutes and
// alive.) Where there is no flock, a temporary file is collected once
// nobody has written it for a day.
type FS struct{ dir string }

var _ Adder = (*FS)(nil)

// NewFS opens (creating if needed) a filesystem store rooted at dir, and
// collects what crashed writers left in it (CollectTemp).
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	s := &FS{dir: dir}
	s.CollectTemp() // best effort: a file it cannot remove now is tried at the next open
	return s, nil
}

// CollectTemp removes the temporary files of writers that died before
// they finished (see FS), and returns how many it removed. The files of
// live writers are left alone.
func (s *FS) CollectTemp() (int, error) {
	dir := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("collecting temporary files (%s): %w", dir, err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), "blob-") {
			continue
		}
		ok, err := collect(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("collecting temporary files (%s): %w", dir, err)
	}
	return removed, nil
}

// collect removes the temporary file name if its writer is gone.
func collect(name string) (bool, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // renamed into place or removed meanwhile
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false, err
	}
	if ok, err := abandoned(f, fi); !ok || err != nil {
		return false, err
	}
	// Holding the lock, remove the name only if it is still this file.
	if now, err := os.Lstat(name); err != nil || !os.SameFile(fi, now) {
		return false, nil
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// createTemp creates a temporary file in DIR/tmp and takes its writer's
// lock. A collector may have taken the file between its creation and the
// lock, and removed it; then it tries again with a new one.
func (s *FS) createTemp() (*os.File, error) {
	for {
		f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "blob-*")
		if err != nil {
			return nil, err
		}
		if err := lockTemp(f); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if now, err := os.Lstat(f.Name()); err == nil && os.SameFile(fi, now) {
			return f, nil
		}
		f.Close() // collected before it was locked: the name is gone
	}
}

func (s *FS) path(ref Ref) string {
	return filepath.Join(s.dir, "sha256", ref.SHA256[:2], ref.SHA256)
}

// Open implements Store.
func (s *FS) Open(_ context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ref.Check(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(ref))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", ref, fs.ErrNotExist)
		}
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{VerifyReader(f, ref), f}, nil
}

// OpenFile opens the stored file of the blob whose sha256 is hex, for
// serving it as it is (a server hands the file to sendfile; clients
// verify what they receive). Its size is the file's.
func (s *FS) OpenFile(hex string) (*os.File, error) {
	if !IsDigest(hex) {
		return nil, fmt.Errorf("%q is not a sha256 digest in hex", hex)
	}
	f, err := os.Open(s.path(Ref{SHA256: hex}))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob sha256:%s: %w", hex, fs.ErrNotExist)
	}
	return f, err
}

// ReadFileInto reads the stored file of the blob whose sha256 is hex into
// buf, as OpenFile would serve it, and returns how many bytes it read:
// len(buf) if the file holds that many or more. It is for small blobs a
// server reads whole on a hot path (safefile.ReadInto: an open, reads
// and a close, no os.File).
func (s *FS) ReadFileInto(hex string, buf []byte) (int, error) {
	if !IsDigest(hex) {
		return 0, fmt.Errorf("%q is not a sha256 digest in hex", hex)
	}
	n, err := safefile.ReadInto(s.path(Ref{SHA256: hex}), buf)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob sha256:%s: %w", hex, fs.ErrNotExist)
	}
	return n, err
}

// Path returns the file holding a stored blob, for readers that need a
// file (a zip's central directory). What is read from it is the store's
// copy: verify it (VerifyReader) before trusting it.
func (s *FS) Path(ref Ref) (string, error) {
	ok, err := s.Stat(context.Background(), ref)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("blob %s: %w", ref, fs.ErrNotExist)
	}
	return s.path(ref), nil
}

// ErrCorrupt is the parent of CorruptError.
var ErrCorrupt = errors.New("stored blob is corrupt")

// CorruptError says that the file a store keeps for a blob no longer
// holds it: the disk changed under the store (bit rot, a hand, a crash of
// an old version). It carries the evidence.
type CorruptError struct {
	Path      string `json:"path"`
	Want      Ref    `json:"want"`
	GotSHA256 string `json:"got_sha256"`
	GotSize   int64  `json:"got_size"`
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("cached blob %s is corrupt: want sha256:%s (%d bytes), the file has sha256:%s (%d bytes)", e.Path, e.Want.SHA256, e.Want.Size, e.GotSHA256, e.GotSize)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Scrub checks the file the store keeps for ref against ref's digest and
// size. If it does not hold the blob, Scrub removes it (so that the blob
// can be fetched again) and returns the evidence; a blob that is whole,
// or not stored, returns nil, nil.
func (s *FS) Scrub(ref Ref) (*CorruptError, error) {
	if err := ref.Check(); err != nil {
		return nil, err
	}
	p := s.path(ref)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	got, err := Digest(f)
	if err != nil {
		return nil, fmt.Errorf("checking the cached blob %s: %w", p, err)
	}
	if got == ref {
		return nil, nil
	}
	ce := &CorruptError{Path: p, Want: ref, GotSHA256: got.SHA256, GotSize: got.Size}
	// Remove the name only if it is still the file that was read: a
	// writer may have renamed a good copy into place meanwhile.
	if before, err := f.Stat(); err == nil {
		if now, err := os.Lstat(p); err == nil && os.SameFile(before, now) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return ce, fmt.Errorf("%w; removing it: %w", ce, err)
			}
		}
	}
	return ce, nil
}

// Remove deletes a blob; removing a missing blob succeeds.
func (s *FS) Remove(hex string) error {
	if !IsDigest(hex) {
		return fmt.Errorf("%q is not a sha256 digest in hex", hex)
	}
	err := os.Remove(s.path(Ref{SHA256: hex}))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Stat implements Store.
func (s *FS) Stat(_ context.Context, ref Ref) (bool, error) {
	if err := ref.Check(); err != nil {
		return false, err
	}
	fi, err := os.Stat(s.path(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.Size() == ref.Size, nil
}

// Put implements Store.
func (s *FS) Put(ctx context.Context, ref Ref, r io.Reader) error {
	if err := ref.Check(); err != nil {
		return err
	}
	if ok, _ := s.Stat(ctx, ref); ok {
		return nil
	}
	v := VerifyReader(r, ref)
	_, err := s.ingest(v, func() Ref { return ref })
	return err
}

// Add implements Adder: the bytes are hashed while they are written.
func (s *FS) Add(ctx context.Context, r io.Reader) (Ref, error) {
	st, err := s.Stage(ctx, r)
	if err != nil {
		return Ref{}, err
	}
	return st.Ref, st.Commit()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// ingest copies r to a temporary file, fsyncs it, and renames it to the
// path of the blob ref() names once r is drained. A read error (a
// *MismatchError from a verifying reader) leaves nothing behind.
func (s *FS) ingest(r io.Reader, ref func() Ref) (Ref, error) {
	st, err := s.stage(r, ref)
	if err != nil {
		return Ref{}, err
	}
	return st.Ref, st.Commit()
}

// Staged is a blob written to the store's temporary directory and hashed,
// not yet in the store: Commit syncs it and moves it into place, Abort
// drops it. Its writer's lock (see FS) is held until then. Staging lets
// a caller issue a blob's fsync together with other writes (a publish
// syncs its artifacts while it builds the index commit that names them).
type Staged struct {
	Ref  Ref
	tmp  *os.File // nil: stored already, or done
	dst  string
	done bool
}

// Stage copies what r yields to a temporary file, hashing it on the way
// in, and returns it staged: the blob is in the store once Commit
// returns. A blob the store holds already needs no Commit (it is a no-op).
func (s *FS) Stage(ctx context.Context, r io.Reader) (*Staged, error) {
	h := sha256.New()
	var n int64
	counted := io.TeeReader(r, writerFunc(func(p []byte) (int, error) {
		n += int64(len(p))
		return h.Write(p)
	}))
	return s.stage(counted, func() Ref { return Ref{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n} })
}

// stage copies r to a temporary file and returns it staged under the ref
// ref() names once r is drained. A read error (a *MismatchError from a
// verifying reader) leaves nothing behind.
func (s *FS) stage(r io.Reader, ref func() Ref) (_ *Staged, err error) {
	tmp, err := s.createTemp()
	if err != nil {
		return nil, err
	}
	// The file stays open, and so locked, until it is renamed into place
	// or removed: a collector never takes it from under this writer.
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
			tmp.Close()
		}
	}()
	if _, err = io.Copy(tmp, r); err != nil {
		return nil, err
	}
	got := ref()
	if fi, serr := os.Stat(s.path(got)); serr == nil && fi.Size() == got.Size {
		os.Remove(tmp.Name()) // stored already: keep the copy we have
		tmp.Close()
		return &Staged{Ref: got, done: true}, nil
	}
	if err = tmp.Chmod(0o444); err != nil {
		return nil, err
	}
	return &Staged{Ref: got, tmp: tmp, dst: s.path(got)}, nil
}

// Commit syncs the staged blob and renames it into place.
func (st *Staged) Commit() (err error) {
	if st.done {
		return nil
	}
	st.done = true
	defer func() {
		if err != nil {
			os.Remove(st.tmp.Name())
		}
		st.tmp.Close()
	}()
	if err = st.tmp.Sync(); err != nil {
		return err
	}
	if err = os.MkdirAll(filepath.Dir(st.dst), 0o755); err != nil {
		return err
	}
	return os.Rename(st.tmp.Name(), st.dst)
}

// Abort drops a staged blob that was not committed.
func (st *Staged) Abort() {
	if !st.done {
		st.done = true
		os.Remove(st.tmp.Name())
		st.tmp.Close()
	}
}
