//go:build unix

package server

import "syscall"

// freeBytes is the room left to an unprivileged writer on the file
// system holding dir (statfs's available blocks); ok is false where it
// cannot be told.
func freeBytes(dir string) (free uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
