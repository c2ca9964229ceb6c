//go:build !unix

package blob

import (
	"io/fs"
	"os"
	"time"
)

// staleAfter is how long a temporary file must have been left unwritten
// before it is taken for abandoned, where there are no file locks.
const staleAfter = 24 * time.Hour

func lockTemp(*os.File) error { return nil }

// abandoned reports whether nobody has written the temporary file for a
// day: without flock, age is the only sign that its writer is gone.
func abandoned(_ *os.File, fi fs.FileInfo) (bool, error) {
	return time.Since(fi.ModTime()) > staleAfter, nil
}
