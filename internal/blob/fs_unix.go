//go:build unix

package blob

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// lockTemp takes the exclusive lock a writer holds on its temporary file
// for as long as it writes it; the kernel drops it when the writer's
// process ends, however it ends.
func lockTemp(f *os.File) error { return flock(f, unix.LOCK_EX) }

// abandoned reports whether no writer holds the temporary file f: it
// takes the writer's lock without waiting, and keeps it (until f is
// closed) so that the caller may remove the file.
func abandoned(f *os.File, _ fs.FileInfo) (bool, error) {
	err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if ferr = unix.Flock(int(fd), how); !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if ferr != nil {
		return &fs.PathError{Op: "flock", Path: f.Name(), Err: ferr}
	}
	return nil
}
