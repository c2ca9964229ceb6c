package gitx

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrRefUnread is ReadRef's answer for a ref it cannot read from git's ref
// files alone (a symbolic ref, a ref storage it does not know): ask git.
var ErrRefUnread = errors.New("ref not readable from the ref files")

// ReadRef returns the object id a ref (refs/…) names by reading git's
// files-backend ref storage directly: the loose ref file, else
// packed-refs, as git itself resolves it. It starts no process, which
// matters to a server that reads its heads on every request. A ref that
// exists in neither is fs.ErrNotExist; one it cannot read alone (a
// symbolic ref, a repository whose refs are not in files) is
// ErrRefUnread, and the caller asks git.
//
// Git moves a loose ref by renaming a new file over it, and packs refs by
// writing packed-refs before it removes the loose files, so every read
// sees a value the ref held.
//
// Each of the two files read before whose stat shows it unchanged since
// (refCache) is answered from memory: a server whose refs git gc packed
// reads them as cheaply as loose ones.
func (r *Repo) ReadRef(ref string) (string, error) {
	if !strings.HasPrefix(ref, "refs/") || strings.Contains(ref, "..") {
		return "", ErrRefUnread
	}
	f, err := r.refs.read(filepath.Join(r.GitDir, filepath.FromSlash(ref)), parseLooseRef)
	switch {
	case err == nil:
		if !r.isID(f.id) {
			return "", ErrRefUnread // "ref: …", or a file mid-write by something that is not git
		}
		return f.id, nil
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return "", err
	}
	// No loose file: a repository whose refs are in a reftable (whose
	// refs/heads is a file) is git's to read, else packed-refs.
	if _, err := os.Stat(filepath.Join(r.GitDir, "reftable")); err == nil {
		return "", ErrRefUnread
	}
	f, err = r.refs.read(filepath.Join(r.GitDir, "packed-refs"), parsePackedRefs)
	if err != nil {
		return "", err // fs.ErrNotExist with no packed-refs
	}
	id, ok := f.packed[ref]
	if !ok {
		return "", fs.ErrNotExist
	}
	if !r.isID(id) {
		return "", ErrRefUnread
	}
	return id, nil
}

// refFile is what ReadRef reads in a ref file: a loose ref's content, or
// packed-refs' refs by name.
type refFile struct {
	id     string
	packed map[string]string
}

func parseLooseRef(b []byte) refFile { return refFile{id: string(bytes.TrimSpace(b))} }

// parsePackedRefs reads packed-refs' lines "ID NAME" (a header line
// starts with #, a peeled tag's line with ^); a name's first line counts.
func parsePackedRefs(b []byte) refFile {
	m := map[string]string{}
	for line := range bytes.Lines(b) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, name, ok := bytes.Cut(line, []byte(" "))
		if _, dup := m[string(name)]; ok && !dup {
			m[string(name)] = string(id)
		}
	}
	return refFile{packed: m}
}

// isID reports whether s is an object id of the repository's format.
func (r *Repo) isID(s string) bool {
	if len(s) != r.HexSize() {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// readRefFile reads a ref file (os.ReadFile; tests count it).
var readRefFile = os.ReadFile

// refCache keeps the ref files ReadRef read (loose refs and packed-refs),
// each parsed, with what a stat of the file said just before the read,
// so that a file that has not changed since is not read again. The file
// is the same if it is the same file (device and inode), of the same
// size and modification time. Git replaces a ref file by renaming a new
// one over it, and the new file can get the freed inode, the same size (a
// loose ref is an object id) and, within the file system clock's tick,
// the same time: so a file modified less than racyWindow before its stat
// is read again every time, until it is older (git calls such an entry
// of its index "racily clean"). Any change after the stat then gives the
// file a later time than the one kept.
type refCache struct {
	mu sync.Mutex
	m  map[string]cachedRef // by the file's path
}

type cachedRef struct {
	f  refFile
	fi os.FileInfo // the file's stat, taken before it was read
}

// racyWindow is how long a ref file must have been left unchanged before
// the stat that preceded its read for the read to be kept: far more than
// any file system's timestamp granularity.
const racyWindow = time.Second

// read returns the file at path parsed, from memory if a stat shows it
// unchanged since it was kept; an error of the stat or the read as they
// give it.
func (c *refCache) read(path string, parse func([]byte) refFile) (refFile, error) {
	statAt := time.Now()
	fi, err := os.Stat(path)
	if err != nil {
		return refFile{}, err
	}
	c.mu.Lock()
	e, ok := c.m[path]
	c.mu.Unlock()
	if ok && os.SameFile(e.fi, fi) && e.fi.Size() == fi.Size() && e.fi.ModTime().Equal(fi.ModTime()) {
		return e.f, nil
	}
	b, err := readRefFile(path)
	if err != nil {
		return refFile{}, err
	}
	f := parse(b)
	if fi.Mode().IsRegular() && fi.ModTime().Before(statAt.Add(-racyWindow)) {
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]cachedRef{}
		}
		c.m[path] = cachedRef{f: f, fi: fi}
		c.mu.Unlock()
	}
	return f, nil
}
