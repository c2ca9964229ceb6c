package translog

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS makes every file written on the file system of dir durable, in
// one call (syncfs): cheaper than an fsync per file past a few dozen.
func syncFS(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return true, unix.Syncfs(int(f.Fd()))
}
