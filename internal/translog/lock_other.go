//go:build !unix

package translog

import (
	"os"
	"path/filepath"
)

// Without flock, the write lock is only this process's: one process at a
// time must append.
func takeLock(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
}

func tryLock(dir string) (*os.File, error) { return takeLock(dir) }

func unlock(f *os.File) { f.Close() }
