//go:build unix

package server

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockStore takes a store's lock without waiting, and reports whether it
// did; the kernel drops it when the process ends, however it ends.
func lockStore(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	if errors.Is(ferr, unix.EWOULDBLOCK) {
		return false, nil
	}
	return ferr == nil, ferr
}

// storeEnded reports whether the server of the store whose lock file is
// f has ended: nobody holds the lock (which the caller then holds until
// it closes f).
func storeEnded(f *os.File) (bool, error) { return lockStore(f) }
