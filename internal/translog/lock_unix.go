//go:build unix

package translog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// takeLock takes the log's write lock, waiting for another writer to be
// done; the kernel drops it when the holder's process ends, however it ends.
func takeLock(dir string) (*os.File, error) {
	f, err := lockIn(dir, unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("locking transparency log %s: %w", dir, err)
	}
	return f, nil
}

// tryLock takes the log's write lock if no writer holds it (nil if one does).
func tryLock(dir string) (*os.File, error) {
	f, err := lockIn(dir, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("locking transparency log %s: %w", dir, err)
	}
	return f, nil
}

func lockIn(dir string, how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func unlock(f *os.File) { f.Close() }
