package translog

import (
	"os"

	"golang.org/x/sys/unix"
)

// slabSize is how much of its file an arena maps at once: its chunks are
// carved from slabs, so that a map of tens of millions of subjects takes
// hundreds of mappings, not tens of thousands (vm.max_map_count is
// 65,530 by default).
const slabSize = 8 << 20

// An arena gives a builder the memory of its chunks from a file of the
// log's directory, mapped shared: the kernel keeps its pages in the page
// cache and may write them back and drop them when memory is short, so
// the process's own (anonymous) memory does not grow with the map, and
// a machine with less memory than the map verifies all the same, paging.
// The file is removed as soon as it is made: nothing is left of it when
// the process ends, however it ends. Its blocks are allocated before the
// pages are touched (fallocate), so that a full disk is an error here,
// not a SIGBUS on a write to a page. Where the file cannot be made,
// allocated or mapped, the chunks come from the heap (alloc returns
// nil): a builder works the same, only in the process's memory.
type arena struct {
	dir   string
	f     *os.File
	size  int64    // the file's length: what its slabs cover
	slabs [][]byte // every mapping, to unmap at close
	free  []byte   // the rest of the last slab
	off   bool     // the file failed once: the heap from then on
}

// newArena returns an arena whose file goes in dir.
func newArena(dir string) *arena { return &arena{dir: dir} }

// alloc returns n bytes of zeroes from the arena's file, aligned to 8
// bytes (n is a multiple of 8), or nil if the file cannot give them.
func (a *arena) alloc(n int) []byte {
	if a.off || !mapNodes || n <= 0 || n%8 != 0 {
		return nil
	}
	if len(a.free) < n {
		slab := max(slabSize, (n+os.Getpagesize()-1)/os.Getpagesize()*os.Getpagesize())
		b, err := a.grow(slab)
		if err != nil {
			a.off = true
			return nil
		}
		a.free = b
	}
	b := a.free[:n:n]
	a.free = a.free[n:]
	return b
}

// grow lengthens the file by n bytes, allocated on disk, and maps them.
func (a *arena) grow(n int) ([]byte, error) {
	if a.f == nil {
		f, err := os.CreateTemp(a.dir, ".tmp-"+nodesFile+"-*")
		if err != nil {
			return nil, err
		}
		// Unlinked at once: the mapping and the descriptor keep it.
		os.Remove(f.Name())
		a.f = f
	}
	fd := int(a.f.Fd())
	if err := unix.Fallocate(fd, 0, a.size, int64(n)); err != nil {
		return nil, err
	}
	b, err := unix.Mmap(fd, a.size, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	a.size += int64(n)
	a.slabs = append(a.slabs, b)
	return b, nil
}

// mapped returns how many bytes of file the arena maps.
func (a *arena) mapped() int64 { return a.size }

// close unmaps the arena's file and closes it: no chunk it gave may be
// used after.
func (a *arena) close() {
	for _, b := range a.slabs {
		unix.Munmap(b)
	}
	a.slabs, a.free, a.size = nil, nil, 0
	if a.f != nil {
		a.f.Close()
		a.f = nil
	}
}
