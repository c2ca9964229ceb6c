//go:build !unix

package main

import "io/fs"

// ownerDevice is fi's owner and the device it is on; ok is false where
// the system does not say, as here.
func ownerDevice(fs.FileInfo) (uid uint32, dev uint64, ok bool) { return 0, 0, false }
