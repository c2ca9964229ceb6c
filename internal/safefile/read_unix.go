//go:build unix

package safefile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ReadInto reads the file at path into buf and returns how many bytes it
// read: len(buf) if the file holds that many or more (the rest is left
// unread). It is a plain open, reads to the end and a close, for small
// files read whole on a hot path: os.Open checks the file's kind for the
// poller with a system call of its own, and an os.File costs an
// allocation and a cleanup, about as much again as the read.
func ReadInto(path string, buf []byte) (int, error) {
	var fd int
	var err error
	for {
		if fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0); !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}
