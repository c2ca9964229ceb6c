package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/mod/sumdb/tlog"
)

// The map (docs/transparency.md, "The map") is a sparse Merkle tree from
// subject to the files about it, committed to by the checkpoint beside the
// log's root, so that a read of one subject proves it left nothing out.

// Value is what the map holds for one subject: how many files it has and
// the chain over their leaf indices and leaf hashes, in index order. The
// zero Value is the value of a subject with no files (chain0 = 32 zero
// bytes).
type Value struct {
	Count uint64
	Chain tlog.Hash
}

// Extend returns v with one more file: the leaf at index, whose log leaf
// hash is leaf (chainj = SHA-256(chain(j-1) || uint64be(ij) || hj)). A
// subject's files extend its value in index order.
func (v Value) Extend(index int64, leaf tlog.Hash) Value {
	var buf [32 + 8 + 32]byte
	copy(buf[:32], v.Chain[:])
	binary.BigEndian.PutUint64(buf[32:40], uint64(index))
	copy(buf[40:], leaf[:])
	return Value{Count: v.Count + 1, Chain: sha256.Sum256(buf[:])}
}

// SubjectKey returns the map key of subject: SHA-256 of its bytes.
func SubjectKey(subject string) [32]byte {
	return sha256.Sum256([]byte(subject))
}

// mapLeafHash is the hash of a subtree that holds exactly one subject, at
// any depth: SHA-256(0x00 || K || uint64be(count) || chain).
func mapLeafHash(key *[32]byte, v Value) tlog.Hash {
	var buf [1 + 32 + 8 + 32]byte
	buf[0] = 0x00
	copy(buf[1:33], key[:])
	binary.BigEndian.PutUint64(buf[33:41], v.Count)
	copy(buf[41:], v.Chain[:])
	return sha256.Sum256(buf[:])
}

// mapNodeHash is the hash of a subtree with more than one subject:
// SHA-256(0x01 || left || right).
func mapNodeHash(left, right *tlog.Hash) tlog.Hash {
	var buf [1 + 32 + 32]byte
	buf[0] = 0x01
	copy(buf[1:33], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// emptyHash is the hash of an empty subtree, and the empty map's root.
var emptyHash tlog.Hash

// keyBit returns bit d of key, bit 0 being the most significant bit of
// key[0]: 0 goes left, 1 right.
func keyBit(key *[32]byte, d int) int {
	return int(key[d>>3]>>(7-uint(d&7))) & 1
}

// firstDiff returns the first bit at which a and b differ, or 256 if they
// are equal.
func firstDiff(a, b *[32]byte) int {
	for i := 0; i < 32; i++ {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return 256
}

// wrap returns the hash, at depth from, of a subtree whose subjects all
// share key's bits from..to-1 and whose hash at depth to is h: every level
// in between has one empty side.
func wrap(h tlog.Hash, key *[32]byte, from, to int) tlog.Hash {
	for d := to - 1; d >= from; d-- {
		if keyBit(key, d) == 0 {
			h = mapNodeHash(&h, &emptyHash)
		} else {
			h = mapNodeHash(&emptyHash, &h)
		}
	}
	return h
}

// A Map is the completeness map in memory: for each subject, its Value and
// the leaf indices of its files, with the sparse Merkle tree over them.
//
// The tree is a crit-bit trie: an inner node stands where its subjects'
// keys first differ, a subject's leaf sits where it is alone (as the
// spec's leaf node is lifted), and each node caches its subtree's hash,
// recomputed by Root only on the paths Add touched. Add and Root cost
// O(log subjects) hashes per subject changed; Prove costs a walk.
//
// A new Map first gathers its Adds in a hash table and builds the tree
// once, from the sorted keys, when first asked for its Root, a proof or a
// Clone: rebuilding a map from a log costs one pass over its leaves and a
// sort, not a walk per leaf. Adds after that change the tree in place.
//
// A Map is not safe for concurrent use, except that a Map not changed
// since its Root was last computed (Clone computes it) may be read (Get,
// Prove, Root, Len) by many goroutines at once. A Map and its clones share
// only what neither will change, so each may be used by its own goroutine.
type Map struct {
	root     *node
	subjects int
	last     int64  // the last leaf index added, -1 if none
	gen      uint32 // nodes and subjects of this generation are this Map's own
	lazy     bool   // it was read from a snapshot: it may have lazy subtrees
	// snap is the full snapshot the map was read from (nil if none): a
	// delta beside it holds the buckets that differ from it (saveDelta).
	snap *snapSource

	// gather holds the subjects until the tree is first needed; nil
	// once it is built.
	gather map[[32]byte]*subject

	// The subject the last Add was about, its key, and, until the next
	// Root or Clone, its entry, this map's own at the end of a dirty
	// path: a commit's files are mostly about one subject, and the
	// next Add of it needs neither its key hashed nor a walk down.
	hotName string
	hotKey  [32]byte
	hot     *subject
}

// node is a node of the trie: a leaf (sub != nil) or an inner node whose
// children's keys first differ at bit crit.
type node struct {
	// hash is the subtree's hash at the depth where its parent puts it
	// (the parent's crit bit + 1, or 0 for the root); valid unless dirty.
	hash  tlog.Hash
	child [2]*node
	sub   *subject
	// lazy, if set, makes the node a subtree of a map snapshot not read
	// yet (see snapshot.go): its hash is known, its nodes are those
	// lazy.get returns, each read and checked against hash when first
	// needed. A lazy node is never dirty and never changed: a map that
	// changes below it puts the subtree read in its place.
	lazy  *lazy
	gen   uint32
	crit  uint8
	dirty bool
}

// resolve returns n, or the subtree a lazy n stands for. Every walk
// down the trie goes through it; only a map whose lazy subtrees were
// all read (Store.Map's), or read along the walk's path (a Store's
// staged map, by load, before its Adds), is walked, so reading cannot
// fail here.
func resolve(n *node) *node {
	if n == nil || n.lazy == nil {
		return n
	}
	r, err := n.lazy.get()
	if err != nil {
		panic(fmt.Sprintf("translog: a map snapshot's subtree walked before it was read: %v", err))
	}
	return r
}

// resolveSlot puts in *slot the subtree a lazy node there stands for.
// (slot is in a node this map owns, or its root.)
func resolveSlot(slot **node) {
	if (*slot).lazy != nil {
		*slot = resolve(*slot)
	}
}

// subject is one subject's entry.
type subject struct {
	key   [32]byte
	value Value
	last  int64  // the last leaf index in idx
	idx   []byte // leaf indices: the first, then increments, as uvarints
	gen   uint32
}

// generations hands out a distinct generation to every Map and clone: a
// Map changes in place only what carries its own generation and copies
// the rest first.
var generations atomic.Uint32

func nextGen() uint32 {
	g := generations.Add(1)
	if g == 0 {
		panic("translog: map generations exhausted")
	}
	return g
}

// NewMap returns an empty map.
func NewMap() *Map {
	return &Map{last: -1, gen: nextGen(), gather: map[[32]byte]*subject{}}
}

// settle builds the tree from the gathered subjects, if it is not built.
func (m *Map) settle() {
	if m.gather == nil {
		return
	}
	subs := make([]*subject, 0, len(m.gather))
	for _, s := range m.gather {
		subs = append(subs, s)
	}
	m.gather = nil
	slices.SortFunc(subs, func(a, b *subject) int { return bytes.Compare(a.key[:], b.key[:]) })
	if len(subs) > 0 {
		m.root = m.build(subs)
	}
}

// build returns the trie over subs, sorted by key and not empty.
func (m *Map) build(subs []*subject) *node {
	if len(subs) == 1 {
		return &node{sub: subs[0], gen: m.gen, dirty: true}
	}
	// Sorted keys first differ, among them all, where the first and the
	// last do; the ones with that bit clear come first.
	c := firstDiff(&subs[0].key, &subs[len(subs)-1].key)
	split, _ := slices.BinarySearchFunc(subs, 1, func(s *subject, bit int) int { return keyBit(&s.key, c) - bit })
	n := &node{gen: m.gen, crit: uint8(c), dirty: true}
	n.child[0] = m.build(subs[:split])
	n.child[1] = m.build(subs[split:])
	return n
}

// Clone returns a copy of m that can be changed independently of it, in
// O(1): the two share the tree, and each copies a node before its first
// change to it. Clone computes m's root first (building the tree, the
// first time). It is how a caller stages
// Adds it may have to undo: clone, add to the clone, and keep whichever
// map holds the outcome.
func (m *Map) Clone() *Map {
	m.settle()
	m.Root()
	c := &Map{root: m.root, subjects: m.subjects, last: m.last, gen: nextGen(), lazy: m.lazy, snap: m.snap}
	m.gen = nextGen()
	return c
}

// Len returns the number of subjects in the map.
func (m *Map) Len() int { return m.subjects }

// Last returns the largest leaf index added to the map, or -1 if the map
// is empty.
func (m *Map) Last() int64 { return m.last }

// Add records that the log's leaf at index, with leaf hash leaf, is a file
// about subject. Leaves are added in index order, each to every subject it
// is about (a key's file is in its key's subject and in "keys"): Add panics
// if index is negative, smaller than an index added before, or one added
// before to the same subject, since the map of a log that skips back is
// not the spec's.
func (m *Map) Add(subject string, index int64, leaf tlog.Hash) {
	if index < 0 || index < m.last {
		panic(fmt.Sprintf("translog: Map.Add(%q, %d): leaf indices must not decrease (last added %d)", subject, index, m.last))
	}
	m.last = index
	if m.hot != nil && subject == m.hotName && m.hot.gen == m.gen {
		m.hot.add(index, leaf)
		return
	}
	if subject != m.hotName || m.hotName == "" {
		m.hotName, m.hotKey = subject, SubjectKey(subject)
	}
	key := m.hotKey
	m.hot = nil
	if m.gather != nil {
		if s := m.gather[key]; s != nil {
			s.add(index, leaf)
		} else {
			m.gather[key] = newSubject(&key, index, leaf, m.gen)
			m.subjects++
		}
		return
	}
	if m.root == nil {
		m.root = m.newLeaf(&key, index, leaf)
		m.hot = m.root.sub
		m.subjects++
		return
	}
	// Find the closest subject, where key's path ends, and how many
	// inner nodes above it stand before the bit where the two differ.
	n := resolve(m.root)
	above := 0
	var crits [256]uint8
	for n.sub == nil {
		crits[above] = n.crit
		above++
		n = resolve(n.child[keyBit(&key, int(n.crit))])
	}
	diff := firstDiff(&key, &n.sub.key)
	for above > 0 && int(crits[above-1]) > diff {
		above--
	}

	// Own (copy if shared) and dirty the nodes on the way down there.
	slot := &m.root
	for i := 0; i < above; i++ {
		n := m.own(slot)
		slot = &n.child[keyBit(&key, int(n.crit))]
	}
	resolveSlot(slot)
	if diff == 256 {
		n := m.own(slot)
		m.hot = m.ownSubject(n)
		m.hot.add(index, leaf)
		return
	}
	if (*slot).sub == nil {
		// An inner node that now hangs below the new one, a level
		// lower: its hash there is another one.
		m.own(slot)
	}
	inner := &node{gen: m.gen, crit: uint8(diff), dirty: true}
	side := keyBit(&key, diff)
	inner.child[side] = m.newLeaf(&key, index, leaf)
	inner.child[1-side] = *slot
	*slot = inner
	m.hot = inner.child[side].sub
	m.subjects++
}

// own makes the node in *slot this map's own, copying it if it is shared,
// marks it dirty and returns it.
func (m *Map) own(slot **node) *node {
	resolveSlot(slot)
	n := *slot
	if n.gen != m.gen {
		c := *n
		c.gen = m.gen
		n = &c
		*slot = n
	}
	n.dirty = true
	return n
}

// ownSubject makes leaf n's subject this map's own, copying it if shared.
func (m *Map) ownSubject(n *node) *subject {
	if n.sub.gen != m.gen {
		c := *n.sub
		c.gen = m.gen
		c.idx = c.idx[:len(c.idx):len(c.idx)] // appending copies
		n.sub = &c
	}
	return n.sub
}

func (m *Map) newLeaf(key *[32]byte, index int64, leaf tlog.Hash) *node {
	return &node{sub: newSubject(key, index, leaf, m.gen), gen: m.gen, dirty: true}
}

// add extends s with the leaf at index, which is after s.last.
func (s *subject) add(index int64, leaf tlog.Hash) {
	if index <= s.last {
		panic(fmt.Sprintf("translog: Map.Add(%d): leaf %d is in the subject already", index, s.last))
	}
	s.value = s.value.Extend(index, leaf)
	s.idx = binary.AppendUvarint(s.idx, uint64(index-s.last))
	s.last = index
}

func newSubject(key *[32]byte, index int64, leaf tlog.Hash, gen uint32) *subject {
	s := &subject{key: *key, value: Value{}.Extend(index, leaf), last: index, gen: gen}
	s.idx = binary.AppendUvarint(make([]byte, 0, 4), uint64(index))
	return s
}

// Root returns the map's root hash: 32 zero bytes for the empty map.
func (m *Map) Root() tlog.Hash {
	if m.hot != nil { // written only when set: a settled map is read by many at once (Prove)
		m.hot = nil // its path is hashed: no longer dirty
	}
	m.settle()
	if m.root == nil {
		return emptyHash
	}
	rehash(m.root, 0)
	return m.root.hash
}

// rehash recomputes the hashes of n's dirty subtree, n being at depth.
func rehash(n *node, depth int) {
	if !n.dirty { // (a lazy node never is)
		return
	}
	if n.sub != nil {
		n.hash = mapLeafHash(&n.sub.key, n.sub.value)
	} else {
		c := int(n.crit)
		rehash(n.child[0], c+1)
		rehash(n.child[1], c+1)
		n.hash = mapNodeHash(&n.child[0].hash, &n.child[1].hash)
		if c > depth {
			// Levels with one empty side above it: their bits are any
			// subject's below (a walk down, needed only here).
			n.hash = wrap(n.hash, anyKey(n), depth, c)
		}
	}
	n.dirty = false
}

// anyKey returns the key of one subject below n: all of them share the
// bits above n's crit bit. Below a lazy subtree not read yet it returns
// the subtree's prefix, whose bits are those of every key in it above
// its bucket's depth: a lazy subtree hangs only below nodes whose crit
// bits are above that depth (an Add reads the lazy subtrees on its path
// before it puts a node above them).
func anyKey(n *node) *[32]byte {
	for n.sub == nil {
		if n.lazy != nil {
			r := n.lazy.read()
			if r == nil {
				return &n.lazy.prefix
			}
			n = r
			continue
		}
		n = n.child[0]
	}
	return &n.sub.key
}

// Get returns subject's value and the leaf indices of its files, in index
// order, and whether the map holds it.
func (m *Map) Get(subject string) (Value, []int64, bool) {
	key := SubjectKey(subject)
	s := m.find(&key)
	if s == nil {
		return Value{}, nil, false
	}
	list := make([]int64, 0, s.value.Count)
	var at int64
	for b := s.idx; len(b) > 0; {
		d, n := binary.Uvarint(b)
		b = b[n:]
		at += int64(d)
		list = append(list, at)
	}
	return s.value, list, true
}

func (m *Map) find(key *[32]byte) *subject {
	if m.gather != nil {
		return m.gather[*key]
	}
	n := resolve(m.root)
	if n == nil {
		return nil
	}
	for n.sub == nil {
		n = resolve(n.child[keyBit(key, int(n.crit))])
	}
	if n.sub.key != *key {
		return nil
	}
	return n.sub
}

// MapProof proves, against a map root, a subject's value (inclusion) or
// that the map does not hold it (non-inclusion): the sibling hashes along
// the subject's search path, from where the path ends up to the root. Its
// JSON form is the spec's: {"depth", "bitmap", "siblings", "other"}, byte
// strings in standard base64.
type MapProof struct {
	// Depth is where the subject's path ends, 0..256.
	Depth int
	// Bitmap has ceil(Depth/8) bytes; bit d (MSB first) is set when the
	// sibling at depth d+1 on the path is not empty and is in Siblings.
	Bitmap []byte
	// Siblings are the non-empty siblings, deepest first.
	Siblings []tlog.Hash
	// Other, for non-inclusion only, is the other subject's leaf the path
	// ends at; nil when the path ends at the subject's own leaf
	// (inclusion) or at an empty subtree.
	Other *MapLeaf
}

// MapLeaf is a subject's leaf as a proof shows it: its key and value.
type MapLeaf struct {
	Key   [32]byte
	Value Value
}

// Prove returns the proof of subject's value in m, or of its absence, for
// m's current root.
func (m *Map) Prove(subject string) MapProof {
	key := SubjectKey(subject)
	m.Root()
	var (
		sibs   = make([]tlog.Hash, 0, 40) // top first
		depths = make([]int, 0, 40)
		depth  int
		other  *MapLeaf
	)
	push := func(d int, h tlog.Hash) {
		sibs, depths = append(sibs, h), append(depths, d)
		depth = d
	}
	if m.root != nil {
		// The subject at the end of key's path shares, with key, the
		// bits of every inner node above where the path ends.
		end := resolve(m.root)
		for end.sub == nil {
			end = resolve(end.child[keyBit(&key, int(end.crit))])
		}
		rep := &end.sub.key
		diff := firstDiff(&key, rep)
		for n := resolve(m.root); ; {
			if n.sub != nil {
				if diff < 256 {
					other = &MapLeaf{Key: n.sub.key, Value: n.sub.value}
				}
				break
			}
			c := int(n.crit)
			if c > diff {
				// The path leaves n's subtree at bit diff and ends
				// at the empty subtree beside it.
				push(diff+1, wrap(mapNodeHash(&n.child[0].hash, &n.child[1].hash), rep, diff+1, c))
				break
			}
			side := keyBit(&key, c)
			push(c+1, n.child[1-side].hash)
			n = resolve(n.child[side])
		}
	}
	p := MapProof{Depth: depth, Bitmap: make([]byte, (depth+7)/8), Siblings: make([]tlog.Hash, len(sibs)), Other: other}
	for i, d := range depths {
		p.Bitmap[(d-1)/8] |= 0x80 >> uint((d-1)%8)
		p.Siblings[len(sibs)-1-i] = sibs[i]
	}
	return p
}

// ErrMapProof is the family of map proofs that do not prove what they
// are checked for: a server left a file out, changed one, or lied about
// a subject's absence.
var ErrMapProof = errors.New("map proof refused")

// VerifyMap checks that p proves, against the map root, that subject's
// value is *v, or, when v is nil, that the map holds no subject. The
// error wraps ErrMapProof and names the subject and both roots.
func VerifyMap(root tlog.Hash, subject string, v *Value, p MapProof) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: subject %q: %s", ErrMapProof, subject, fmt.Sprintf(format, args...))
	}
	if p.Depth < 0 || p.Depth > 256 {
		return refuse("depth %d is outside 0..256", p.Depth)
	}
	if len(p.Bitmap) != (p.Depth+7)/8 {
		return refuse("bitmap has %d bytes, depth %d needs %d", len(p.Bitmap), p.Depth, (p.Depth+7)/8)
	}
	if r := p.Depth % 8; r != 0 && p.Bitmap[len(p.Bitmap)-1]&(0xff>>uint(r)) != 0 {
		return refuse("bitmap has bits set past depth %d", p.Depth)
	}
	set := 0
	for _, b := range p.Bitmap {
		set += bits.OnesCount8(b)
	}
	if set != len(p.Siblings) {
		return refuse("bitmap names %d siblings, the proof has %d", set, len(p.Siblings))
	}
	for i := range p.Siblings {
		if p.Siblings[i] == emptyHash {
			return refuse("sibling %d is the empty hash, which the bitmap must leave out", i)
		}
	}
	key := SubjectKey(subject)
	var h tlog.Hash
	switch {
	case v != nil && p.Other != nil:
		return refuse("a proof of its value ends at another subject's leaf (key %x)", p.Other.Key)
	case v != nil:
		if v.Count == 0 {
			return refuse("a value of 0 files is absence: check it with no value")
		}
		h = mapLeafHash(&key, *v)
	case p.Other != nil:
		if p.Other.Key == key {
			return refuse("the proof of absence ends at the subject's own leaf (%d files)", p.Other.Value.Count)
		}
		if d := firstDiff(&key, &p.Other.Key); d < p.Depth {
			return refuse("the other leaf's key %x leaves the path at bit %d, above depth %d", p.Other.Key, d, p.Depth)
		}
		h = mapLeafHash(&p.Other.Key, p.Other.Value)
	default:
		h = emptyHash
	}
	next := 0
	for d := p.Depth; d >= 1; d-- {
		sib := &emptyHash
		if p.Bitmap[(d-1)/8]&(0x80>>uint((d-1)%8)) != 0 {
			sib = &p.Siblings[next]
			next++
		}
		if keyBit(&key, d-1) == 0 {
			h = mapNodeHash(&h, sib)
		} else {
			h = mapNodeHash(sib, &h)
		}
	}
	if h != root {
		what := "absence"
		if v != nil {
			what = fmt.Sprintf("%d files, chain %v", v.Count, v.Chain)
		}
		return refuse("the proof of %s leads to map root %v, the checkpoint's is %v", what, h, root)
	}
	return nil
}

// mapProofJSON is MapProof on the wire.
type mapProofJSON struct {
	Depth    int           `json:"depth"`
	Bitmap   []byte        `json:"bitmap"`
	Siblings [][]byte      `json:"siblings"`
	Other    *mapOtherJSON `json:"other,omitempty"`
}

type mapOtherJSON struct {
	Key   []byte `json:"key"`
	Count uint64 `json:"count"`
	Chain []byte `json:"chain"`
}

// MarshalJSON encodes p as the spec's JSON.
func (p MapProof) MarshalJSON() ([]byte, error) {
	w := mapProofJSON{Depth: p.Depth, Bitmap: p.Bitmap, Siblings: make([][]byte, len(p.Siblings))}
	if w.Bitmap == nil {
		w.Bitmap = []byte{}
	}
	for i := range p.Siblings {
		w.Siblings[i] = p.Siblings[i][:]
	}
	if p.Other != nil {
		w.Other = &mapOtherJSON{Key: p.Other.Key[:], Count: p.Other.Value.Count, Chain: p.Other.Value.Chain[:]}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the spec's JSON, refusing a depth outside 0..256
// and hashes or keys that are not 32 bytes. Whether the proof proves
// anything is VerifyMap's to say.
func (p *MapProof) UnmarshalJSON(data []byte) error {
	var w mapProofJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("decoding map proof: %w", err)
	}
	return p.fromJSON(w)
}

// UnmarshalJSONFrom is UnmarshalJSON for go-json-experiment/json, which
// decodes a light read's documents: the proof is decoded in the
// document's one pass, not read out of it and decoded again by
// encoding/json. The same checks.
func (p *MapProof) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	var w mapProofJSON
	if err := jsonv2.UnmarshalDecode(dec, &w); err != nil {
		return fmt.Errorf("decoding map proof: %w", err)
	}
	return p.fromJSON(w)
}

// fromJSON sets p to the proof w, decoded, once checked.
func (p *MapProof) fromJSON(w mapProofJSON) error {
	if w.Depth < 0 || w.Depth > 256 {
		return fmt.Errorf("decoding map proof: depth %d is outside 0..256", w.Depth)
	}
	out := MapProof{Depth: w.Depth, Bitmap: w.Bitmap, Siblings: make([]tlog.Hash, len(w.Siblings))}
	if out.Bitmap == nil {
		out.Bitmap = []byte{}
	}
	for i, s := range w.Siblings {
		if len(s) != len(tlog.Hash{}) {
			return fmt.Errorf("decoding map proof: sibling %d has %d bytes, want 32", i, len(s))
		}
		copy(out.Siblings[i][:], s)
	}
	if w.Other != nil {
		if len(w.Other.Key) != 32 || len(w.Other.Chain) != 32 {
			return fmt.Errorf("decoding map proof: other leaf's key has %d bytes and chain %d, want 32 each", len(w.Other.Key), len(w.Other.Chain))
		}
		out.Other = &MapLeaf{Value: Value{Count: w.Other.Count}}
		copy(out.Other.Key[:], w.Other.Key)
		copy(out.Other.Value.Chain[:], w.Other.Chain)
	}
	*p = out
	return nil
}
