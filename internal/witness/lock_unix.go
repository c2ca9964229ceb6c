//go:build unix

package witness

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
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
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if ferr = unix.Flock(int(fd), unix.LOCK_EX); !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		f.Close()
		return nil, err
	}
	if ferr != nil {
		f.Close()
		return nil, fmt.Errorf("witness state lock: flock %s: %w", path, ferr)
	}
	return func() { f.Close() }, nil
}
