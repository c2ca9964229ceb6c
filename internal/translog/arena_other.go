//go:build !linux

package translog

// An arena gives a builder's chunks their memory from a mapped file on
// Linux (arena_linux.go); elsewhere they come from the heap.
type arena struct{}

func newArena(dir string) *arena { return &arena{} }

func (a *arena) alloc(n int) []byte { return nil }

func (a *arena) mapped() int64 { return 0 }

func (a *arena) close() {}
