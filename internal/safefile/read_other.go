//go:build !unix

package safefile

import (
	"io"
	"os"
)

// ReadInto reads the file at path into buf and returns how many bytes it
// read: len(buf) if the file holds that many or more (the rest is left
// unread).
func ReadInto(path string, buf []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return n, err
}
