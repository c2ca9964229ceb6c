//go:build !unix

package server

// freeBytes cannot tell the room left here: no push is refused for it.
func freeBytes(dir string) (free uint64, ok bool) { return 0, false }
