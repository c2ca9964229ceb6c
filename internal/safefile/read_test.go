package safefile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// ReadInto reads a file whole when buf holds it, and len(buf) bytes of
// a larger one; a missing file is fs.ErrNotExist.
func TestReadInto(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{len(data) + 1, len(data), len(data) - 1, 1, 0} {
		buf := make([]byte, size)
		n, err := ReadInto(file, buf)
		if want := min(size, len(data)); err != nil || n != want || !bytes.Equal(buf[:n], data[:want]) {
			t.Errorf("a buffer of %d bytes: read %d, %v; want %d bytes of the file", size, n, err, want)
		}
	}
	if _, err := ReadInto(filepath.Join(dir, "missing"), make([]byte, 8)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadInto(dir, make([]byte, 8)); err == nil {
		t.Errorf("a directory read: no error")
	}
}
