package translog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"
)

// A map snapshot keeps the map of a committed size beside the log, so
// that a process that opens the log (an incremental verification, a
// publish) needs not read every entry again to have the map it appends
// to, nor even the whole snapshot: the subjects are in buckets by the
// first bits of their keys, each bucket read, and checked, only when a
// change or a read reaches it. It is a cache: a snapshot that does not
// match the log (its size's root, the map leaf at its size) is ignored
// and the map rebuilt; a bucket that does not match its hash is rebuilt
// from the log's entries.
//
//	"cairn map snapshot v3\n"
//	size uint64, the log's root at size [32], last uint64 (the last leaf in the map, +1), subjects uint64, bits uint8
//	per bucket (2^bits of them, by the first bits of the key): offset uint64, length uint64, subjects uint64,
//	    hash [32] (the bucket's subtree at depth bits: 32 zero bytes if empty), SHA-256 of its bytes [32]
//	SHA-256 of all the bytes before it [32]
//	the buckets' bytes, at their offsets from here: per subject, by key:
//	    key [32], count uint64, chain [32], last uint64, len uvarint, indices (uvarint deltas)
//
// Opening checks the header's digest and that the tree above the buckets,
// from their hashes, has the map leaf's root; reading a bucket checks its
// digest and that its subjects give its hash. The map root binds each
// subject's count and chain but not its list of leaf indices (two deltas
// swapped keep the root): the digests are what catch that damage.
const (
	snapshotFile  = "map.snapshot"
	snapshotMagic = "cairn map snapshot v3\n"
	// bucketTarget is about how many subjects a bucket holds.
	bucketTarget  = 64
	maxBucketBits = 20
	bucketEntry   = 8 + 8 + 8 + 32 + 32
	snapHeader    = len(snapshotMagic) + 8 + 32 + 8 + 8 + 1
)

// snapshotEvery is the least growth, in leaves, between two snapshots
// (and at least an eighth of the log): writing one costs a pass over the
// map.
var snapshotEvery int64 = 1 << 12

// saveSnapshot writes m, the map of the committed log at size with root,
// in the log's directory (not synced: a snapshot lost in a crash is
// rebuilt). Its subtrees not read yet are read first.
func (s *Store) saveSnapshot(m *Map, size int64, root tlog.Hash) error {
	if err := m.loadAll(); err != nil {
		return err
	}
	m.settle()
	m.Root()
	var subs []*subject
	var walk func(n *node)
	walk = func(n *node) {
		n = resolve(n)
		if n == nil {
			return
		}
		if n.sub != nil {
			subs = append(subs, n.sub)
			return
		}
		walk(n.child[0])
		walk(n.child[1])
	}
	walk(m.root)
	return writeSnapshotFile(s.Dir(), size, root, m.last, len(subs), func(f func(*subject) error) error {
		for _, sub := range subs {
			if err := f(sub); err != nil {
				return err
			}
		}
		return nil
	}, func(prefix [32]byte, bits int) tlog.Hash { return subtreeHash(m.root, prefix, bits) })
}

// writeSnapshotFile writes the map snapshot of the committed log at
// size with root in dir, streaming it to a temporary file renamed into
// place (not synced: a snapshot lost in a crash is rebuilt): a map of n
// subjects whose last leaf index is last, which each gives in key order
// (each subject f's only for the call), and subtree the hash of a
// bucket that holds one at least (its prefix, at depth bits), from hashes
// computed. A Map (saveSnapshot) and a builder write theirs with it.
func writeSnapshotFile(dir string, size int64, root tlog.Hash, last int64, n int, each func(f func(*subject) error) error, subtree func(prefix [32]byte, bits int) tlog.Hash) (err error) {
	bits := 0
	for bits < maxBucketBits && n/(1<<bits) > bucketTarget {
		bits++
	}
	nb := 1 << bits
	head := snapHeader + nb*bucketEntry + sha256.Size
	path := filepath.Join(dir, snapshotFile)
	tmp, err := os.CreateTemp(dir, ".tmp-"+snapshotFile+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Seek(int64(head), 0); err != nil {
		return err
	}
	w := bufio.NewWriterSize(tmp, 1<<16)
	table := make([]byte, 0, nb*bucketEntry)
	var (
		bucket, count int
		from, off     int64
		digest        hash.Hash = sha256.New()
		buf           []byte
	)
	// closeBucket ends the buckets up to upto (excluded), the current one
	// first: its entry in the table.
	closeBucket := func(upto int) {
		for ; bucket < upto; bucket++ {
			var h tlog.Hash
			if count > 0 {
				h = subtree(bucketPrefix(bucket, bits), bits)
			}
			var d [sha256.Size]byte
			digest.Sum(d[:0])
			table = binary.BigEndian.AppendUint64(table, uint64(from))
			table = binary.BigEndian.AppendUint64(table, uint64(off-from))
			table = binary.BigEndian.AppendUint64(table, uint64(count))
			table = append(table, h[:]...)
			table = append(table, d[:]...)
			from, count = off, 0
			digest.Reset()
		}
	}
	err = each(func(s *subject) error {
		closeBucket(bucketOf(&s.key, bits))
		buf = appendSubject(buf[:0], s)
		digest.Write(buf)
		off += int64(len(buf))
		count++
		_, err := w.Write(buf)
		return err
	})
	if err != nil {
		return err
	}
	closeBucket(nb)
	if err := w.Flush(); err != nil {
		return err
	}
	h := make([]byte, 0, head)
	h = append(h, snapshotMagic...)
	h = binary.BigEndian.AppendUint64(h, uint64(size))
	h = append(h, root[:]...)
	h = binary.BigEndian.AppendUint64(h, uint64(last+1))
	h = binary.BigEndian.AppendUint64(h, uint64(n))
	h = append(h, byte(bits))
	h = append(h, table...)
	sum := sha256.Sum256(h)
	h = append(h, sum[:]...)
	if _, err := tmp.WriteAt(h, 0); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// A delta names the snapshot it follows: one of the old is of no use.
	os.Remove(filepath.Join(dir, deltaFile))
	return nil
}

// appendSubject appends a subject's entry in a bucket to data.
func appendSubject(data []byte, sub *subject) []byte {
	data = append(data, sub.key[:]...)
	data = binary.BigEndian.AppendUint64(data, sub.value.Count)
	data = append(data, sub.value.Chain[:]...)
	data = binary.BigEndian.AppendUint64(data, uint64(sub.last))
	data = binary.AppendUvarint(data, uint64(len(sub.idx)))
	return append(data, sub.idx...)
}

// bucketOf returns the bucket of key: its first bits bits.
func bucketOf(key *[32]byte, bits int) int {
	if bits == 0 {
		return 0
	}
	return int(binary.BigEndian.Uint32(key[:4]) >> (32 - bits))
}

// bucketPrefix returns the key whose first bits bits are bucket b's, the
// others zero.
func bucketPrefix(b, bits int) [32]byte {
	var k [32]byte
	if bits > 0 {
		binary.BigEndian.PutUint32(k[:4], uint32(b)<<(32-bits))
	}
	return k
}

// subtreeHash returns the hash at depth of the subtree of root's (whose
// hashes are computed) that holds the keys sharing prefix's first depth
// bits, which holds at least one.
func subtreeHash(root *node, prefix [32]byte, depth int) tlog.Hash {
	n := resolve(root)
	for n.sub == nil && int(n.crit) < depth {
		n = resolve(n.child[keyBit(&prefix, int(n.crit))])
	}
	if n.sub != nil {
		return mapLeafHash(&n.sub.key, n.sub.value)
	}
	c := int(n.crit)
	return wrap(mapNodeHash(&n.child[0].hash, &n.child[1].hash), anyKey(n), depth, c)
}

var errSnapshot = errors.New("map snapshot malformed")

// loadSnapshot returns the map the log's snapshot holds, with the delta
// beside it if there is one of it (saveDelta), the size it is of, and the
// full snapshot's size, if it is one of this log at a size up to size:
// the log's root at its size is the one it names, and its map's root is
// the map leaf's there. Only the headers are read: the buckets are read
// as the map needs them.
func (s *Store) loadSnapshot(size int64) (m *Map, n, full int64, ok bool) {
	path := filepath.Join(s.Dir(), snapshotFile)
	base := &snapSource{path: path, log: s.Log, subjectsOf: s.subjectsOf}
	zs, err := openSnapshot(path, base)
	if err != nil || base.size > size || base.size == 0 {
		return nil, 0, 0, false
	}
	if dz, d, err := openDelta(filepath.Join(s.Dir(), deltaFile), base, zs); err == nil && d.size <= size {
		if m, ok := s.checkSnapshot(d, dz); ok {
			m.snap = base
			return m, d.size, base.size, true
		}
		// The snapshot alone, then (its buckets afresh: the delta's trie
		// placed them).
		if zs, err = openSnapshot(path, base); err != nil {
			return nil, 0, 0, false
		}
	}
	m, ok = s.checkSnapshot(base, zs)
	if !ok {
		return nil, 0, 0, false
	}
	m.snap = base
	return m, base.size, base.size, true
}

// checkSnapshot returns the map of buckets zs (in bucket order), as src
// describes it, if it is one of this log: the log's root at src.size is
// src.root, and the map's root is the map leaf's there.
func (s *Store) checkSnapshot(src *snapSource, zs []*lazy) (*Map, bool) {
	m := &Map{gen: nextGen(), last: src.last, subjects: int(src.subjects), lazy: true}
	if len(zs) > 0 {
		m.root = m.buildTop(zs, 0)
	}
	if r, err := s.Log.TreeHash(src.size); err != nil || r != src.root {
		return nil, false
	}
	text, err := s.Log.Entry(src.size - 1)
	if err != nil {
		return nil, false
	}
	me, err := ParseMapEntry(text)
	if err != nil || me.Root != m.Root() {
		return nil, false
	}
	return m, true
}

// snapSource is where a snapshot's lazy subtrees are read from: its file,
// or, for a bucket the file does not give right, the log's entries.
type snapSource struct {
	path       string
	data       int64 // where the buckets' bytes start in the file
	bytes      int64 // how many bytes the buckets take
	size       int64 // the log's size the snapshot is of
	root       tlog.Hash
	last       int64 // the map's last leaf index
	subjects   uint64
	bits       int
	log        *Log
	subjectsOf func(path string) []string
}

// lazy is a bucket of a snapshot, not read until needed (see node.lazy).
type lazy struct {
	src    *snapSource
	off, n int64 // its bytes, from src.data
	count  int64
	digest [32]byte
	prefix [32]byte // the bucket's bits, the others zero
	bits   int
	depth  int       // where its parent puts it
	hash   tlog.Hash // its hash at depth

	once sync.Once
	root atomic.Pointer[node]
	err  error
}

// get reads the bucket, once.
func (z *lazy) get() (*node, error) {
	z.once.Do(func() {
		r, err := z.load()
		if err != nil {
			// The snapshot's bucket is damaged, or the file was replaced:
			// the log's entries give it again.
			r, err = z.rebuild()
		}
		if err != nil {
			z.err = err
			return
		}
		z.root.Store(r)
	})
	return z.root.Load(), z.err
}

// read returns the bucket's subtree if it was read, else nil.
func (z *lazy) read() *node { return z.root.Load() }

// load reads and checks the bucket from the snapshot file.
func (z *lazy) load() (*node, error) {
	f, err := os.Open(z.src.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, z.n)
	if _, err := f.ReadAt(b, z.src.data+z.off); err != nil {
		return nil, err
	}
	if sha256.Sum256(b) != z.digest {
		return nil, fmt.Errorf("%w: bucket %x: its bytes do not have its digest", errSnapshot, z.prefix[:4])
	}
	subs, err := parseSubjects(b, z.count, z.src.last)
	if err != nil {
		return nil, err
	}
	for i := range subs {
		if firstDiff(&subs[i].key, &z.prefix) < z.bits {
			return nil, fmt.Errorf("%w: bucket %x holds key %x", errSnapshot, z.prefix[:4], subs[i].key)
		}
	}
	gen := nextGen() // no map's: a map copies before it changes them
	for i := range subs {
		subs[i].gen = gen
	}
	nodes := make([]node, 0, 2*len(subs)-1)
	m := &Map{gen: gen}
	r := m.buildSlab(subs, &nodes)
	return r, z.check(r)
}

// rebuild builds the bucket from the log's entries before the snapshot's
// size: its subjects' files, in index order.
func (z *lazy) rebuild() (*node, error) {
	m := NewMap()
	err := z.src.log.Range(0, z.src.size, func(i int64, text []byte) error {
		if IsMapEntry(text) {
			return nil
		}
		e, err := ParseEntry(text)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrCorrupt, i, err)
		}
		for _, subject := range z.src.subjectsOf(e.Path) {
			if k := SubjectKey(subject); firstDiff(&k, &z.prefix) >= z.bits {
				m.Add(subject, i, LeafHash(text))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.settle()
	if m.root == nil {
		return nil, fmt.Errorf("%w: the map snapshot has a bucket %x that the log's entries do not", ErrCorrupt, z.prefix[:4])
	}
	m.gen = nextGen() // its nodes are no map's any more
	return m.root, z.check(m.root)
}

// check hashes the subtree r read for z, at z's depth, and compares.
func (z *lazy) check(r *node) error {
	rehash(r, z.depth)
	if r.hash != z.hash {
		return fmt.Errorf("%w: bucket %x of the map snapshot has hash %v, its subjects give %v", ErrCorrupt, z.prefix[:4], z.hash, r.hash)
	}
	return nil
}

// load reads the lazy subtrees on subject's path, which an Add of it
// walks (see Store.AppendCommit).
func (m *Map) load(subject string) error {
	if !m.lazy {
		return nil // a map built from its Adds has no lazy subtree
	}
	k := SubjectKey(subject)
	key := &k
	n := m.root
	for n != nil {
		if n.lazy != nil {
			r, err := n.lazy.get()
			if err != nil {
				return err
			}
			n = r
			continue
		}
		if n.sub != nil {
			return nil
		}
		n = n.child[keyBit(key, int(n.crit))]
	}
	return nil
}

// loadAll reads every lazy subtree of m.
func (m *Map) loadAll() error {
	if !m.lazy {
		return nil
	}
	var walk func(n *node) error
	walk = func(n *node) error {
		if n == nil || n.sub != nil {
			return nil
		}
		if n.lazy != nil {
			_, err := n.lazy.get()
			return err
		}
		if err := walk(n.child[0]); err != nil {
			return err
		}
		return walk(n.child[1])
	}
	return walk(m.root)
}

// openSnapshot reads a snapshot's header: its buckets, lazy, in bucket
// order, and src filled in (the log's size and root it is of, …).
func openSnapshot(path string, src *snapSource) ([]*lazy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	head := make([]byte, snapHeader)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, errSnapshot
	}
	rest, ok := bytes.CutPrefix(head, []byte(snapshotMagic))
	if !ok {
		return nil, errSnapshot
	}
	u64 := func() uint64 {
		v := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		return v
	}
	size := int64(u64())
	var root tlog.Hash
	copy(root[:], rest)
	rest = rest[32:]
	last := int64(u64()) - 1
	subjects := u64()
	bits := int(rest[0])
	if bits > maxBucketBits {
		return nil, errSnapshot
	}
	nb := 1 << bits
	whole := make([]byte, snapHeader+nb*bucketEntry+sha256.Size)
	if int64(len(whole)) > fi.Size() {
		return nil, errSnapshot
	}
	if _, err := f.ReadAt(whole, 0); err != nil {
		return nil, errSnapshot
	}
	body, sum := whole[:len(whole)-sha256.Size], whole[len(whole)-sha256.Size:]
	if d := sha256.Sum256(body); !bytes.Equal(d[:], sum) {
		return nil, errSnapshot
	}
	*src = snapSource{path: src.path, data: int64(len(whole)), bytes: fi.Size() - int64(len(whole)), size: size, root: root, last: last, subjects: subjects, bits: bits, log: src.log, subjectsOf: src.subjectsOf}
	table := body[snapHeader:]
	var zs []*lazy
	var next, total uint64
	for b := 0; b < nb; b++ {
		e := table[b*bucketEntry:]
		off, n, count := binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(e[8:]), binary.BigEndian.Uint64(e[16:])
		if off != next || (count == 0) != (n == 0) || count > n/(32+8+32+8+1) {
			return nil, errSnapshot
		}
		next += n
		total += count
		if count == 0 {
			continue
		}
		z := &lazy{src: src, off: int64(off), n: int64(n), count: int64(count), prefix: bucketPrefix(b, bits), bits: bits}
		copy(z.hash[:], e[24:56])
		copy(z.digest[:], e[56:88])
		zs = append(zs, z)
	}
	if total != subjects || int64(next) != src.bytes {
		return nil, errSnapshot
	}
	return zs, nil
}

// buildTop returns the trie above buckets zs (in bucket order, not
// empty), at depth: inner nodes where their prefixes first differ, and a
// lazy node for each bucket, its hash the bucket's lifted to its depth.
func (m *Map) buildTop(zs []*lazy, depth int) *node {
	if len(zs) == 1 {
		z := zs[0]
		z.depth = depth
		h := z.hash
		if z.count > 1 {
			// Its levels from depth down to its bucket have one empty
			// side each; a single subject's leaf is lifted instead.
			h = wrap(h, &z.prefix, depth, z.bits)
		}
		z.hash = h
		return &node{hash: h, lazy: z, gen: m.gen}
	}
	c := firstDiff(&zs[0].prefix, &zs[len(zs)-1].prefix)
	split, _ := slices.BinarySearchFunc(zs, 1, func(z *lazy, bit int) int { return keyBit(&z.prefix, c) - bit })
	n := &node{gen: m.gen, crit: uint8(c), dirty: true}
	n.child[0] = m.buildTop(zs[:split], c+1)
	n.child[1] = m.buildTop(zs[split:], c+1)
	return n
}

// parseSubjects parses count subjects of a bucket, in key order, their
// indices left in data (capped, so that an append copies).
func parseSubjects(data []byte, count, last int64) ([]subject, error) {
	rest := data
	u64 := func() uint64 {
		v := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		return v
	}
	subs := make([]subject, count)
	for i := range subs {
		if len(rest) < 32+8+32+8 {
			return nil, errSnapshot
		}
		sub := &subs[i]
		copy(sub.key[:], rest)
		rest = rest[32:]
		sub.value.Count = u64()
		copy(sub.value.Chain[:], rest)
		rest = rest[32:]
		sub.last = int64(u64())
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return nil, errSnapshot
		}
		sub.idx = rest[k : k+int(l) : k+int(l)]
		rest = rest[k+int(l):]
		if sub.value.Count == 0 || sub.last > last || (i > 0 && bytes.Compare(subs[i-1].key[:], sub.key[:]) >= 0) || !indicesEnd(sub.idx, sub.value.Count, sub.last) {
			return nil, errSnapshot
		}
	}
	if len(rest) != 0 {
		return nil, errSnapshot
	}
	return subs, nil
}

// indicesEnd reports whether idx holds count leaf indices, increasing,
// the last of them last.
func indicesEnd(idx []byte, count uint64, last int64) bool {
	var at, seen uint64
	for len(idx) > 0 {
		d, k := binary.Uvarint(idx)
		if k <= 0 || (seen > 0 && d == 0) {
			return false
		}
		idx = idx[k:]
		at += d
		seen++
	}
	return seen == count && at == uint64(last)
}

// buildSlab is build over a slab of subjects, its nodes taken from the
// slab *nodes (with room for all of them).
func (m *Map) buildSlab(subs []subject, nodes *[]node) *node {
	*nodes = append(*nodes, node{gen: m.gen, dirty: true})
	n := &(*nodes)[len(*nodes)-1]
	if len(subs) == 1 {
		n.sub = &subs[0]
		return n
	}
	c := firstDiff(&subs[0].key, &subs[len(subs)-1].key)
	split, _ := slices.BinarySearchFunc(subs, 1, func(s subject, bit int) int { return keyBit(&s.key, c) - bit })
	n.crit = uint8(c)
	n.child[0] = m.buildSlab(subs[:split], nodes)
	n.child[1] = m.buildSlab(subs[split:], nodes)
	return n
}
