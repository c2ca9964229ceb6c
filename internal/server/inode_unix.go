//go:build unix

package server

import (
	"io/fs"
	"syscall"
)

// inode returns a file's inode number: a ref moved by renaming a new file
// over it has a new one, however coarse the file system's times.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
