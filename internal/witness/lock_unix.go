//go:build unix

package witness

import (
	"fmt"
	"os"

	"cairn.dev/cairn/internal/safefile"
)

// lockDir takes the state directory's lock, an exclusive flock on its
// lock file, waiting for the holder (another request, another process)
// to release it. The kernel drops it when its holder's process ends,
// however it ends.
func lockDir(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("witness state lock: %w", err)
	}
	if err := safefile.Lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("witness state lock: %w", err)
	}
	return func() { f.Close() }, nil
}
