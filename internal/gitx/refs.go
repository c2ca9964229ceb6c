package gitx

import (
	"bufio"
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
// A loose ref read before whose file has not changed since (refCache) is
// answered from memory, after one stat of the file.
func (r *Repo) ReadRef(ref string) (string, error) {
	if !strings.HasPrefix(ref, "refs/") || strings.Contains(ref, "..") {
		return "", ErrRefUnread
	}
	path := filepath.Join(r.GitDir, filepath.FromSlash(ref))
	statAt := time.Now()
	fi, statErr := os.Stat(path)
	if statErr == nil {
		if id, ok := r.refs.get(ref, fi); ok {
			return id, nil
		}
	}
	if _, err := os.Stat(filepath.Join(r.GitDir, "reftable")); err == nil {
		return "", ErrRefUnread
	}
	b, err := readRefFile(path)
	switch {
	case err == nil:
		id := string(bytes.TrimSpace(b))
		if !r.isID(id) {
			return "", ErrRefUnread // "ref: …", or a file mid-write by something that is not git
		}
		if statErr == nil && fi.Mode().IsRegular() {
			r.refs.put(ref, id, fi, statAt)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return "", err
	}
	f, err := os.Open(filepath.Join(r.GitDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fs.ErrNotExist
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, name, ok := strings.Cut(line, " ")
		if ok && name == ref {
			if !r.isID(id) {
				return "", ErrRefUnread
			}
			return id, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fs.ErrNotExist
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

// readRefFile reads a loose ref's file (os.ReadFile; tests count it).
var readRefFile = os.ReadFile

// refCache keeps the loose refs ReadRef read, each with what a stat of
// its file said just before the read, so that a ref whose file has not
// changed since is answered without reading it again. The file is the
// same if it is the same file (device and inode), of the same size and
// modification time. Git replaces a ref's file by renaming a new one over
// it, and the new file can get the freed inode, the same size (a ref is
// an object id) and, within the file system clock's tick, the same time:
// so a file modified less than racyWindow before its stat is read again
// every time, until it is older (git calls such an entry of its index
// "racily clean"). Any change after the stat then gives the file a later
// time than the one kept.
type refCache struct {
	mu sync.Mutex
	m  map[string]cachedRef
}

type cachedRef struct {
	id string
	fi os.FileInfo // the file's stat, taken before it was read
}

// racyWindow is how long a ref file must have been left unchanged before
// the stat that preceded its read for the read to be kept: far more than
// any file system's timestamp granularity.
const racyWindow = time.Second

// get returns the id kept for ref if fi, a stat of its file now, is the
// file it was read from, unchanged.
func (c *refCache) get(ref string, fi os.FileInfo) (string, bool) {
	c.mu.Lock()
	e, ok := c.m[ref]
	c.mu.Unlock()
	if !ok || !os.SameFile(e.fi, fi) || e.fi.Size() != fi.Size() || !e.fi.ModTime().Equal(fi.ModTime()) {
		return "", false
	}
	return e.id, true
}

// put keeps id, read from ref's file after a stat (fi) taken at statAt,
// if the file was older than racyWindow then.
func (c *refCache) put(ref, id string, fi os.FileInfo, statAt time.Time) {
	if !fi.ModTime().Before(statAt.Add(-racyWindow)) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedRef{}
	}
	c.m[ref] = cachedRef{id: id, fi: fi}
}
