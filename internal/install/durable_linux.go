package install

import (
	"os"

	"golang.org/x/sys/unix"
)

// A syncer makes a staging tree durable. On Linux it is one syncfs(2) of
// the staging directory's file system: every file and directory written
// under it, by every worker, reaches the disk in one pass (one journal
// commit on ext4), where fsync of each file costs one commit each. The
// directory is opened before anything is written, because syncfs reports
// the write-back errors that happened since its descriptor was opened
// (Linux 5.8 and later): a file whose data failed to reach the disk fails
// the install instead of being exposed.
type syncer struct{ dir *os.File }

func newSyncer(dir string) (*syncer, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return &syncer{dir: f}, nil
}

// sync flushes the file system that holds the staging tree.
func (s *syncer) sync() error {
	rc, err := s.dir.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Syncfs(int(fd)); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: s.dir.Name(), Err: serr}
	}
	return nil
}

func (s *syncer) close() error { return s.dir.Close() }
