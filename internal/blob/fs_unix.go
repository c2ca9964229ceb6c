//go:build unix

package blob

import (
	"io/fs"
	"os"

	"cairn.dev/cairn/internal/safefile"
)

// lockTemp takes the exclusive lock a writer holds on its temporary file
// for as long as it writes it; the kernel drops it when the writer's
// process ends, however it ends.
func lockTemp(f *os.File) error { return safefile.Lock(f) }

// abandoned reports whether no writer holds the temporary file f: it
// takes the writer's lock without waiting, and keeps it (until f is
// closed) so that the caller may remove the file.
func abandoned(f *os.File, _ fs.FileInfo) (bool, error) { return safefile.TryLock(f) }
