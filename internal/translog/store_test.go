package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testSubject gives the test entries' paths a subject: their package.
func testSubject(path string) (string, bool) {
	parts := strings.Split(path, "/")
	if len(parts) < 7 || parts[0] != "packages" {
		return "", false
	}
	return "package " + parts[5] + "/" + parts[6], true
}

// testSubjects gives the test entries' paths their subjects: their
// package, and "all" for every tenth leaf's, as "keys" holds every key's
// files beside each key's own subject.
func testSubjects(path string) []string {
	s, ok := testSubject(path)
	if !ok {
		return nil
	}
	if strings.HasSuffix(path, "0/descriptor.json") {
		return []string{s, "all"}
	}
	return []string{s}
}

// handMap is the reference: the map built leaf by leaf from the entries.
func handMap(n int64) *Map {
	m := NewMap()
	for i := int64(0); i < n; i++ {
		e := testEntry(i)
		for _, s := range testSubjects(e.Path) {
			m.Add(s, i, LeafHash(e.Text()))
		}
	}
	return m
}

func TestStoreMapFollowsLog(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	empty, err := s.Map()
	if err != nil || empty.Size != 0 || empty.Map.Root() != NewMap().Root() {
		t.Fatalf("empty store's map: %+v, %v", empty, err)
	}
	grow(t, s.Log, 0, 1000, "a")
	at, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	if at.Size != 1000 || at.Root != s.Root() || at.Map.Root() != handMap(1000).Root() {
		t.Fatalf("map at 1000: size %d, root %v, want the hand-built %v", at.Size, at.Map.Root(), handMap(1000).Root())
	}
	// Staged leaves are not in it; committed ones are, and the map read
	// before stays what it was.
	for i := int64(1000); i < 1300; i++ {
		s.Append(testEntry(i))
	}
	if again, _ := s.Map(); again.Map != at.Map {
		t.Fatal("the map changed with staged leaves")
	}
	if err := s.Commit("b"); err != nil {
		t.Fatal(err)
	}
	later, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	if later.Size != 1300 || later.Map.Root() != handMap(1300).Root() {
		t.Fatal("the map did not follow the log")
	}
	if at.Map.Root() != handMap(1000).Root() {
		t.Fatal("the map read earlier changed")
	}
	// A subject's proof checks against the root, and gives its files.
	subject := "package acme/p150"
	v, idx, ok := later.Map.Get(subject)
	if !ok || len(idx) != 7 || idx[0] != 1050 {
		t.Fatalf("Get(%s) = %v %v %v", subject, v, idx, ok)
	}
	if err := VerifyMap(later.Map.Root(), subject, &v, later.Map.Prove(subject)); err != nil {
		t.Fatal(err)
	}

	// Another process appends: the store's map follows once reloaded.
	other, err := OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	grow(t, other, 1300, 1400, "c")
	other.Close()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if at, _ := s.Map(); at.Size != 1400 || at.Map.Root() != handMap(1400).Root() {
		t.Fatalf("after another process appended: map at %d", at.Size)
	}
}

// A map is rebuilt, not extended, when the log under it is another one.
func TestStoreMapRebuilt(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	grow(t, s.Log, 0, 10, "a")
	s.Map()
	// Swap the log for one of other entries behind the store's back.
	s.Log.Close()
	other := t.TempDir()
	l, _ := OpenLog(other)
	for i := int64(100); i < 120; i++ {
		l.Append(testEntry(i))
	}
	l.Commit("x")
	l.Close()
	s.Log, _ = OpenLog(other)
	at, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := NewMap()
	for i := int64(0); i < 20; i++ {
		e := testEntry(100 + i)
		for _, sub := range testSubjects(e.Path) {
			want.Add(sub, i, LeafHash(e.Text()))
		}
	}
	if at.Map.Root() != want.Root() {
		t.Fatal("the map was extended over another log instead of rebuilt")
	}
}

// commitOf returns the test entries of commit c: testEntry's leaves
// i with i/3 == c, as testEntry numbers them (three files a commit).
func commitOf(c int64) (string, int64, []Entry) {
	var es []Entry
	for i := 3 * c; i < 3*c+3; i++ {
		es = append(es, testEntry(i))
	}
	return es[0].Commit, es[0].Time, es
}

func TestStoreAppendCommit(t *testing.T) {
	s, err := OpenStore(t.TempDir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Begin(""); err != nil {
		t.Fatal(err)
	}
	hand := NewMap()
	var want []string // the entries, as the log must hold them
	for c := int64(0); c < 50; c++ {
		commit, tm, es := commitOf(c)
		if c%10 == 9 {
			es = nil // a commit that adds no file gets a map leaf all the same
		}
		slices.Reverse(es) // AppendCommit sorts by path
		me, err := s.AppendCommit(commit, tm, es)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
		for _, e := range es {
			i := int64(len(want))
			for _, sub := range testSubjects(e.Path) {
				hand.Add(sub, i, LeafHash(e.Text()))
			}
			want = append(want, string(e.Text()))
		}
		if me.Root != hand.Root() || me.Commit != commit || me.Time != tm {
			t.Fatalf("commit %d: map leaf %+v, want root %v", c, me, hand.Root())
		}
		want = append(want, string(me.Text()))
	}
	if err := s.Commit(fmt.Sprintf("%040x", 49)); err != nil {
		t.Fatal(err)
	}
	if s.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", s.Size(), len(want))
	}
	var got []string
	s.Range(0, s.Size(), func(i int64, text []byte) error { got = append(got, string(text)); return nil })
	if !slices.Equal(got, want) {
		t.Fatalf("log entries differ from files-then-map-leaf per commit:\n%q\nwant\n%q", got[:8], want[:8])
	}
	at, err := s.Map()
	if err != nil || at.Size != s.Size() || at.Map.Root() != hand.Root() {
		t.Fatalf("map after commit: size %d root %v (%v), want %d %v", at.Size, at.Map.Root(), err, s.Size(), hand.Root())
	}
	last, size, ok, err := s.LastMap()
	if err != nil || !ok || size != s.Size() || last.Root != hand.Root() || last.Commit != fmt.Sprintf("%040x", 49) {
		t.Fatalf("LastMap = %+v %d %v %v", last, size, ok, err)
	}

	// A rolled-back batch leaves log and map as committed.
	committed := hand.Root()
	if err := s.Begin(fmt.Sprintf("%040x", 49)); err != nil {
		t.Fatal(err)
	}
	commit, tm, es := commitOf(50)
	if _, err := s.AppendCommit(commit, tm, es); err != nil {
		t.Fatal(err)
	}
	s.Rollback()
	if at, err := s.Map(); err != nil || at.Size != int64(len(want)) || at.Map.Root() != committed {
		t.Fatalf("map after rollback: size %d root %v, want %d %v", at.Size, at.Map.Root(), len(want), committed)
	}
	// The next batch starts from the committed map, not the dropped one.
	if _, err := s.AppendCommit(commit, tm, es); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(commit); err != nil {
		t.Fatal(err)
	}

	// A Store opened afresh rebuilds the same map from the entries, and
	// one that adopts it needs no rebuild.
	again, err := OpenStore(s.Dir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	a, err := again.Map()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Map()
	if a.Map.Root() != b.Map.Root() || a.Size != b.Size {
		t.Fatalf("rebuilt map %v at %d, want %v at %d", a.Map.Root(), a.Size, b.Map.Root(), b.Size)
	}
	third, err := OpenStore(s.Dir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if !third.AdoptMap(s) {
		t.Fatal("AdoptMap of the same log refused")
	}
	if c, _ := third.Map(); c.Map != b.Map {
		t.Fatal("AdoptMap did not take the map")
	}
}

// Leaves made ahead (NewLeaf, as a replay's workers make them, on many
// goroutines) give the log and map that AppendCommit gives; an entry
// NewLeaf refuses, a Leaf it did not make, and one of another commit
// are refused.
func TestStoreAppendLeaves(t *testing.T) {
	byCommit, err := OpenStore(t.TempDir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer byCommit.Close()
	byLeaves, err := OpenStore(t.TempDir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer byLeaves.Close()
	for c := int64(0); c < 40; c++ {
		commit, tm, es := commitOf(c)
		leaves := make([]Leaf, len(es))
		var wg sync.WaitGroup
		for i, e := range es {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := NewLeaf(e, testSubjects(e.Path))
				if err != nil {
					t.Error(err)
				}
				if l.Hash() != LeafHash(e.Text()) {
					t.Errorf("leaf hash of %s: %v, want %v", e.Path, l.Hash(), LeafHash(e.Text()))
				}
				leaves[i] = l
			}()
		}
		wg.Wait()
		slices.Reverse(leaves) // AppendLeaves sorts by path
		a, err := byCommit.AppendCommit(commit, tm, slices.Clone(es))
		if err != nil {
			t.Fatal(err)
		}
		b, err := byLeaves.AppendLeaves(commit, tm, leaves)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("commit %d: map leaf %+v by AppendLeaves, %+v by AppendCommit", c, b, a)
		}
	}
	for _, s := range []*Store{byCommit, byLeaves} {
		if err := s.Commit(fmt.Sprintf("%040x", 39)); err != nil {
			t.Fatal(err)
		}
	}
	if byCommit.Size() != byLeaves.Size() || byCommit.Root() != byLeaves.Root() {
		t.Fatalf("AppendLeaves: %d leaves, root %v; AppendCommit: %d, %v", byLeaves.Size(), byLeaves.Root(), byCommit.Size(), byCommit.Root())
	}

	bad := testEntry(1000)
	bad.Path = "packages/a b"
	if _, err := NewLeaf(bad, nil); !errors.Is(err, ErrEntry) {
		t.Errorf("NewLeaf of a path with a space: %v, want ErrEntry", err)
	}
	commit, tm, es := commitOf(40)
	if _, err := byLeaves.AppendLeaves(commit, tm, []Leaf{{Entry: es[0]}}); !errors.Is(err, ErrEntry) {
		t.Errorf("AppendLeaves of a Leaf NewLeaf did not make: %v, want ErrEntry", err)
	}
	byLeaves.Rollback()
	other, _, _ := commitOf(41)
	l, err := NewLeaf(es[0], testSubjects(es[0].Path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := byLeaves.AppendLeaves(other, tm, []Leaf{l}); !errors.Is(err, ErrEntry) {
		t.Errorf("AppendLeaves of another commit's leaf: %v, want ErrEntry", err)
	}
	byLeaves.Rollback()
}

// A log whose map leaf disagrees with the files before it is corrupt: its
// map is not rebuilt from it.
func TestStoreWrongMapLeaf(t *testing.T) {
	s, err := OpenStore(t.TempDir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commit, tm, es := commitOf(0)
	if _, err := s.AppendCommit(commit, tm, es); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(commit); err != nil {
		t.Fatal(err)
	}
	// The next commit's files, then a map leaf with another root (one
	// that leaves the files out), with the bare log's Append path.
	commit, tm, es = commitOf(1)
	before, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if _, _, err := s.Log.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Log.appendLeaf(MapEntry{Commit: commit, Time: tm, Root: before.Map.Root()}.leaf()); err != nil {
		t.Fatal(err)
	}
	if err := s.Log.Commit(commit); err != nil {
		t.Fatal(err)
	}
	fresh, err := OpenStore(s.Dir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := fresh.Map(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "map leaf 7") {
		t.Fatalf("Map of a log with a wrong map leaf = %v, want ErrCorrupt naming leaf 7", err)
	}
	// The Store that followed it too (it extends its map from the entries).
	if _, err := s.Map(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Map extended over a wrong map leaf = %v, want ErrCorrupt", err)
	}
}

// Leaves appended without the map cannot be closed by a map leaf.
func TestStoreAppendCommitAfterBareAppend(t *testing.T) {
	s, err := OpenStore(t.TempDir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Append(testEntry(0)); err != nil {
		t.Fatal(err)
	}
	commit, tm, es := commitOf(0)
	if _, err := s.AppendCommit(commit, tm, es[1:]); err == nil {
		t.Fatal("AppendCommit after a bare Append accepted")
	}
	s.Rollback()
}

// A Store keeps a snapshot of its map beside the log once it grew enough;
// a Store opened afresh starts from it (reading only the entries after
// it) and gets the same map; a snapshot that is not of the log is ignored.
func TestStoreMapSnapshot(t *testing.T) {
	defer func(n int64) { snapshotEvery = n }(snapshotEvery)
	snapshotEvery = 30
	s, err := OpenStore(t.TempDir(), testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendCommits := func(from, to int64) {
		t.Helper()
		for c := from; c < to; c++ {
			commit, tm, es := commitOf(c)
			if _, err := s.AppendCommit(commit, tm, es); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(commit); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendCommits(0, 20) // 80 leaves: a snapshot at 32 (the first commit past 30), 64
	snap := filepath.Join(s.Dir(), snapshotFile)
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatalf("no snapshot: %v", err)
	}
	src := &snapSource{path: snap, log: s.Log, subjectsOf: testSubjects}
	_, err = openSnapshot(snap, src)
	if n := src.size; err != nil || n != 64 {
		t.Fatalf("snapshot at %d (%v), want 64", n, err)
	}
	want, _ := s.Map()

	fresh := func() (*Store, MapAt) {
		t.Helper()
		o, err := OpenStore(s.Dir(), testSubjects)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		at, err := o.Map()
		if err != nil {
			t.Fatal(err)
		}
		if at.Size != want.Size || at.Map.Root() != want.Map.Root() || at.Map.Len() != want.Map.Len() || at.Map.Last() != want.Map.Last() {
			t.Fatalf("fresh map: size %d root %v, want %d %v", at.Size, at.Map.Root(), want.Size, want.Map.Root())
		}
		for p := 0; p <= 12; p++ {
			sub := fmt.Sprintf("package acme/p%d", p)
			if p == 12 {
				sub = "all"
			}
			v1, i1, _ := at.Map.Get(sub)
			v2, i2, _ := want.Map.Get(sub)
			if v1 != v2 || !slices.Equal(i1, i2) {
				t.Fatalf("%s: %v %v, want %v %v", sub, v1, i1, v2, i2)
			}
		}
		return o, at
	}
	if o, _ := fresh(); o.snapSize.Load() != 64 {
		t.Fatalf("a fresh Store started from %d, want the snapshot at 64", o.snapSize.Load())
	}
	// A fresh Store appends from the snapshot's map like any other.
	o, _ := fresh()
	commit, tm, es := commitOf(20)
	if _, err := o.AppendCommit(commit, tm, es); err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(commit); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	appendCommits(21, 22)
	want, _ = s.Map()
	// A snapshot of another log of this size, or garbage, is ignored.
	other, err := OpenStore(t.TempDir(), func(string) []string { return []string{"x"} })
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for c := int64(0); c < 16; c++ {
		commit, tm, es := commitOf(c)
		other.AppendCommit(commit, tm, es)
		other.Commit(commit)
	}
	otherSnap, err := os.ReadFile(filepath.Join(other.Dir(), snapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot whose header is damaged, or of another log, is ignored:
	// the map is rebuilt from the log.
	data, err = os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	src = &snapSource{path: snap, log: s.Log, subjectsOf: testSubjects}
	_, err = openSnapshot(snap, src)
	n := src.size
	if err != nil || n != 64 {
		t.Fatalf("snapshot at %d (%v), want 64", n, err)
	}
	bits := int(data[snapHeader-1])
	table := snapHeader
	first := snapHeader + (1<<bits)*bucketEntry + sha256.Size // the first bucket's first subject
	seal := func(b []byte) []byte {
		sum := sha256.Sum256(b[:first-sha256.Size])
		copy(b[first-sha256.Size:], sum[:])
		return b
	}
	headerCases := map[string][]byte{
		"other log's": otherSnap, "garbage": []byte("cairn map snapshot v3\nxx"), "truncated": data[:len(data)-5],
		"v2":                      append([]byte("cairn map snapshot v2\n"), data[len(snapshotMagic):]...),
		"header digest wrong":     func() []byte { b := slices.Clone(data); b[table+30] ^= 1; return b }(),
		"a bucket's hash changed": func() []byte { b := slices.Clone(data); b[table+24] ^= 1; return seal(b) }(),
	}
	for name, b := range headerCases {
		if err := os.WriteFile(snap, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if o, _ := fresh(); o.snapSize.Load() != 0 {
			t.Fatalf("%s snapshot used", name)
		}
	}
	// A bucket whose bytes are damaged (its digest not matching), or
	// whose subjects are not the ones its hash and the map root say (a
	// value changed, a subject out of key order, its indices not its
	// count, each sealed again so that the checks behind the digests are
	// the ones tried), is built again from the log's entries when first
	// read: the snapshot is used, the map is the log's.
	if bits != 0 {
		t.Fatalf("the test's snapshot has %d bucket bits, want one bucket", bits)
	}
	changed := func(at int, f func(b []byte)) []byte {
		b := slices.Clone(data)
		f(b[at:])
		d := sha256.Sum256(b[first:])
		copy(b[table+56:], d[:])
		return seal(b)
	}
	// Damage the digest catches alone: two index deltas swapped keep the
	// count, the last index and the map root.
	unsealed := slices.Clone(data)
	for at := first; at < len(data); {
		at += 32 + 8 + 32 + 8
		n, w := binary.Uvarint(data[at:])
		idx := data[at+w : at+w+int(n)]
		if n >= 2 && idx[0] < 0x80 && idx[1] < 0x80 && idx[0] != idx[1] {
			unsealed[at+w], unsealed[at+w+1] = idx[1], idx[0]
			break
		}
		at += w + int(n)
	}
	if bytes.Equal(unsealed, data) {
		t.Fatal("no subject with two distinct one-byte index deltas to swap")
	}
	second := first + 32 + 8 + 32 + 8 + 1 + int(data[first+32+8+32+8])
	bucketCases := map[string][]byte{
		"damaged, digest not matching": unsealed,
		"a chain changed":              changed(first+32+8, func(b []byte) { b[0] ^= 1 }),
		"a count changed":              changed(first+32, func(b []byte) { b[7]++ }),
		"a key changed":                changed(first, func(b []byte) { b[31] ^= 1 }),
		"keys out of order":            changed(first, func(b []byte) { copy(b[:32], data[second:second+32]) }),
		"an index changed":             changed(first+32+8+32+8+1, func(b []byte) { b[0]++ }),
	}
	for name, b := range bucketCases {
		if err := os.WriteFile(snap, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if o, _ := fresh(); o.snapSize.Load() != 64 {
			t.Fatalf("%s: the snapshot was not used (%d)", name, o.snapSize.Load())
		}
	}
}
