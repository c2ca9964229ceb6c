//go:build unix

package install

import (
	"os"

	"cairn.dev/cairn/internal/safefile"
)

// tryLockTarget takes the install lock f without waiting, and reports
// whether it did. The kernel drops it when f is closed or the process
// ends, however it ends.
func tryLockTarget(f *os.File) (bool, error) { return safefile.TryLock(f) }
