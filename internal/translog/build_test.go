package translog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestBuilderMatchesMap gives a builder and a Map the same Adds, several
// subjects at one index as a key's file is, and compares their roots with
// the spec's (naiveMap) along the way, then the snapshots they write: the
// same bytes, which a Store reads back as the same map.
func TestBuilderMatchesMap(t *testing.T) {
	for _, size := range []int{0, 1, 2, 3, 5, 17, 100, 600, 5000} {
		for seed := uint64(0); seed < 3; seed++ {
			t.Run(fmt.Sprintf("subjects=%d/seed=%d", size, seed), func(t *testing.T) {
				switch seed {
				case 1:
					// The nodes on the heap, as where no file can be
					// mapped.
					defer func(v bool) { mapNodes = v }(mapNodes)
					mapNodes = false
				case 2:
					// Subjects read back a few files at a time, some
					// with more files than a pass.
					defer func(n uint64) { passFiles = n }(passFiles)
					passFiles = 5
				}
				rng := rand.New(rand.NewPCG(seed, uint64(size)))
				subjects := pool(size + 8)[:size]
				dirB, dirM := t.TempDir(), t.TempDir()
				b, m, naive := newBuilder(dirB), NewMap(), newNaive()
				if got := b.Root(); got != (tlog.Hash{}) {
					t.Fatalf("empty builder's root = %x, want zero", got)
				}
				index := int64(rng.IntN(3))
				var s string
				for i := 0; i < 3*size; i++ {
					if i == 0 || rng.IntN(3) != 0 {
						s = subjects[rng.IntN(size)]
					}
					b.Add(s, index, leafOf(index))
					m.Add(s, index, leafOf(index))
					naive.add(s, index, leafOf(index))
					if rng.IntN(4) == 0 {
						// A second subject for the same file.
						o := subjects[rng.IntN(size)]
						if o != s {
							b.Add(o, index, leafOf(index))
							m.Add(o, index, leafOf(index))
							naive.add(o, index, leafOf(index))
						}
					}
					if rng.IntN(size/8+2) == 0 || i == 3*size-1 {
						got, want := b.Root(), m.Root()
						if got != want {
							t.Fatalf("after %d adds: builder's root %x, Map's %x", i+1, got, want)
						}
						if size <= 600 && got != naive.root() {
							t.Fatalf("after %d adds: builder's root %x, the spec's %x", i+1, got, naive.root())
						}
					}
					index += 1 + int64(rng.IntN(3))
				}
				if b.Len() != m.Len() {
					t.Errorf("builder holds %d subjects, the Map %d", b.Len(), m.Len())
				}
				sameSnapshot(t, b, m, dirB, dirM)
				b.close()
				if left, _ := filepath.Glob(filepath.Join(dirB, ".tmp-*")); len(left) > 0 {
					t.Errorf("temporary files left beside the snapshot: %v", left)
				}
			})
		}
	}
}

// TestBuilderAddRefuses: the same refusals as Map.Add.
func TestBuilderAddRefuses(t *testing.T) {
	for name, f := range map[string]func(b *builder){
		"index goes back":  func(b *builder) { b.Add("a", 5, leafOf(5)); b.Add("b", 4, leafOf(4)) },
		"negative":         func(b *builder) { b.Add("a", -1, leafOf(0)) },
		"same file twice":  func(b *builder) { b.Add("a", 5, leafOf(5)); b.Add("a", 5, leafOf(5)) },
		"same file, apart": func(b *builder) { b.Add("a", 5, leafOf(5)); b.Add("b", 5, leafOf(5)); b.Add("a", 5, leafOf(5)) },
		"same file, new map": func(b *builder) {
			b.Add("a", 5, leafOf(5))
			b.Root()
			b.Add("b", 5, leafOf(5))
			b.Add("a", 5, leafOf(5))
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			f(newBuilder(t.TempDir()))
		})
	}
}

// A log built in one batch from its first leaf (a builder, then the
// snapshot) has the map of one built in batches (a builder, then a Map
// read lazily from that snapshot and grown): the same root, subjects and
// files, in this process and in the next.
func TestStoreBuilderMapSameAsGrown(t *testing.T) {
	defer func(n int64) { snapshotEvery = n }(snapshotEvery)
	snapshotEvery = 30
	const n = 200
	dirA := t.TempDir()
	a, err := OpenStore(dirA, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { a.Close() }()
	if err := a.Begin(""); err != nil {
		t.Fatal(err)
	}
	var last string
	for c := int64(0); c < n; c++ {
		commit, tm, es := commitOf(c)
		if _, err := a.AppendCommit(commit, tm, es); err != nil {
			t.Fatal(err)
		}
		last = commit
	}
	if a.Unscanned()+a.build.mapped() <= 0 {
		t.Errorf("Unscanned() = %d and %d bytes mapped during a batch from the first leaf, want its builder's bytes in one of them", a.Unscanned(), a.build.mapped())
	}
	if err := a.Commit(last); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dirA, ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left after the commit: %v", left)
	}
	if a.Unscanned() != 0 {
		t.Errorf("Unscanned() = %d after the commit, want 0", a.Unscanned())
	}
	if _, err := os.Stat(filepath.Join(dirA, snapshotFile)); err != nil {
		t.Fatalf("no map snapshot after a batch from the first leaf: %v", err)
	}
	b := buildStore(t, t.TempDir(), n)
	same := func(what string, a *Store) {
		t.Helper()
		ma, err := a.Map()
		if err != nil {
			t.Fatal(err)
		}
		mb, err := b.Map()
		if err != nil {
			t.Fatal(err)
		}
		if ma.Size != mb.Size || ma.Root != mb.Root || ma.Map.Root() != mb.Map.Root() || ma.Map.Len() != mb.Map.Len() {
			t.Fatalf("%s: size %d, log root %v, map root %v, %d subjects; built in batches: %d, %v, %v, %d", what, ma.Size, ma.Root, ma.Map.Root(), ma.Map.Len(), mb.Size, mb.Root, mb.Map.Root(), mb.Map.Len())
		}
		for i := int64(0); i < 3*n; i++ {
			for _, s := range testSubjects(testEntry(i).Path) {
				va, la, oka := ma.Map.Get(s)
				vb, lb, okb := mb.Map.Get(s)
				if va != vb || oka != okb || fmt.Sprint(la) != fmt.Sprint(lb) {
					t.Fatalf("%s: subject %q: %v %v %v; built in batches: %v %v %v", what, s, va, la, oka, vb, lb, okb)
				}
			}
		}
	}
	same("in the process that built it", a)
	a.Close()
	if a, err = OpenStore(dirA, testSubjects); err != nil {
		t.Fatal(err)
	}
	same("opened again", a)
}

// A replay that stops before its commit (a crash, an interrupt) leaves
// the log as it was committed, and a snapshot being written when the
// process died (its temporary file) is removed when the log is opened
// next: nothing half-written is read or kept.
func TestStoreBuilderCrash(t *testing.T) {
	dir := t.TempDir()
	s := buildStore(t, dir, 10)
	size, root := s.Size(), s.Root()
	if err := s.BeginRecompute(); err != nil {
		t.Fatal(err)
	}
	for c := int64(0); c < 30; c++ {
		commit, tm, es := commitOf(c)
		if _, err := s.AppendCommit(commit, tm, es); err != nil {
			t.Fatal(err)
		}
	}
	spilled, _ := filepath.Glob(filepath.Join(dir, ".tmp-"+filesFile+"-*"))
	if len(spilled) != 1 {
		t.Fatalf("during a recomputation: %v, want the builder's one file of files", spilled)
	}
	s.Close() // no Commit
	if _, err := os.Stat(spilled[0]); err == nil {
		t.Errorf("%s left after Close", spilled[0])
	}
	// What a process that died would have left.
	stray := filepath.Join(dir, ".tmp-"+snapshotFile+"-12345")
	if err := os.WriteFile(stray, []byte("cairn map snapshot v3\nhalf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spilled[0], make([]byte, 5*filesRecord), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Size() != size || s.Root() != root {
		t.Fatalf("after a replay that did not commit: size %d root %v, want %d %v", s.Size(), s.Root(), size, root)
	}
	for _, p := range []string{stray, spilled[0]} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was left beside the log", p)
		}
	}
	if _, err := s.Map(); err != nil {
		t.Fatal(err)
	}
}

// A builder's nodes are mapped from a file of the log's directory where
// the system allows it, not held on the heap: the live heap does not
// grow with the map, while the same subjects built on the heap grow it
// by about their bytes. The file is gone at once (nothing left by a
// crash to clear), and Unscanned tells the collector nothing of it.
func TestBuilderNodesOffHeap(t *testing.T) {
	const n = 60_000
	subjects := pool(n)
	live := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	grows := func(mapped bool) (heap, inFile int64) {
		defer func(v bool) { mapNodes = v }(mapNodes)
		mapNodes = mapped
		dir := t.TempDir()
		b := newBuilder(dir)
		defer b.close()
		before := live()
		for i, s := range subjects {
			b.Add(s, int64(i), leafOf(int64(i)))
		}
		b.Root()
		heap = live() - before
		if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-"+nodesFile+"-*")); len(left) > 0 {
			t.Errorf("the nodes' file is left in the log's directory: %v", left)
		}
		if b.bytes() > 0 && b.mapped() > 0 {
			t.Errorf("%d bytes on the heap and %d mapped: one or the other", b.bytes(), b.mapped())
		}
		return heap, b.mapped()
	}
	onHeap, _ := grows(false)
	// About 116 bytes a subject on the heap.
	if onHeap < n*100 {
		t.Fatalf("%d subjects built on the heap grew it by %d bytes: the measure does not see them", n, onHeap)
	}
	if runtime.GOOS != "linux" {
		return
	}
	heap, inFile := grows(true)
	if inFile < n*100 {
		t.Errorf("%d subjects mapped only %d bytes of file", n, inFile)
	}
	if heap > onHeap/10 {
		t.Errorf("%d subjects with mapped nodes grew the heap by %d bytes (%d on the heap): the nodes are the heap's", n, heap, onHeap)
	}
}

// Where the nodes' file cannot be made (here: the log's directory is
// gone), the builder keeps its nodes on the heap and computes the same
// roots.
func TestBuilderNodesWithoutFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	b, m := newBuilder(dir), NewMap()
	defer b.close()
	for i, s := range pool(5000) {
		b.Add(s, int64(i), leafOf(int64(i)))
		m.Add(s, int64(i), leafOf(int64(i)))
	}
	if got, want := b.Root(), m.Root(); got != want {
		t.Fatalf("builder's root %x, Map's %x", got, want)
	}
	if b.mapped() != 0 || b.bytes() == 0 {
		t.Errorf("%d bytes mapped, %d on the heap: want them all on the heap", b.mapped(), b.bytes())
	}
}
