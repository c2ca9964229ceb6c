package install

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"cairn.dev/cairn/internal/blob"
)

// Limits bound what one archive may unpack to.
type Limits struct {
	MaxFile    int64 // bytes of one file (default 4 GiB)
	MaxTotal   int64 // bytes of one archive's files (default 16 GiB)
	MaxEntries int   // entries of one archive (default 1,000,000)
}

func (l Limits) withDefaults() Limits {
	if l.MaxFile == 0 {
		l.MaxFile = 4 << 30
	}
	if l.MaxTotal == 0 {
		l.MaxTotal = 16 << 30
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = 1_000_000
	}
	return l
}

// ErrUnsafe is the parent of UnsafeError.
var ErrUnsafe = errors.New("unsafe archive")

// UnsafeError is an archive entry refused: a path out of the target, a
// link out of it, a device, a size over the limits. It is a security
// error and names the archive and entry.
type UnsafeError struct {
	Archive string
	Entry   string
	Why     string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("archive %s: entry %q: %s", e.Archive, e.Entry, e.Why)
}

func (e *UnsafeError) Unwrap() error { return ErrUnsafe }

// File is one installed file, as the manifest lists it.
type File struct {
	Path   string `json:"path"` // slash-separated, relative to the target
	Type   string `json:"type"` // file, dir, symlink
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Mode   string `json:"mode,omitempty"` // 0644 or 0755
	Target string `json:"target,omitempty"`
}

// unpacker writes one archive's entries under root (a package's
// directory in the staging tree), refusing anything unsafe.
type unpacker struct {
	archive string
	root    string // the directory entries land in
	prefix  string // the slash path of root in the target, for the manifest
	limits  Limits
	total   int64
	entries int
	links   map[string]bool // symlinks made so far: nothing is written through one
	files   []File
}

func (u *unpacker) refuse(entry, format string, args ...any) error {
	return &UnsafeError{Archive: u.archive, Entry: entry, Why: fmt.Sprintf(format, args...)}
}

// local checks an entry name and returns it cleaned.
func (u *unpacker) local(name string) (string, error) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if name == "" || strings.Contains(name, "\\") || path.IsAbs(name) || !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", u.refuse(name, "its path leaves the target directory (absolute, '..' or not a plain relative path)")
	}
	for p := path.Dir(clean); p != "."; p = path.Dir(p) {
		if u.links[p] {
			return "", u.refuse(name, "its path goes through the symlink %s", p)
		}
	}
	u.entries++
	if u.entries > u.limits.MaxEntries {
		return "", u.refuse(name, "the archive has more than %d entries", u.limits.MaxEntries)
	}
	return clean, nil
}

func (u *unpacker) dir(name string) error {
	clean, err := u.local(name)
	if err != nil {
		return err
	}
	if clean == "." {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(u.root, filepath.FromSlash(clean)), 0o755); err != nil {
		return err
	}
	u.files = append(u.files, File{Path: path.Join(u.prefix, clean), Type: "dir"})
	return nil
}

func (u *unpacker) file(name string, mode fs.FileMode, size int64, r io.Reader) error {
	clean, err := u.local(name)
	if err != nil {
		return err
	}
	if size > u.limits.MaxFile {
		return u.refuse(name, "%d bytes, over the %d-byte limit for one file", size, u.limits.MaxFile)
	}
	dst := filepath.Join(u.root, filepath.FromSlash(clean))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return u.refuse(name, "the archive holds this path twice")
	}
	if err != nil {
		return err
	}
	h := sha256.New()
	// Read one byte past the limits, so that an entry that lies about its
	// size (or a zip bomb) is caught.
	limit := min(u.limits.MaxFile, u.limits.MaxTotal-u.total) + 1
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	if n == limit {
		return u.refuse(name, "over the size limits (%d bytes a file, %d an archive)", u.limits.MaxFile, u.limits.MaxTotal)
	}
	u.total += n
	u.files = append(u.files, File{Path: path.Join(u.prefix, clean), Type: "file", SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Mode: fmt.Sprintf("%04o", perm)})
	return nil
}

func (u *unpacker) symlink(name, target string) error {
	clean, err := u.local(name)
	if err != nil {
		return err
	}
	resolved := path.Join(path.Dir(clean), target)
	if target == "" || path.IsAbs(target) || strings.Contains(target, "\\") || !filepath.IsLocal(filepath.FromSlash(resolved)) {
		return u.refuse(name, "a symlink to %q points out of the package's directory", target)
	}
	dst := filepath.Join(u.root, filepath.FromSlash(clean))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(target, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return u.refuse(name, "the archive holds this path twice")
		}
		return err
	}
	u.links[clean] = true
	u.files = append(u.files, File{Path: path.Join(u.prefix, clean), Type: "symlink", Target: target})
	return nil
}

// unpackTar unpacks a tar stream.
func (u *unpacker) unpackTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive %s: %w", u.archive, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = u.dir(h.Name)
		case tar.TypeReg:
			err = u.file(h.Name, h.FileInfo().Mode(), h.Size, tr)
		case tar.TypeSymlink:
			err = u.symlink(h.Name, h.Linkname)
		case tar.TypeLink:
			err = u.refuse(h.Name, "hard links are not unpacked (to %q)", h.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			err = u.refuse(h.Name, "device and fifo entries are never unpacked")
		case tar.TypeXGlobalHeader:
		default:
			err = u.refuse(h.Name, "entry type %q is not a file, directory or symlink", h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

// unpackZip unpacks a zip file.
func (u *unpacker) unpackZip(f *os.File, size int64) error {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return fmt.Errorf("archive %s: %w", u.archive, err)
	}
	for _, zf := range zr.File {
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			err = u.dir(zf.Name)
		case mode&fs.ModeSymlink != 0:
			err = u.zipLink(zf)
		case mode.IsRegular():
			var rc io.ReadCloser
			if rc, err = zf.Open(); err == nil {
				err = u.file(zf.Name, mode, int64(zf.UncompressedSize64), rc)
				rc.Close()
			}
		default:
			err = u.refuse(zf.Name, "device and fifo entries are never unpacked")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (u *unpacker) zipLink(zf *zip.File) error {
	rc, err := zf.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	target, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return err
	}
	return u.symlink(zf.Name, string(target))
}

// unpack unpacks the blob ref stored at src (an artifact named file)
// under root, verifying its digest again as it reads: the cache is a
// disk, not a proof. Tarballs (.tar, .tar.gz, .tgz) and zips are
// unpacked; any other file is copied as it is.
func unpack(src string, ref blob.Ref, file, root, prefix string, limits Limits) ([]File, error) {
	u := &unpacker{archive: file, root: root, prefix: prefix, limits: limits.withDefaults(), links: map[string]bool{}}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	lower := strings.ToLower(file)
	verified := blob.VerifyReader(f, ref)
	streamed := false
	switch {
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		streamed = true
		gz, err := gzip.NewReader(verified)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", file, err)
		}
		if err := u.unpackTar(gz); err != nil {
			return nil, err
		}
	case strings.HasSuffix(lower, ".tar"):
		streamed = true
		if err := u.unpackTar(verified); err != nil {
			return nil, err
		}
	case strings.HasSuffix(lower, ".zip"):
		if _, err := io.Copy(io.Discard, verified); err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if err := u.unpackZip(f, st.Size()); err != nil {
			return nil, err
		}
	default:
		streamed = true
		if err := u.file(file, 0o644, ref.Size, verified); err != nil {
			return nil, err
		}
	}
	if streamed {
		// Read to the end, so that the digest is checked over every byte
		// (and trailing bytes after an archive's end are not ignored).
		if _, err := io.Copy(io.Discard, verified); err != nil {
			return nil, fmt.Errorf("archive %s: %w", file, err)
		}
	}
	return u.files, nil
}
