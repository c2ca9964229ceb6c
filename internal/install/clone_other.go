//go:build !linux

package install

import "os"

// clone reports false: where there is no FICLONE, the caller copies.
func clone(dst, src *os.File) bool { return false }
