package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// naiveMap is the spec's map computed the slow way, over the full set,
// with nothing shared with Map but the spec.
type naiveMap struct {
	files map[string][]naiveFile
}

type naiveFile struct {
	index int64
	leaf  tlog.Hash
}

func newNaive() *naiveMap { return &naiveMap{files: map[string][]naiveFile{}} }

func (n *naiveMap) add(subject string, index int64, leaf tlog.Hash) {
	n.files[subject] = append(n.files[subject], naiveFile{index, leaf})
}

func (n *naiveMap) clone() *naiveMap {
	c := newNaive()
	for s, f := range n.files {
		c.files[s] = append([]naiveFile(nil), f...)
	}
	return c
}

// value follows "chainj = SHA-256(chain(j-1) || uint64be(ij) || hj)".
func (n *naiveMap) value(subject string) Value {
	var chain [32]byte
	for _, f := range n.files[subject] {
		h := sha256.New()
		h.Write(chain[:])
		binary.Write(h, binary.BigEndian, uint64(f.index))
		h.Write(f.leaf[:])
		copy(chain[:], h.Sum(nil))
	}
	return Value{Count: uint64(len(n.files[subject])), Chain: chain}
}

type naiveLeaf struct {
	key   [32]byte
	value Value
}

func (n *naiveMap) leaves() []naiveLeaf {
	var out []naiveLeaf
	for s := range n.files {
		out = append(out, naiveLeaf{sha256.Sum256([]byte(s)), n.value(s)})
	}
	return out
}

func bitOf(key [32]byte, d int) int { return int(key[d/8]>>(7-d%8)) & 1 }

// naiveHash is the spec's subtree hash, recursively: empty, one subject
// (lifted leaf node), or 0x01 || left || right.
func naiveHash(leaves []naiveLeaf, depth int) tlog.Hash {
	switch len(leaves) {
	case 0:
		return tlog.Hash{}
	case 1:
		h := sha256.New()
		h.Write([]byte{0})
		h.Write(leaves[0].key[:])
		binary.Write(h, binary.BigEndian, leaves[0].value.Count)
		h.Write(leaves[0].value.Chain[:])
		var out tlog.Hash
		copy(out[:], h.Sum(nil))
		return out
	}
	var left, right []naiveLeaf
	for _, l := range leaves {
		if bitOf(l.key, depth) == 0 {
			left = append(left, l)
		} else {
			right = append(right, l)
		}
	}
	l, r := naiveHash(left, depth+1), naiveHash(right, depth+1)
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func (n *naiveMap) root() tlog.Hash { return naiveHash(n.leaves(), 0) }

func leafOf(i int64) tlog.Hash { return tlog.RecordHash([]byte(fmt.Sprintf("entry %d\n", i))) }

// prefixed returns subjects whose keys share their first bits bits with
// the key of "anchor", so that the tree has long single-sided runs.
func prefixed(bits, n int) []string {
	anchor := sha256.Sum256([]byte("anchor"))
	var out []string
	for i := 0; len(out) < n; i++ {
		s := fmt.Sprintf("near %d", i)
		if k := sha256.Sum256([]byte(s)); firstDiff(&k, &anchor) >= bits {
			out = append(out, s)
		}
	}
	return out
}

// pool is a set of subjects with both random keys and keys that share
// long prefixes.
func pool(n int) []string {
	out := []string{"root", "anchor"}
	out = append(out, prefixed(10, 4)...)
	out = append(out, prefixed(14, 2)...)
	for i := 0; len(out) < n; i++ {
		out = append(out, fmt.Sprintf("package ns/p%d", i))
	}
	return out
}

func TestMapRootMatchesNaive(t *testing.T) {
	for _, size := range []int{1, 2, 3, 5, 17, 100, 600} {
		for seed := uint64(0); seed < 4; seed++ {
			t.Run(fmt.Sprintf("subjects=%d/seed=%d", size, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, uint64(size)))
				subjects := pool(size + 8)[:size]
				m, want := NewMap(), newNaive()
				if got := m.Root(); got != (tlog.Hash{}) {
					t.Fatalf("empty map's root = %x, want zero", got)
				}
				index := int64(rng.IntN(3))
				var s string
				for i := 0; i < 3*size; i++ {
					// Runs of one subject, as a commit's files are.
					if i == 0 || rng.IntN(3) != 0 {
						s = subjects[rng.IntN(size)]
					}
					m.Add(s, index, leafOf(index))
					want.add(s, index, leafOf(index))
					// Roots after some Adds, not every one, so that
					// several dirty paths are rehashed at once.
					if rng.IntN(size/8+2) == 0 || i == 3*size-1 {
						if got, w := m.Root(), want.root(); got != w {
							t.Fatalf("after %d adds: Root() = %x, naive = %x", i+1, got, w)
						}
					}
					index += 1 + int64(rng.IntN(3))
				}
				if m.Len() != len(want.files) {
					t.Errorf("Len() = %d, want %d", m.Len(), len(want.files))
				}
			})
		}
	}
}

func TestMapGet(t *testing.T) {
	// Before the tree is built, after it is built, and both.
	for _, built := range []int{-1, 0, 100, 199} {
		t.Run(fmt.Sprintf("tree built after %d adds", built), func(t *testing.T) { testMapGet(t, built) })
	}
}

func testMapGet(t *testing.T, built int) {
	m := NewMap()
	indices := map[string][]int64{}
	var index int64 = 5
	for i := 0; i < 200; i++ {
		if i == built {
			m.Root()
		}
		s := fmt.Sprintf("key %d", i%7)
		m.Add(s, index, leafOf(index))
		indices[s] = append(indices[s], index)
		index += int64(1 + i*i%300) // gaps wider than one varint byte
	}
	n := newNaive()
	for s, list := range indices {
		for _, i := range list {
			n.add(s, i, leafOf(i))
		}
	}
	for s, list := range indices {
		v, got, ok := m.Get(s)
		if !ok || !reflect.DeepEqual(got, list) {
			t.Fatalf("Get(%q) = %v, %v, want %v", s, got, ok, list)
		}
		if v != n.value(s) {
			t.Fatalf("Get(%q) value = %+v, want %+v", s, v, n.value(s))
		}
	}
	if _, _, ok := m.Get("key 7"); ok {
		t.Fatalf("Get of a subject never added says it is there")
	}
	if m.Last() != index-int64(1+199*199%300) {
		t.Errorf("Last() = %d", m.Last())
	}
}

func TestMapAddRefusesIndicesOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  int64
		then   int64
		same   bool // the second Add is to the first's subject
		refuse string
	}{
		{"same index, same subject", 4, 4, true, "in the subject already"},
		{"smaller index", 4, 3, false, "must not decrease"},
		{"smaller index, same subject", 4, 3, true, "must not decrease"},
		{"negative", -1, -1, false, "must not decrease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMap()
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tc.refuse) {
					t.Fatalf("Add did not refuse: recovered %v", r)
				}
			}()
			if tc.first >= 0 {
				m.Add("a", tc.first, leafOf(tc.first))
			}
			second := "b"
			if tc.same {
				second = "a"
			}
			m.Add(second, tc.then, leafOf(tc.then))
		})
	}
}

// built returns a map and its naive twin over subjects, with some
// subjects left out for absence proofs.
func built(t testing.TB, size int) (*Map, *naiveMap, []string, []string) {
	all := pool(2 * size)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	present, absent := all[:size], all[size:]
	m, n := NewMap(), newNaive()
	for i := int64(0); i < int64(3*size); i++ {
		s := present[rng.IntN(size)]
		if i < int64(size) {
			s = present[i]
		}
		m.Add(s, i, leafOf(i))
		n.add(s, i, leafOf(i))
	}
	if m.Root() != n.root() {
		t.Fatalf("root differs from the naive one")
	}
	return m, n, present, absent
}

func TestMapProofs(t *testing.T) {
	for _, size := range []int{0, 1, 2, 3, 40, 500} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			m, n, present, absent := built(t, size)
			root := m.Root()
			for _, s := range present {
				v := n.value(s)
				p := m.Prove(s)
				if err := VerifyMap(root, s, &v, p); err != nil {
					t.Fatalf("inclusion of %q: %v", s, err)
				}
				if p.Other != nil {
					t.Fatalf("inclusion of %q ends at another leaf", s)
				}
			}
			var empty, other int
			for _, s := range absent {
				p := m.Prove(s)
				if err := VerifyMap(root, s, nil, p); err != nil {
					t.Fatalf("absence of %q: %v", s, err)
				}
				if p.Other != nil {
					other++
				} else {
					empty++
				}
			}
			// Both endings of a proof of absence are exercised.
			if size >= 40 && (empty == 0 || other == 0) {
				t.Fatalf("absence proofs: %d end empty, %d at another leaf; want both", empty, other)
			}
			if size == 1 && (other != len(absent) || empty != 0) {
				t.Fatalf("in a one-subject map every absence ends at that subject's leaf: %d other, %d empty", other, empty)
			}
			if size == 0 && empty != len(absent) {
				t.Fatalf("in the empty map every absence ends empty")
			}
		})
	}
}

// tamperings returns proofs derived from p that must not verify.
func tamperings(p MapProof) map[string]MapProof {
	out := map[string]MapProof{}
	cp := func() MapProof {
		q := p
		q.Bitmap = append([]byte{}, p.Bitmap...)
		q.Siblings = append([]tlog.Hash{}, p.Siblings...)
		if p.Other != nil {
			o := *p.Other
			q.Other = &o
		}
		return q
	}
	for i := range p.Siblings {
		q := cp()
		q.Siblings[i][i%32] ^= 1
		out[fmt.Sprintf("sibling %d flipped", i)] = q
	}
	for d := 0; d < p.Depth; d++ {
		q := cp()
		q.Bitmap[d/8] ^= 0x80 >> (d % 8)
		out[fmt.Sprintf("bitmap bit %d flipped", d)] = q
	}
	for d := 0; d < p.Depth; d++ {
		// Flipping a bit and keeping the count of siblings right: a
		// sibling moved to another depth.
		if p.Bitmap[d/8]&(0x80>>(d%8)) != 0 {
			continue
		}
		for e := 0; e < p.Depth; e++ {
			if p.Bitmap[e/8]&(0x80>>(e%8)) != 0 {
				q := cp()
				q.Bitmap[d/8] ^= 0x80 >> (d % 8)
				q.Bitmap[e/8] ^= 0x80 >> (e % 8)
				out[fmt.Sprintf("sibling moved from depth %d to %d", e+1, d+1)] = q
				break
			}
		}
	}
	for _, delta := range []int{-1, 1, 8} {
		q := cp()
		q.Depth += delta
		out[fmt.Sprintf("depth %+d", delta)] = q
		q = cp()
		q.Depth += delta
		if q.Depth >= 0 {
			q.Bitmap = append(q.Bitmap, make([]byte, 2)...)[:(q.Depth+7)/8]
			if r := q.Depth % 8; r != 0 {
				q.Bitmap[len(q.Bitmap)-1] &^= 0xff >> r
			}
		}
		out[fmt.Sprintf("depth %+d with its bitmap resized", delta)] = q
	}
	q := cp()
	q.Siblings = append(q.Siblings, tlog.Hash{1})
	out["a sibling added"] = q
	if len(p.Siblings) > 0 {
		q := cp()
		q.Siblings = q.Siblings[1:]
		out["a sibling removed"] = q
	}
	if p.Depth%8 != 0 {
		q := cp()
		q.Bitmap[len(q.Bitmap)-1] |= 1
		q.Siblings = append(q.Siblings, tlog.Hash{1})
		out["a bit set past the depth"] = q
	}
	if p.Other != nil {
		q := cp()
		q.Other.Value.Count++
		out["other leaf's count changed"] = q
		q = cp()
		q.Other.Value.Chain[0] ^= 1
		out["other leaf's chain changed"] = q
		q = cp()
		q.Other.Key[31] ^= 1
		out["other leaf's key changed"] = q
		q = cp()
		q.Other = nil
		out["other leaf dropped"] = q
	} else {
		q := cp()
		q.Other = &MapLeaf{Key: sha256.Sum256([]byte("not in the map")), Value: Value{Count: 1}}
		out["other leaf made up"] = q
	}
	return out
}

func TestMapProofTamperingRefused(t *testing.T) {
	m, n, present, absent := built(t, 300)
	root := m.Root()

	check := func(t *testing.T, name string, subject string, v *Value, p MapProof, says ...string) {
		t.Helper()
		err := VerifyMap(root, subject, v, p)
		if err == nil {
			t.Fatalf("%s: verified", name)
		}
		for _, w := range says {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: error %q does not say %q", name, err, w)
			}
		}
		if !errors.Is(err, ErrMapProof) || !strings.Contains(err.Error(), fmt.Sprintf("%q", subject)) {
			t.Fatalf("%s: error %q does not wrap ErrMapProof and name the subject", name, err)
		}
	}

	// Inclusion.
	for _, s := range present[:40] {
		v := n.value(s)
		p := m.Prove(s)
		for name, q := range tamperings(p) {
			check(t, name, s, &v, q)
		}
		wrongCount := Value{Count: v.Count + 1, Chain: v.Chain}
		check(t, "wrong count", s, &wrongCount, p)
		wrongChain := v
		wrongChain.Chain[7] ^= 0x10
		check(t, "wrong chain", s, &wrongChain, p)
		check(t, "absence claimed for a present subject", s, nil, p)
		check(t, "zero files", s, &Value{}, p, "0 files is absence")

		// A file left out: the value over k-1 of the k files, and
		// over the last k-1 (the first one omitted).
		files := n.files[s]
		if len(files) >= 2 {
			for skip := range files {
				var short Value
				for i, f := range files {
					if i != skip {
						short = short.Extend(f.index, f.leaf)
					}
				}
				check(t, fmt.Sprintf("file %d of %d omitted", skip, len(files)), s, &short, p)
			}
		}
		// The subject's proof, checked for another subject with this
		// subject's value; and another subject's value with this proof.
		for _, o := range present[40:45] {
			check(t, "proof and value checked for another subject", o, &v, p)
			ov := n.value(o)
			check(t, "another subject's value", s, &ov, p)
			check(t, "another subject's proof", s, &v, m.Prove(o))
		}
		// Absence forged for a present subject: a proof ending at its
		// own leaf as "another" leaf, and one ending at an empty subtree.
		q := p
		q.Other = &MapLeaf{Key: SubjectKey(s), Value: v}
		check(t, "absence by its own leaf", s, nil, q, "own leaf")
	}

	// Absence.
	var sawOther, sawEmpty bool
	for _, s := range absent[:80] {
		p := m.Prove(s)
		if p.Other != nil {
			sawOther = true
		} else {
			sawEmpty = true
		}
		for name, q := range tamperings(p) {
			check(t, name, s, nil, q)
		}
		check(t, "presence claimed for an absent subject", s, &Value{Count: 1}, p)
		// A present subject's absence proved with an absent one's proof.
		for _, o := range present[:5] {
			check(t, "another subject's absence proof", o, nil, p)
		}
		if p.Other != nil {
			// The other leaf must share the path's bits.
			q := p
			q.Other = &MapLeaf{Key: SubjectKey(present[0]), Value: n.value(present[0])}
			if firstDiff(&q.Other.Key, &p.Other.Key) < p.Depth {
				check(t, "another leaf off the path", s, nil, q, "leaves the path")
			}
		}
	}
	if !sawOther || !sawEmpty {
		t.Fatalf("absence proofs seen: other %v, empty %v; want both", sawOther, sawEmpty)
	}

	// A proof from before the subject was added does not prove its
	// absence now, nor does today's proof hold against yesterday's root.
	before := m.Clone()
	s := absent[100]
	old := before.Prove(s)
	m.Add(s, m.Last()+1, leafOf(m.Last()+1))
	if err := VerifyMap(m.Root(), s, nil, old); !errors.Is(err, ErrMapProof) {
		t.Fatalf("absence proof from an older root: %v", err)
	}
	v, _, _ := m.Get(s)
	if err := VerifyMap(before.Root(), s, &v, m.Prove(s)); err == nil {
		t.Fatalf("inclusion verified against the root before the subject was added")
	}
	// A proof with depth 257.
	bad := m.Prove(present[0])
	bad.Depth = 257
	bad.Bitmap = make([]byte, 33)
	pv := n.value(present[0])
	check(t, "depth 257", present[0], &pv, bad)
	bad.Depth = -1
	check(t, "depth -1", present[0], &pv, bad)
}

func TestMapProofEmptySiblingRefused(t *testing.T) {
	// A present but empty sibling is not the canonical form: refused
	// even though it would hash the same.
	m, n, present, _ := built(t, 50)
	for _, s := range present {
		if tryEmptySibling(t, m, s, n.value(s)) {
			return
		}
	}
	t.Fatalf("no present subject has an empty sibling on its path")
}

func tryEmptySibling(t *testing.T, m *Map, s string, v Value) bool {
	p := m.Prove(s)
	for d := 0; d < p.Depth; d++ {
		if p.Bitmap[d/8]&(0x80>>(d%8)) == 0 {
			// Insert the empty hash at d's place in deepest-first order.
			before := 0
			for e := d + 1; e < p.Depth; e++ {
				if p.Bitmap[e/8]&(0x80>>(e%8)) != 0 {
					before++
				}
			}
			q := p
			q.Bitmap = append([]byte{}, p.Bitmap...)
			q.Bitmap[d/8] |= 0x80 >> (d % 8)
			q.Siblings = append(append(append([]tlog.Hash{}, p.Siblings[:before]...), tlog.Hash{}), p.Siblings[before:]...)
			err := VerifyMap(m.Root(), s, &v, q)
			if err == nil || !strings.Contains(err.Error(), "empty hash") {
				t.Fatalf("empty sibling at depth %d: %v", d+1, err)
			}
			return true
		}
	}
	return false
}

func TestMapClone(t *testing.T) {
	m, n, present, absent := built(t, 200)
	rootBefore := m.Root()
	c := m.Clone()
	cn := n.clone()

	// Changes to the clone, existing and new subjects, leave m alone.
	next := m.Last() + 1
	for i, s := range append(append([]string{}, present[:20]...), absent[:20]...) {
		c.Add(s, next+int64(i), leafOf(next+int64(i)))
		cn.add(s, next+int64(i), leafOf(next+int64(i)))
	}
	if got := c.Root(); got != cn.root() {
		t.Fatalf("clone's root after adds = %x, naive %x", got, cn.root())
	}
	if got := m.Root(); got != rootBefore {
		t.Fatalf("original's root moved when its clone changed: %x, was %x", got, rootBefore)
	}
	if m.Len() != 200 || c.Len() != 220 {
		t.Fatalf("Len: original %d, clone %d", m.Len(), c.Len())
	}
	if _, list, _ := m.Get(present[0]); len(list) != len(n.files[present[0]]) {
		t.Fatalf("original's index list changed with its clone: %v", list)
	}
	if _, _, ok := m.Get(absent[0]); ok {
		t.Fatalf("a subject added to the clone is in the original")
	}

	// And changes to m leave the clone alone.
	cloneRoot := c.Root()
	for i, s := range present[10:40] {
		m.Add(s, next+int64(i), leafOf(next+int64(i)))
		n.add(s, next+int64(i), leafOf(next+int64(i)))
	}
	if m.Root() != n.root() {
		t.Fatalf("original's root after adds differs from the naive one")
	}
	if c.Root() != cloneRoot {
		t.Fatalf("clone's root moved when the original changed")
	}
	// Both changed present[10:20]'s lists, shared at the clone.
	for _, s := range present[:40] {
		for _, x := range []struct {
			m *Map
			n *naiveMap
		}{{m, n}, {c, cn}} {
			_, list, _ := x.m.Get(s)
			var want []int64
			for _, f := range x.n.files[s] {
				want = append(want, f.index)
			}
			if !reflect.DeepEqual(list, want) {
				t.Fatalf("%q's leaf indices are %v, want %v", s, list, want)
			}
		}
	}
	for _, s := range present[:40] {
		v := cn.value(s)
		if err := VerifyMap(c.Root(), s, &v, c.Prove(s)); err != nil {
			t.Fatalf("clone's proof of %q: %v", s, err)
		}
		v = n.value(s)
		if err := VerifyMap(m.Root(), s, &v, m.Prove(s)); err != nil {
			t.Fatalf("original's proof of %q: %v", s, err)
		}
	}
}

func TestMapProofJSON(t *testing.T) {
	m, _, present, absent := built(t, 100)
	var sawOther bool
	for _, s := range append(append([]string{}, present[:20]...), absent[:40]...) {
		p := m.Prove(s)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q MapProof
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatalf("decoding %s: %v", b, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the proof:\n%+v\n%+v", p, q)
		}
		b2, _ := json.Marshal(q)
		if !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs:\n%s\n%s", b, b2)
		}
		// The spec's field names and nothing else.
		var fields map[string]json.RawMessage
		json.Unmarshal(b, &fields)
		var names []string
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		want := "bitmap depth siblings"
		if p.Other != nil {
			want = "bitmap depth other siblings"
			sawOther = true
			var o map[string]json.RawMessage
			json.Unmarshal(fields["other"], &o)
			if len(o) != 3 || o["key"] == nil || o["count"] == nil || o["chain"] == nil {
				t.Fatalf("other is %s, want key, count, chain", fields["other"])
			}
		}
		if strings.Join(names, " ") != want {
			t.Fatalf("fields %v, want %s", names, want)
		}
	}
	if !sawOther {
		t.Fatalf("no proof ended at another leaf")
	}

	// The empty map's proof: depth 0, an empty bitmap and no siblings.
	b, _ := json.Marshal(NewMap().Prove("x"))
	if string(b) != `{"depth":0,"bitmap":"","siblings":[]}` {
		t.Fatalf("empty map's proof is %s", b)
	}
	// A fixed proof, written by hand from the spec.
	key := bytes.Repeat([]byte{0xab}, 32)
	chain := bytes.Repeat([]byte{0xcd}, 32)
	sib := bytes.Repeat([]byte{0xef}, 32)
	enc := func(b []byte) string { x, _ := json.Marshal(b); return string(x) }
	text := `{"depth":3,"bitmap":"oA==","siblings":[` + enc(sib) + `,` + enc(sib) + `],"other":{"key":` + enc(key) + `,"count":7,"chain":` + enc(chain) + `}}`
	var p MapProof
	if err := json.Unmarshal([]byte(text), &p); err != nil {
		t.Fatal(err)
	}
	if p.Depth != 3 || !bytes.Equal(p.Bitmap, []byte{0xa0}) || len(p.Siblings) != 2 || p.Siblings[1][0] != 0xef ||
		p.Other == nil || p.Other.Key[0] != 0xab || p.Other.Value.Count != 7 || p.Other.Value.Chain[31] != 0xcd {
		t.Fatalf("decoded %+v", p)
	}
	if b, _ := json.Marshal(p); string(b) != text {
		t.Fatalf("re-encoded as %s, want %s", b, text)
	}
}

func TestMapProofJSONRefused(t *testing.T) {
	h := func(n int) string { x, _ := json.Marshal(bytes.Repeat([]byte{1}, n)); return string(x) }
	for name, text := range map[string]string{
		"depth 257":         `{"depth":257,"bitmap":"","siblings":[]}`,
		"depth -1":          `{"depth":-1,"bitmap":"","siblings":[]}`,
		"short sibling":     `{"depth":1,"bitmap":"gA==","siblings":[` + h(31) + `]}`,
		"long sibling":      `{"depth":1,"bitmap":"gA==","siblings":[` + h(33) + `]}`,
		"short other key":   `{"depth":0,"bitmap":"","siblings":[],"other":{"key":` + h(31) + `,"count":1,"chain":` + h(32) + `}}`,
		"short other chain": `{"depth":0,"bitmap":"","siblings":[],"other":{"key":` + h(32) + `,"count":1,"chain":` + h(2) + `}}`,
		"bad base64":        `{"depth":1,"bitmap":"!!","siblings":[]}`,
		"not an object":     `[1,2]`,
	} {
		var p MapProof
		if err := json.Unmarshal([]byte(text), &p); err == nil {
			t.Errorf("%s: decoded %+v", name, p)
		}
	}
}

// FuzzMapProof decodes a proof and checks it against a small map: a proof
// that verifies must tell the truth about the map.
func FuzzMapProof(f *testing.F) {
	m, n, present, absent := built(f, 30)
	root := m.Root()
	for _, s := range append(append([]string{}, present[:5]...), absent[:10]...) {
		b, _ := json.Marshal(m.Prove(s))
		v := n.value(s)
		f.Add(b, s, v.Count, v.Chain[:], v.Count == 0)
	}
	f.Add([]byte(`{"depth":0,"bitmap":"","siblings":[]}`), "x", uint64(0), []byte{}, true)
	f.Fuzz(func(t *testing.T, data []byte, subject string, count uint64, chain []byte, absence bool) {
		var p MapProof
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		var v *Value
		if !absence {
			v = &Value{Count: count}
			copy(v.Chain[:], chain)
		}
		if err := VerifyMap(root, subject, v, p); err != nil {
			if !errors.Is(err, ErrMapProof) {
				t.Fatalf("error %v is not ErrMapProof", err)
			}
			return
		}
		got, _, ok := m.Get(subject)
		if absence && ok {
			t.Fatalf("absence of %q verified, but the map holds it", subject)
		}
		if !absence && (!ok || got != *v || got != n.value(subject)) {
			t.Fatalf("value %+v of %q verified, the map holds %+v (%v)", *v, subject, got, ok)
		}
	})
}
