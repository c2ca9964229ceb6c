//go:build unix

package server

import (
	"os"

	"cairn.dev/cairn/internal/safefile"
)

// lockStore takes a store's lock without waiting, and reports whether it
// did; the kernel drops it when the process ends, however it ends.
func lockStore(f *os.File) (bool, error) { return safefile.TryLock(f) }

// storeEnded reports whether the server of the store whose lock file is
// f has ended: nobody holds the lock (which the caller then holds until
// it closes f).
func storeEnded(f *os.File) (bool, error) { return safefile.TryLock(f) }
