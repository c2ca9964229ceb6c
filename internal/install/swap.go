package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// swap puts the staging directory in place of into: a plain rename when
// into does not exist, else an atomic exchange (exchange), after which the
// old install, now at staging, is removed. It reports whether an install
// was replaced.
func swap(staging, into string) (bool, error) {
	if _, err := os.Lstat(into); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(staging, into); err != nil {
			return false, err
		}
		return false, syncDir(filepath.Dir(into))
	}
	if err := os.Remove(into); err == nil { // an empty directory
		if err := os.Rename(staging, into); err != nil {
			return false, err
		}
		return false, syncDir(filepath.Dir(into))
	}
	if err := exchange(staging, into); err != nil {
		return false, err
	}
	if err := syncDir(filepath.Dir(into)); err != nil {
		return true, err
	}
	return true, os.RemoveAll(staging)
}
