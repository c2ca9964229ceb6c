package translog

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/mod/sumdb/tlog"
)

// A builder is the map of a log computed from its first leaf, as a full
// replay computes it (Store.BeginRecompute, or a Begin on an empty log):
// the roots a Map gives for the same Adds, from a structure made for
// that one pass. Its nodes and subjects sit in slices without a pointer,
// linked by their positions, and the leaf indices of the subjects' files,
// which only the snapshot needs, go to a temporary file beside the log:
// at 1M records it holds 116 bytes a subject against a Map's 250, and
// the collector has nothing in it to scan, so a replay's garbage need not
// be let grow with it (see index.replayHeadroom). On Linux the slices'
// chunks are not even the process's memory: they are mapped from a file
// beside the log (see arena), whose pages the kernel may write back and
// drop, so that what a full replay holds in memory does not grow with
// the index.
//
// A builder is not read (no Get, no proof): a commit writes its
// snapshot (writeSnapshot) and the Store reads its map from there,
// lazily, like any process that opens the log. Not safe for concurrent
// use.
type builder struct {
	inner  chunks[binner]
	leaves chunks[bleaf]
	root   bref
	last   int64  // the last leaf index added, -1 if none
	mem    *arena // where inner's and leaves' chunks come from

	// The files, in the order added: each file's subject (its position
	// in leaves) and leaf index, 12 bytes (filesRecord) in a temporary
	// file in dir, created at the first; nfiles of them. atLast are the
	// subjects of the files at index atIndex, the last (Add's check).
	dir     string
	files   *os.File
	w       *bufio.Writer
	nfiles  int64
	atLast  []uint32
	atIndex int64
	err     error // the first write to files that failed

	// The subject of the last Add and its leaf, until the next Root:
	// its path is dirty already.
	hotName string
	hot     bref
}

// bref names a node of a builder: an inner node, a subject's leaf
// (leafRef set), or none.
type bref uint32

const (
	leafRef bref = 1 << 31
	noRef   bref = 1<<32 - 1
)

// binner is an inner node: its children's keys first differ at bit crit.
// hash is its subtree's hash at the depth where its parent puts it,
// valid unless dirty.
type binner struct {
	hash  tlog.Hash
	child [2]bref
	crit  uint8
	dirty bool
}

// bleaf is a subject. Its leaf's hash (at any depth) is not kept but
// computed when a parent's is: about one hash more per Add (the sibling
// at the bottom of its path), for 40 bytes less a subject.
type bleaf struct {
	key   [32]byte
	value Value
}

func (l *bleaf) hash() tlog.Hash { return mapLeafHash(&l.key, l.value) }

// chunks is a slice in chunks of a fixed size: it grows without copying
// what it holds (a slice appended to past its capacity is copied whole,
// and for a while is there twice), and wastes at most a chunk. Its
// chunks come from mem, a mapped file, where it can give them, else
// from the heap: T must hold no pointer.
type chunks[T any] struct {
	c    [][]T
	n    int
	mem  *arena
	heap int // how many of the chunks are on the heap
}

const chunkBits = 12

func (c *chunks[T]) at(i uint32) *T { return &c.c[i>>chunkBits][i&(1<<chunkBits-1)] }

func (c *chunks[T]) push(v T) uint32 {
	if c.n&(1<<chunkBits-1) == 0 {
		c.c = append(c.c, c.chunk())
	}
	i := uint32(c.n)
	*c.at(i) = v
	c.n++
	return i
}

// chunk returns a new chunk of zero values.
func (c *chunks[T]) chunk() []T {
	var v T
	if b := c.mem.alloc(int(unsafe.Sizeof(v)) << chunkBits); b != nil {
		return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), 1<<chunkBits)
	}
	c.heap++
	return make([]T, 1<<chunkBits)
}

// bytes returns how many bytes c's chunks take on the heap.
func (c *chunks[T]) bytes() int64 {
	var v T
	return int64(c.heap) << chunkBits * int64(unsafe.Sizeof(v))
}

// filesFile names the builder's temporary file of files (".tmp-" before
// it, a random suffix after: one a crash left is removed, see recover).
const filesFile = "map.files"

// mapNodes says whether builders map their nodes from a file where the
// system allows (arena); tests turn it off to build on the heap.
var mapNodes = true

// nodesFile names the file the builder's subjects and inner nodes are
// mapped from (see arena), ".tmp-" before it, a random suffix after;
// removed as soon as it is made.
const nodesFile = "map.nodes"

// filesRecord is a file's size in the builder's files: its subject
// uint32, its leaf index uint64, little-endian.
const filesRecord = 12

// newBuilder returns an empty builder that keeps its temporary file in
// dir, the log's directory.
func newBuilder(dir string) *builder {
	b := &builder{root: noRef, last: -1, hot: noRef, dir: dir, mem: newArena(dir)}
	b.inner.mem, b.leaves.mem = b.mem, b.mem
	return b
}

// close removes the builder's temporary file and unmaps its nodes. The
// builder is not used after.
func (b *builder) close() {
	b.inner, b.leaves = chunks[binner]{}, chunks[bleaf]{}
	b.root = noRef
	b.mem.close()
	if b.files != nil {
		b.files.Close()
		os.Remove(b.files.Name())
		b.files, b.w = nil, nil
	}
}

// Err returns the first write of the builder's temporary file that
// failed (a full disk): its map is not whole.
func (b *builder) Err() error { return b.err }

// bytes returns how many bytes b's slices take on the heap (what the
// arena maps is not the heap's).
func (b *builder) bytes() int64 {
	return b.inner.bytes() + b.leaves.bytes()
}

// words returns n zero uint32s, from b's arena where it can give them.
func (b *builder) words(n int) []uint32 {
	if m := b.mem.alloc((n*4 + 7) &^ 7); m != nil {
		return unsafe.Slice((*uint32)(unsafe.Pointer(&m[0])), n)
	}
	return make([]uint32, n)
}

// mapped returns how many bytes of b's nodes are in its mapped file.
func (b *builder) mapped() int64 { return b.mem.mapped() }

// Len returns the number of subjects.
func (b *builder) Len() int { return b.leaves.n }

// Add is Map.Add.
func (b *builder) Add(subject string, index int64, leaf tlog.Hash) {
	if index < 0 || index < b.last {
		panic(fmt.Sprintf("translog: Map.Add(%q, %d): leaf indices must not decrease (last added %d)", subject, index, b.last))
	}
	b.last = index
	if b.hot != noRef && subject == b.hotName {
		b.extend(b.hot, index, leaf)
		return
	}
	key := SubjectKey(subject)
	b.hotName = subject
	if b.root == noRef {
		b.root = b.newLeaf(&key)
		b.hot = b.root
		b.extend(b.hot, index, leaf)
		return
	}
	// The closest subject, where key's path ends.
	n := b.root
	for n&leafRef == 0 {
		in := b.inner.at(uint32(n))
		n = in.child[keyBit(&key, int(in.crit))]
	}
	diff := firstDiff(&key, &b.leaves.at(uint32(n&^leafRef)).key)
	// Dirty the inner nodes down to where key's path leaves the tree:
	// at, the child of parent on side (the root if parent is noRef).
	parent, side, at := noRef, 0, b.root
	for at&leafRef == 0 {
		in := b.inner.at(uint32(at))
		if int(in.crit) > diff {
			break
		}
		in.dirty = true
		parent, side, at = at, keyBit(&key, int(in.crit)), in.child[keyBit(&key, int(in.crit))]
	}
	if diff == 256 {
		b.hot = at
		b.extend(at, index, leaf)
		return
	}
	if at&leafRef == 0 {
		// An inner node that now hangs a level lower: its hash there is
		// another one.
		b.inner.at(uint32(at)).dirty = true
	}
	l := b.newLeaf(&key)
	var in binner
	in.crit, in.dirty = uint8(diff), true
	s := keyBit(&key, diff)
	in.child[s], in.child[1-s] = l, at
	if b.inner.n >= int(leafRef)-1 {
		panic("translog: map builder: too many subjects")
	}
	if n := bref(b.inner.push(in)); parent == noRef {
		b.root = n
	} else {
		b.inner.at(uint32(parent)).child[side] = n
	}
	b.hot = l
	b.extend(l, index, leaf)
}

func (b *builder) newLeaf(key *[32]byte) bref {
	if b.leaves.n >= int(leafRef)-1 {
		panic("translog: map builder: too many subjects")
	}
	return bref(b.leaves.push(bleaf{key: *key})) | leafRef
}

// extend adds the leaf at index to subject l (a leaf ref).
func (b *builder) extend(l bref, index int64, leaf tlog.Hash) {
	o := uint32(l &^ leafRef)
	s := b.leaves.at(o)
	// Indices do not decrease: only the files at index itself may be
	// the same file.
	if b.nfiles == 0 || index != b.atIndex {
		b.atLast, b.atIndex = b.atLast[:0], index
	}
	for _, a := range b.atLast {
		if a == o {
			panic(fmt.Sprintf("translog: Map.Add(%d): leaf %d is in the subject already", index, index))
		}
	}
	b.atLast = append(b.atLast, o)
	s.value = s.value.Extend(index, leaf)
	b.record(o, index)
}

// record appends a file to the builder's temporary file.
func (b *builder) record(o uint32, index int64) {
	b.nfiles++
	if b.err != nil {
		return
	}
	if b.files == nil {
		f, err := os.CreateTemp(b.dir, ".tmp-"+filesFile+"-*")
		if err != nil {
			b.err = fmt.Errorf("building the map: %w", err)
			return
		}
		b.files, b.w = f, bufio.NewWriterSize(f, 1<<16)
	}
	var r [filesRecord]byte
	binary.LittleEndian.PutUint32(r[:4], o)
	binary.LittleEndian.PutUint64(r[4:], uint64(index))
	if _, err := b.w.Write(r[:]); err != nil {
		b.err = fmt.Errorf("building the map: writing %s: %w", b.files.Name(), err)
	}
}

// Root is Map.Root.
func (b *builder) Root() tlog.Hash {
	b.hot = noRef
	if b.root == noRef {
		return emptyHash
	}
	return b.rehash(b.root, 0)
}

// rehash returns n's hash at depth, recomputing its dirty subtree.
func (b *builder) rehash(n bref, depth int) tlog.Hash {
	if n&leafRef != 0 {
		return b.leaves.at(uint32(n &^ leafRef)).hash()
	}
	in := b.inner.at(uint32(n))
	if !in.dirty {
		return in.hash
	}
	c := int(in.crit)
	l, r := b.rehash(in.child[0], c+1), b.rehash(in.child[1], c+1)
	h := mapNodeHash(&l, &r)
	if c > depth {
		h = wrap(h, b.anyKey(n), depth, c)
	}
	in.hash, in.dirty = h, false
	return h
}

// anyKey returns the key of one subject below n.
func (b *builder) anyKey(n bref) *[32]byte {
	for n&leafRef == 0 {
		n = b.inner.at(uint32(n)).child[0]
	}
	return &b.leaves.at(uint32(n &^ leafRef)).key
}

// subtreeHash is subtreeHash (snapshot.go) over b, whose hashes are
// computed (Root).
func (b *builder) subtreeHash(prefix [32]byte, depth int) tlog.Hash {
	n := b.root
	for n&leafRef == 0 && int(b.inner.at(uint32(n)).crit) < depth {
		in := b.inner.at(uint32(n))
		n = in.child[keyBit(&prefix, int(in.crit))]
	}
	if n&leafRef != 0 {
		return b.leaves.at(uint32(n &^ leafRef)).hash()
	}
	in := b.inner.at(uint32(n))
	l, r := b.hashOf(in.child[0]), b.hashOf(in.child[1])
	h := mapNodeHash(&l, &r)
	return wrap(h, b.anyKey(n), depth, int(in.crit))
}

// hashOf returns n's hash, computed (Root).
func (b *builder) hashOf(n bref) tlog.Hash {
	if n&leafRef != 0 {
		return b.leaves.at(uint32(n &^ leafRef)).hash()
	}
	return b.inner.at(uint32(n)).hash
}

// passFiles is how many files' leaf indices subjects reads back at
// once (8 bytes each): a pass over the temporary file reads those of the
// next subjects in key order (at least one) whose files fit.
var passFiles uint64 = 1 << 21

// subjects calls f with each subject in key order, as a Map's subject
// (its leaf indices encoded as a Map keeps them), read back from the
// temporary file in passes (passFiles). The subject is f's only for the
// call.
func (b *builder) subjects(f func(s *subject) error) error {
	if b.err != nil {
		return b.err
	}
	if b.root == noRef {
		return nil
	}
	if err := b.w.Flush(); err != nil {
		return fmt.Errorf("building the map: writing %s: %w", b.files.Name(), err)
	}
	// The subjects in key order.
	order := b.words(b.leaves.n)[:0]
	var walk func(n bref)
	walk = func(n bref) {
		if n&leafRef != 0 {
			order = append(order, uint32(n&^leafRef))
			return
		}
		in := b.inner.at(uint32(n))
		walk(in.child[0])
		walk(in.child[1])
	}
	walk(b.root)
	// slot[o] is where subject o's next file goes in buf, in a pass
	// that reads its files (noSlot otherwise).
	const noSlot = 1<<32 - 1
	slot := b.words(b.leaves.n)
	for i := range slot {
		slot[i] = noSlot
	}
	var buf []int64
	var s subject
	for from := 0; from < len(order); {
		to, total := from, uint64(0)
		for to < len(order) {
			n := b.leaves.at(order[to]).value.Count
			if to > from && total+n > passFiles {
				break
			}
			slot[order[to]] = uint32(total)
			total += n
			to++
		}
		if uint64(cap(buf)) < total {
			buf = make([]int64, total)
		}
		buf = buf[:total]
		r := bufio.NewReaderSize(io.NewSectionReader(b.files, 0, b.nfiles*filesRecord), 1<<16)
		var rec [filesRecord]byte
		for k := int64(0); k < b.nfiles; k++ {
			if _, err := io.ReadFull(r, rec[:]); err != nil {
				return fmt.Errorf("building the map: reading %s: %w", b.files.Name(), err)
			}
			o := binary.LittleEndian.Uint32(rec[:4])
			if o >= uint32(len(slot)) {
				return fmt.Errorf("building the map: %s names subject %d of %d", b.files.Name(), o, len(slot))
			}
			if p := slot[o]; p != noSlot {
				buf[p] = int64(binary.LittleEndian.Uint64(rec[4:]))
				slot[o]++
			}
		}
		at := uint64(0)
		for _, o := range order[from:to] {
			slot[o] = noSlot
			l := b.leaves.at(o)
			s.key, s.value = l.key, l.value
			s.idx, s.last = s.idx[:0], 0
			for _, i := range buf[at : at+l.value.Count] {
				s.idx = binary.AppendUvarint(s.idx, uint64(i-s.last))
				s.last = i
			}
			at += l.value.Count
			if err := f(&s); err != nil {
				return err
			}
		}
		from = to
	}
	return nil
}

// writeSnapshot writes the map snapshot of b, the map of the committed
// log at size with root, in dir (writeSnapshotFile: the same bytes a Map
// of the same Adds gives).
func (b *builder) writeSnapshot(dir string, size int64, root tlog.Hash) error {
	b.Root()
	return writeSnapshotFile(dir, size, root, b.last, b.leaves.n, b.subjects, b.subtreeHash)
}
