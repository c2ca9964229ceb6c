package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/safefile"
)

// A map snapshot keeps the map of a committed size beside the log, so
// that a process that opens the log (an incremental verification, a
// publish) needs not read every entry again to have the map it appends
// to. It is a cache: a snapshot that does not match the log (its size's
// root, the map leaf at its size) is ignored and the map rebuilt.
//
//	"cairn map snapshot v2\n"
//	size uint64, the log's root at size [32], last uint64 (the last leaf in the map, +1), subjects uint64
//	per subject, by key: key [32], count uint64, chain [32], last uint64, len uvarint, indices (uvarint deltas)
//	SHA-256 of all the bytes before it [32]
//
// The map root binds each subject's count and chain but not its list of
// leaf indices (two deltas swapped keep the root), so the trailing
// digest is what catches a snapshot damaged on disk.
const (
	snapshotFile  = "map.snapshot"
	snapshotMagic = "cairn map snapshot v2\n"
)

// snapshotEvery is the least growth, in leaves, between two snapshots
// (and at least an eighth of the log): writing one costs a pass over the
// map.
var snapshotEvery int64 = 1 << 12

// saveSnapshot writes m, the map of the committed log at size with root,
// in the log's directory (not synced: a snapshot lost in a crash is
// rebuilt).
func (s *Store) saveSnapshot(m *Map, size int64, root tlog.Hash) error {
	m.settle()
	var subs []*subject
	var walk func(n *node)
	walk = func(n *node) {
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
	b := make([]byte, 0, len(snapshotMagic)+8+32+8+8+len(subs)*(32+8+32+8+8))
	b = append(b, snapshotMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = append(b, root[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.last+1))
	b = binary.BigEndian.AppendUint64(b, uint64(len(subs)))
	for _, sub := range subs {
		b = append(b, sub.key[:]...)
		b = binary.BigEndian.AppendUint64(b, sub.value.Count)
		b = append(b, sub.value.Chain[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(sub.last))
		b = binary.AppendUvarint(b, uint64(len(sub.idx)))
		b = append(b, sub.idx...)
	}
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	return safefile.Write(filepath.Join(s.Dir(), snapshotFile), b, safefile.Options{NoSync: true})
}

var errSnapshot = errors.New("map snapshot malformed")

// loadSnapshot returns the map the log's snapshot holds and its size, if
// it is one of this log at a size up to size: the log's root at its size
// is the one it names, and its map's root is the map leaf's there.
func (s *Store) loadSnapshot(size int64) (*Map, int64, bool) {
	data, err := os.ReadFile(filepath.Join(s.Dir(), snapshotFile))
	if err != nil {
		return nil, 0, false
	}
	m, n, root, err := parseSnapshot(data)
	if err != nil || n > size || n == 0 {
		return nil, 0, false
	}
	if r, err := s.Log.TreeHash(n); err != nil || r != root {
		return nil, 0, false
	}
	text, err := s.Log.Entry(n - 1)
	if err != nil {
		return nil, 0, false
	}
	me, err := ParseMapEntry(text)
	if err != nil || me.Root != m.Root() {
		return nil, 0, false
	}
	return m, n, true
}

func parseSnapshot(data []byte) (*Map, int64, tlog.Hash, error) {
	var root tlog.Hash
	if len(data) < sha256.Size {
		return nil, 0, root, errSnapshot
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if d := sha256.Sum256(body); !bytes.Equal(d[:], sum) {
		return nil, 0, root, errSnapshot
	}
	data = body
	rest, ok := bytes.CutPrefix(data, []byte(snapshotMagic))
	if !ok || len(rest) < 8+32+8+8 {
		return nil, 0, root, errSnapshot
	}
	u64 := func() uint64 {
		v := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		return v
	}
	size := int64(u64())
	copy(root[:], rest)
	rest = rest[32:]
	m := &Map{gen: nextGen()}
	m.last = int64(u64()) - 1
	n := u64()
	if n > uint64(len(rest))/(32+8+32+8+1) {
		return nil, 0, root, errSnapshot
	}
	// One slab of subjects, their indices left in data (capped, so that
	// an append copies), in key order: the trie is built from them with
	// no hash table and no sort.
	subs := make([]subject, n)
	for i := range subs {
		if len(rest) < 32+8+32+8 {
			return nil, 0, root, errSnapshot
		}
		sub := &subs[i]
		sub.gen = m.gen
		copy(sub.key[:], rest)
		rest = rest[32:]
		sub.value.Count = u64()
		copy(sub.value.Chain[:], rest)
		rest = rest[32:]
		sub.last = int64(u64())
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return nil, 0, root, errSnapshot
		}
		sub.idx = rest[k : k+int(l) : k+int(l)]
		rest = rest[k+int(l):]
		if sub.value.Count == 0 || sub.last > m.last || (i > 0 && bytes.Compare(subs[i-1].key[:], sub.key[:]) >= 0) || !indicesEnd(sub.idx, sub.value.Count, sub.last) {
			return nil, 0, root, errSnapshot
		}
	}
	if len(rest) != 0 {
		return nil, 0, root, errSnapshot
	}
	if n > 0 {
		nodes := make([]node, 0, 2*n-1)
		m.root = m.buildSlab(subs, &nodes)
	}
	m.subjects = int(n)
	return m, size, root, nil
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
