//go:build !unix

package server

import (
	"os"
	"time"
)

// lockStore takes no lock where there is no flock.
func lockStore(*os.File) (bool, error) { return true, nil }

// storeEnded reports whether the store whose lock file is f was made a
// day ago: without flock, age is the only sign that its server is gone.
func storeEnded(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	return time.Since(fi.ModTime()) > 24*time.Hour, nil
}
