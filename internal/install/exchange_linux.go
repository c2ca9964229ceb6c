package install

import "golang.org/x/sys/unix"

// exchange swaps two directories in one step (renameat2 RENAME_EXCHANGE):
// at every instant, each name holds one whole tree.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
