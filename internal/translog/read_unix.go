//go:build unix

package translog

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// readInto reads the file at path into buf, and returns how many bytes
// it read: len(buf) if the file has that many or more. (A plain open,
// read and close: os.Open's poller registration costs as much again, a
// recomputation reads a thousand tiles.)
func readInto(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
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
