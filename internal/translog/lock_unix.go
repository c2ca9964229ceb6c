//go:build unix

package translog

import (
	"fmt"
	"os"
	"path/filepath"

	"cairn.dev/cairn/internal/safefile"
)

// takeLock takes the log's write lock, waiting for another writer to be
// done; the kernel drops it when the holder's process ends, however it ends.
func takeLock(dir string) (*os.File, error) {
	f, err := lockIn(dir, true)
	if err != nil {
		return nil, fmt.Errorf("locking transparency log %s: %w", dir, err)
	}
	return f, nil
}

// tryLock takes the log's write lock if no writer holds it (nil if one does).
func tryLock(dir string) (*os.File, error) {
	f, err := lockIn(dir, false)
	if err != nil {
		return nil, fmt.Errorf("locking transparency log %s: %w", dir, err)
	}
	return f, nil
}

// lockIn opens the log's lock file in dir and takes its lock, waiting
// or not (nil if another holds it).
func lockIn(dir string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	held := true
	if wait {
		err = safefile.Lock(f)
	} else {
		held, err = safefile.TryLock(f)
	}
	if err != nil || !held {
		f.Close()
		return nil, err
	}
	return f, nil
}

func unlock(f *os.File) { f.Close() }
