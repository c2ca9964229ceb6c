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
	"sync"
)

// Options say how to write.
type Options struct {
	Perm      fs.FileMode // mode of the new file (default 0644)
	Exclusive bool        // fail with fs.ErrExist rather than replace a file
	NoSync    bool        // skip fsync: for files whose loss only costs redoing work
}

// Write writes data to path.
func Write(path string, data []byte, o Options) error {
	return WriteParts(path, [][]byte{data}, o)
}

// WriteParts writes the parts one after the other to path, as Write
// writes them joined (with no copy that joins them).
func WriteParts(path string, parts [][]byte, o Options) error {
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
	for _, data := range parts {
		if _, err := tmp.Write(data); err != nil {
			tmp.Close()
			return err
		}
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

// Pending is a file written under a temporary name beside its path and
// not yet in place: several can be synced at once (SyncAll), which a
// journaling file system commits together, then installed in the order
// the caller needs, and their directory synced once (SyncDir).
type Pending struct {
	f    *os.File
	path string
	done bool
}

// Create writes data to a temporary file beside path, with mode perm
// (default 0644), neither synced nor in place: Sync or SyncAll, then
// Install, or Discard.
func Create(path string, data []byte, perm fs.FileMode) (*Pending, error) {
	if perm == 0 {
		perm = 0o644
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return nil, err
	}
	p := &Pending{f: tmp, path: path}
	if err := tmp.Chmod(perm); err != nil {
		p.Discard()
		return nil, err
	}
	if _, err := tmp.Write(data); err != nil {
		p.Discard()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return p, nil
}

// Sync makes the file's bytes durable.
func (p *Pending) Sync() error {
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", p.path, err)
	}
	return nil
}

// Install renames the file into place (replacing what is there). Its
// name is durable once its directory is synced.
func (p *Pending) Install() error {
	if p.done {
		return fmt.Errorf("%s: installed or discarded already", p.path)
	}
	p.done = true
	if err := p.f.Close(); err != nil {
		os.Remove(p.f.Name())
		return err
	}
	if err := os.Rename(p.f.Name(), p.path); err != nil {
		os.Remove(p.f.Name())
		return err
	}
	return nil
}

// Discard removes the temporary file, unless it was installed.
func (p *Pending) Discard() {
	if !p.done {
		p.done = true
		p.f.Close()
		os.Remove(p.f.Name())
	}
}

// SyncAll syncs the files at once and returns the first failure: their
// fsyncs are issued together, so that the file system can commit them in
// one journal transaction instead of one after another.
func SyncAll(ps ...*Pending) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Sync()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SyncDir syncs a directory, so that the names installed in it survive a
// crash (see Install). Where a directory cannot be synced (Windows), it
// is not an error.
func SyncDir(dir string) error { return syncDir(dir) }
