//go:build !unix

package translog

import (
	"io"
	"os"
)

// readInto reads the file at path into buf, and returns how many bytes
// it read: len(buf) if the file has that many or more.
func readInto(path string, buf []byte) (int, error) {
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
