package gitx

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
func (r *Repo) ReadRef(ref string) (string, error) {
	if !strings.HasPrefix(ref, "refs/") || strings.Contains(ref, "..") {
		return "", ErrRefUnread
	}
	if _, err := os.Stat(filepath.Join(r.GitDir, "reftable")); err == nil {
		return "", ErrRefUnread
	}
	b, err := os.ReadFile(filepath.Join(r.GitDir, filepath.FromSlash(ref)))
	switch {
	case err == nil:
		id := string(bytes.TrimSpace(b))
		if !r.isID(id) {
			return "", ErrRefUnread // "ref: …", or a file mid-write by something that is not git
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
