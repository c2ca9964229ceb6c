package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the filesystem store: blob sha256:abcd… lives at
// DIR/sha256/ab/abcd…. Writes go to DIR/tmp, are hashed while streaming,
// fsynced, and renamed into place only when they match.
type FS struct{ dir string }

var _ Store = (*FS)(nil)

// NewFS opens (creating if needed) a filesystem store rooted at dir.
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	return &FS{dir: dir}, nil
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
func (s *FS) Put(ctx context.Context, ref Ref, r io.Reader) (err error) {
	if err := ref.Check(); err != nil {
		return err
	}
	if ok, _ := s.Stat(ctx, ref); ok {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), ref.SHA256[:8]+"-*")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, VerifyReader(r, ref)); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	dst := s.path(ref)
	if err = os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), 0o444); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
