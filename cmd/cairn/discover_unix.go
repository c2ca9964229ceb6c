//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// ownerDevice is fi's owner and the device it is on; ok is false where
// the system does not say.
func ownerDevice(fi fs.FileInfo) (uid uint32, dev uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, uint64(st.Dev), true //nolint:unconvert // Dev's type differs by system
}
