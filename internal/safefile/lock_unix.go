//go:build unix

package safefile

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive flock on f, waiting for its holder to release
// it; the kernel drops it when f is closed or its process ends, however
// it ends.
func Lock(f *os.File) error {
	_, err := flock(f, unix.LOCK_EX)
	return err
}

// TryLock takes an exclusive flock on f if nobody holds it, and reports
// whether it did (held until f is closed).
func TryLock(f *os.File) (bool, error) {
	return flock(f, unix.LOCK_EX|unix.LOCK_NB)
}

func flock(f *os.File, how int) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if ferr = unix.Flock(int(fd), how); !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	if errors.Is(ferr, unix.EWOULDBLOCK) {
		return false, nil
	}
	if ferr != nil {
		return false, &fs.PathError{Op: "flock", Path: f.Name(), Err: ferr}
	}
	return true, nil
}
