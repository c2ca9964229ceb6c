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
	"slices"
	"strings"
	"syscall"

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
// directory in the staging tree), refusing anything unsafe. Every write
// goes through an os.Root, so that nothing an archive holds can write
// outside the package's directory, whatever links it made; and every
// symlink is judged once the archive is whole (judgeLinks), against every
// link the archive made, so that a chain of links that each look local,
// or a target that becomes a link later, cannot point out of it.
type unpacker struct {
	archive string
	root    *os.Root // the package's directory
	prefix  string   // the slash path of root in the target, for the manifest
	limits  Limits
	total   int64
	entries int
	links   map[string]string // symlinks made so far, by clean path: their targets
	order   []string          // the symlinks, in archive order
	regular map[string]File   // regular files made so far, by clean path
	files   []File
	beneath map[string]string // first path elements, case-folded, that are other packages' directories: their names
}

// maxHops bounds the links one resolution follows, as the kernel's
// MAXSYMLINKS (40) does.
const maxHops = 40

func (u *unpacker) refuse(entry, format string, args ...any) error {
	return &UnsafeError{Archive: u.archive, Entry: entry, Why: fmt.Sprintf(format, args...)}
}

// inside reports whether name is a plain relative slash path that stays
// in the package's directory, and returns it cleaned.
func inside(name string) (string, bool) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if name == "" || strings.Contains(name, "\\") || path.IsAbs(name) || !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", false
	}
	return clean, true
}

// through returns the first symlink the archive made that clean's
// parents go through, or "".
func (u *unpacker) through(clean string) string {
	var via string
	for p := path.Dir(clean); p != "."; p = path.Dir(p) {
		if _, ok := u.links[p]; ok {
			via = p
		}
	}
	return via
}

// local checks an entry name and returns it cleaned.
func (u *unpacker) local(name string) (string, error) {
	clean, ok := inside(name)
	if !ok {
		return "", u.refuse(name, "its path leaves the target directory (absolute, '..' or not a plain relative path)")
	}
	if via := u.through(clean); via != "" {
		return "", u.refuse(name, "its path goes through the symlink %s", via)
	}
	first, _, _ := strings.Cut(clean, "/")
	if other, ok := u.beneath[strings.ToLower(first)]; ok {
		return "", u.refuse(name, "its path is in the directory of package %s, installed beneath this one", other)
	}
	u.entries++
	if u.entries > u.limits.MaxEntries {
		return "", u.refuse(name, "the archive has more than %d entries", u.limits.MaxEntries)
	}
	return clean, nil
}

// mkdirs makes the directories above clean.
func (u *unpacker) mkdirs(clean string) error {
	if d := path.Dir(clean); d != "." {
		return u.root.MkdirAll(d, 0o755)
	}
	return nil
}

func (u *unpacker) dir(name string) error {
	clean, err := u.local(name)
	if err != nil {
		return err
	}
	if clean == "." {
		return nil
	}
	if _, ok := u.links[clean]; ok {
		return u.refuse(name, "the archive holds this path twice")
	}
	if err := u.root.MkdirAll(clean, 0o755); err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
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
	if err := u.mkdirs(clean); err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	// Only the permission bits a user can use: never setuid, setgid or
	// sticky, never writable by others.
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	f, err := u.root.OpenFile(clean, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return u.refuse(name, "the archive holds this path twice")
	}
	if err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
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
	fl := File{Path: path.Join(u.prefix, clean), Type: "file", SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Mode: fmt.Sprintf("%04o", perm)}
	u.regular[clean] = fl
	u.files = append(u.files, fl)
	return nil
}

// copyBlob installs a file that is not an archive: the kernel copies it
// from the cache (a clone of its extents where the file system shares
// them, else copy_file_range), and the copy is then read back and
// verified against the blob's digest: one pass of sha256, over the bytes
// installed rather than the bytes cached. A copy that does not match
// fails with the blob's MismatchError, as a verifying reader would.
func (u *unpacker) copyBlob(name string, src *os.File, ref blob.Ref) error {
	clean, err := u.local(name)
	if err != nil {
		return err
	}
	if ref.Size > u.limits.MaxFile || ref.Size > u.limits.MaxTotal-u.total {
		return u.refuse(name, "over the size limits (%d bytes a file, %d an archive)", u.limits.MaxFile, u.limits.MaxTotal)
	}
	if err := u.mkdirs(clean); err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	const perm = 0o644
	f, err := u.root.OpenFile(clean, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return u.refuse(name, "the archive holds this path twice")
	}
	if err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	defer f.Close()
	if !clone(f, src) {
		// io.Copy between two files is copy_file_range where the kernel
		// has it; one byte more than the blob shows a longer file.
		if _, err := io.Copy(f, io.LimitReader(src, ref.Size+1)); err != nil {
			return fmt.Errorf("archive %s: copying %s: %w", u.archive, src.Name(), err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := verifyFile(f, ref); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	u.total += ref.Size
	fl := File{Path: path.Join(u.prefix, clean), Type: "file", SHA256: ref.SHA256, Size: ref.Size, Mode: fmt.Sprintf("%04o", perm)}
	u.regular[clean] = fl
	u.files = append(u.files, fl)
	return nil
}

// verifyFile reads f from its offset to its end (or one byte past
// ref's size: a longer file is not read to its end) and checks it is ref.
func verifyFile(f *os.File, ref blob.Ref) error {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	r := io.LimitReader(f, ref.Size+1)
	var n int64
	for {
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != ref.Size || got != ref.SHA256 {
		return &blob.MismatchError{Want: ref, GotSHA256: got, GotSize: n}
	}
	return nil
}

// hardLink links name to target, a regular file the archive made before
// (a tar hard link names its target from the archive's root).
func (u *unpacker) hardLink(name, target string) error {
	clean, err := u.local(name)
	if err != nil {
		return err
	}
	old, ok := inside(target)
	if !ok {
		return u.refuse(name, "a hard link to %q points out of the package's directory", target)
	}
	if via := u.through(old); via != "" {
		return u.refuse(name, "a hard link to %q goes through the symlink %s", target, via)
	}
	fl, ok := u.regular[old]
	if !ok {
		return u.refuse(name, "a hard link to %q: no regular file of that name earlier in the archive", target)
	}
	if err := u.mkdirs(clean); err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	if err := u.root.Link(old, clean); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return u.refuse(name, "the archive holds this path twice")
		}
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	fl.Path = path.Join(u.prefix, clean)
	u.regular[clean] = fl
	u.files = append(u.files, fl)
	return nil
}

func (u *unpacker) symlink(name, target string) error {
	clean, err := u.local(name)
	if err != nil {
		return err
	}
	// A first look at the target alone; judgeLinks judges it again
	// against every link of the archive once the archive is whole.
	resolved := path.Join(path.Dir(clean), target)
	if target == "" || path.IsAbs(target) || strings.Contains(target, "\\") || !filepath.IsLocal(filepath.FromSlash(resolved)) {
		return u.refuse(name, "a symlink to %q points out of the package's directory", target)
	}
	if err := u.mkdirs(clean); err != nil {
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	if err := u.root.Symlink(target, clean); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return u.refuse(name, "the archive holds this path twice")
		}
		return fmt.Errorf("archive %s: entry %s: %w", u.archive, name, err)
	}
	u.links[clean] = target
	u.order = append(u.order, clean)
	u.files = append(u.files, File{Path: path.Join(u.prefix, clean), Type: "symlink", Target: target})
	return nil
}

var (
	errOut  = errors.New("points out")
	errLoop = errors.New("loop")
)

// resolve walks target from the directory dir (slash components below
// the package's root) as the kernel would in the finished tree: each
// component that is one of the archive's links is replaced by where that
// link leads before the next is read, so "l/.." is the parent of l's
// target, not dir. It returns errOut as soon as the walk climbs above the
// root, errLoop after maxHops links.
func (u *unpacker) resolve(dir []string, target string, hops *int) ([]string, error) {
	at := slices.Clone(dir)
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return nil, errOut
			}
			at = at[:len(at)-1]
			continue
		}
		at = append(at, c)
		t, ok := u.links[strings.Join(at, "/")]
		if !ok {
			continue
		}
		if *hops++; *hops > maxHops {
			return nil, errLoop
		}
		var err error
		if at, err = u.resolve(at[:len(at)-1], t, hops); err != nil {
			return nil, err
		}
	}
	return at, nil
}

// judgeLinks judges every symlink of the finished archive: its target,
// followed through every other link, must stay in the package's
// directory. The operating system then resolves each one through the
// os.Root, which refuses a path that leaves it: a second opinion that also
// holds where names differ only in case.
func (u *unpacker) judgeLinks() error {
	for _, l := range u.order {
		hops := 0
		var dir []string
		if d := path.Dir(l); d != "." {
			dir = strings.Split(d, "/")
		}
		switch _, err := u.resolve(dir, u.links[l], &hops); err {
		case errOut:
			return u.refuse(l, "a symlink to %q points out of the package's directory (through the archive's other links)", u.links[l])
		case errLoop:
			return u.refuse(l, "a symlink to %q: a loop of symlinks (more than %d links deep)", u.links[l], maxHops)
		}
	}
	for _, l := range u.order {
		_, err := u.root.Stat(l)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return u.refuse(l, "a symlink to %q does not resolve inside the package's directory: %v", u.links[l], err)
		}
	}
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
			err = u.hardLink(h.Name, h.Linkname)
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
// under root (but for the directories of the packages beneath it),
// verifying its digest again as it reads: the cache is a
// disk, not a proof. Tarballs (.tar, .tar.gz, .tgz) and zips are
// unpacked; any other file is copied as it is.
func unpack(src string, ref blob.Ref, file, dir, prefix string, beneath map[string]string, limits Limits) ([]File, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	u := &unpacker{archive: file, root: root, prefix: prefix, limits: limits.withDefaults(), links: map[string]string{}, regular: map[string]File{}, beneath: beneath}
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
		if err := u.copyBlob(file, f, ref); err != nil {
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
	if err := u.judgeLinks(); err != nil {
		return nil, err
	}
	return u.files, nil
}
