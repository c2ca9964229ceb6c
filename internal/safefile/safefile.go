// Package safefile writes whole files so that a crash leaves the old state
// or the new file, never part of one: the bytes go to a temporary file in
// the same directory, are synced, and the file is then renamed into place
// — or linked, when an existing file must not be replaced — and the
// directory synced, so that the new name survives a crash too.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Options say how to write.
type Options struct {
	Perm      fs.FileMode // mode of the new file (default 0644)
	Exclusive bool        // fail with fs.ErrExist rather than replace a file
	NoSync    bool        // skip fsync: for files whose loss only costs redoing work
}

// Write writes data to path.
func Write(path string, data []byte, o Options) error {
	if o.Perm == 0 {
		o.Perm = 0o644
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a rename or link, a no-op or the spare name
	if err := tmp.Chmod(o.Perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if !o.NoSync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if o.Exclusive {
		if err := os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists: %w", path, fs.ErrExist)
			}
			return err
		}
	} else if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if o.NoSync {
		return nil
	}
	// The new name is durable only once the directory holding it is.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%s is written but may not survive a crash: syncing its directory: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory, so that the names renamed or linked into
// it survive a crash. Where a directory cannot be synced (Windows), it
// is not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && runtime.GOOS != "windows" {
		return err
	}
	return nil
}
