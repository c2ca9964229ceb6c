package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/safefile"
)

// A map snapshot is written when the log has grown by an eighth since the
// last (a pass over the whole map); between two, a process that committed
// writes, as it closes the log, a delta beside it: the buckets that differ
// from the snapshot's, so that
// the next process reads only the headers and the buckets its appends
// reach, not the subjects of every commit since the snapshot. It is a
// cache as the snapshot is, checked the same way (the log's root at its
// size, the map leaf's root there, each bucket's digest and hash), and
// ignored if it does not name the snapshot beside it.
//
//	"cairn map snapshot delta v1\n"
//	the snapshot's size uint64 and root [32]; size uint64, the log's root at size [32],
//	last uint64 (+1), subjects uint64, buckets uint64
//	per bucket, in bucket order: bucket uint64, then as in the snapshot's table:
//	    offset uint64, length uint64, subjects uint64, hash [32], SHA-256 of its bytes [32]
//	SHA-256 of all the bytes before it [32]
//	the buckets' bytes, at their offsets from here, as in the snapshot
const (
	deltaFile   = "map.snapshot.delta"
	deltaMagic  = "cairn map snapshot delta v1\n"
	deltaHeader = len(deltaMagic) + 8 + 32 + 8 + 32 + 8 + 8 + 8
	deltaEntry  = 8 + bucketEntry
)

// errDeltaFull says a delta would take too many of the snapshot's bytes.
var errDeltaFull = errors.New("map snapshot delta too large")

// saveDelta writes, beside the snapshot m was read from (m.snap), the
// buckets of m, the map of the committed log at size with root, that
// differ from it (not synced: a cache). Its buckets not read are the
// snapshot's as they are. It fails with errDeltaFull, writing nothing,
// when the delta would hold more than a quarter of the snapshot's bytes
// (the delta there, if any, stays of use up to its size).
func (s *Store) saveDelta(m *Map, size int64, root tlog.Hash) error {
	base := m.snap
	if base == nil {
		return errors.New("the map was not read from a snapshot")
	}
	m.Root()
	bits := base.bits
	var data, table []byte
	var buckets int
	var walk func(n *node) error
	walk = func(n *node) error {
		if n == nil {
			return nil
		}
		if z := n.lazy; z != nil {
			if z.src == base {
				return nil // the snapshot's bucket, unchanged
			}
			// A bucket of the delta the map was read from: carried over.
			r, err := z.get()
			if err != nil {
				return err
			}
			n = r
		}
		if n.sub == nil && int(n.crit) < bits {
			if err := walk(n.child[0]); err != nil {
				return err
			}
			return walk(n.child[1])
		}
		// One bucket's subtree: every key below shares its first bits.
		b := bucketOf(anyKey(n), bits)
		from := len(data)
		count := 0
		var put func(n *node)
		put = func(n *node) {
			n = resolve(n)
			if n.sub != nil {
				data = appendSubject(data, n.sub)
				count++
				return
			}
			put(n.child[0])
			put(n.child[1])
		}
		put(n)
		if int64(len(data)) > base.bytes/4 {
			return errDeltaFull
		}
		h := subtreeHash(m.root, bucketPrefix(b, bits), bits)
		digest := sha256.Sum256(data[from:])
		table = binary.BigEndian.AppendUint64(table, uint64(b))
		table = binary.BigEndian.AppendUint64(table, uint64(from))
		table = binary.BigEndian.AppendUint64(table, uint64(len(data)-from))
		table = binary.BigEndian.AppendUint64(table, uint64(count))
		table = append(table, h[:]...)
		table = append(table, digest[:]...)
		buckets++
		return nil
	}
	if err := walk(m.root); err != nil {
		return err
	}
	b := make([]byte, 0, deltaHeader+len(table)+sha256.Size+len(data))
	b = append(b, deltaMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(base.size))
	b = append(b, base.root[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = append(b, root[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.last+1))
	b = binary.BigEndian.AppendUint64(b, uint64(m.subjects))
	b = binary.BigEndian.AppendUint64(b, uint64(buckets))
	b = append(b, table...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	b = append(b, data...)
	return safefile.Write(filepath.Join(s.Dir(), deltaFile), b, safefile.Options{NoSync: true})
}

// openDelta reads the header of the delta at path, if it names the
// snapshot base (whose buckets, lazy, in bucket order, are zs): the
// buckets of the map it is of, lazy, in bucket order (the delta's in place
// of the snapshot's), and its source (its size, root, …).
func openDelta(path string, base *snapSource, zs []*lazy) ([]*lazy, *snapSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, deltaHeader)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, nil, errSnapshot
	}
	rest, ok := bytes.CutPrefix(head, []byte(deltaMagic))
	if !ok {
		return nil, nil, errSnapshot
	}
	u64 := func() uint64 {
		v := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		return v
	}
	hash := func() (h tlog.Hash) {
		copy(h[:], rest)
		rest = rest[32:]
		return h
	}
	if int64(u64()) != base.size || hash() != base.root {
		return nil, nil, errSnapshot // of another snapshot
	}
	d := &snapSource{path: path, log: base.log, subjectsOf: base.subjectsOf, bits: base.bits}
	d.size, d.root = int64(u64()), hash()
	d.last, d.subjects = int64(u64())-1, u64()
	n := u64()
	nb := uint64(1) << base.bits
	if d.size <= base.size || n == 0 || n > nb || int64(deltaHeader)+int64(n)*deltaEntry+sha256.Size > fi.Size() {
		return nil, nil, errSnapshot
	}
	whole := make([]byte, deltaHeader+int(n)*deltaEntry+sha256.Size)
	if _, err := f.ReadAt(whole, 0); err != nil {
		return nil, nil, errSnapshot
	}
	body, sum := whole[:len(whole)-sha256.Size], whole[len(whole)-sha256.Size:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return nil, nil, errSnapshot
	}
	d.data, d.bytes = int64(len(whole)), fi.Size()-int64(len(whole))
	table := body[deltaHeader:]
	out := make([]*lazy, 0, len(zs)+int(n))
	at := 0 // the next of zs
	var next, total uint64
	prev := -1
	for i := 0; i < int(n); i++ {
		e := table[i*deltaEntry:]
		b, off, size, count := binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(e[8:]), binary.BigEndian.Uint64(e[16:]), binary.BigEndian.Uint64(e[24:])
		if b >= nb || int(b) <= prev || off != next || count == 0 || size == 0 || count > size/(32+8+32+8+1) {
			return nil, nil, errSnapshot
		}
		prev = int(b)
		next += size
		prefix := bucketPrefix(int(b), base.bits)
		for ; at < len(zs) && bytes.Compare(zs[at].prefix[:], prefix[:]) < 0; at++ {
			out = append(out, zs[at])
			total += uint64(zs[at].count)
		}
		if at < len(zs) && zs[at].prefix == prefix {
			at++ // the delta's in its place
		}
		z := &lazy{src: d, off: int64(off), n: int64(size), count: int64(count), prefix: prefix, bits: base.bits}
		copy(z.hash[:], e[32:64])
		copy(z.digest[:], e[64:96])
		out = append(out, z)
		total += count
	}
	for ; at < len(zs); at++ {
		out = append(out, zs[at])
		total += uint64(zs[at].count)
	}
	if total != d.subjects || int64(next) != d.bytes {
		return nil, nil, errSnapshot
	}
	return out, d, nil
}
