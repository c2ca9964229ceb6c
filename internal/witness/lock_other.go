//go:build !unix

package witness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockDir takes the state directory's lock where there is no flock: the
// lock file is created exclusively and removed on unlock. A holder that
// crashed leaves it behind; after a minute of waiting the error says so.
func lockDir(path string) (unlock func(), err error) {
	deadline := time.Now().Add(time.Minute)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("witness state lock: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("witness state lock %s is held: if no witness is running, remove it", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
