package install

import (
	"os"

	"golang.org/x/sys/unix"
)

// clone makes dst share src's extents (FICLONE) where the file system
// can (btrfs, XFS, bcachefs: the cache and the target on one of them),
// and reports whether it did; elsewhere the caller copies.
func clone(dst, src *os.File) bool {
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())) == nil
}
