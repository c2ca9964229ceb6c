package translog

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// logMap is the reference: the map built from every file entry of the
// store's committed log, leaf by leaf.
func logMap(t *testing.T, s *Store) *Map {
	t.Helper()
	m := NewMap()
	err := s.Log.Range(0, s.Log.Size(), func(i int64, text []byte) error {
		if IsMapEntry(text) {
			return nil
		}
		e, err := ParseEntry(text)
		if err != nil {
			return err
		}
		for _, sub := range s.subjectsOf(e.Path) {
			m.Add(sub, i, LeafHash(text))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// lazies counts m's buckets not read yet and read.
func lazies(m *Map) (unread, read int) {
	var walk func(n *node)
	walk = func(n *node) {
		switch {
		case n == nil || n.sub != nil:
		case n.lazy != nil && n.lazy.read() == nil:
			unread++
		case n.lazy != nil:
			read++
		default:
			walk(n.child[0])
			walk(n.child[1])
		}
	}
	walk(m.root)
	return
}

// A store opened on a snapshot of many buckets reads only the buckets
// its appends reach, and computes the same map leaves and map as one
// built from every entry; a damaged bucket is built again from the log.
func TestStoreSnapshotLazy(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entry := func(c, p int) Entry {
		commit := fmt.Sprintf("%040x", c+1)
		return NewEntry(commit, int64(1700000000+c), fmt.Sprintf("packages/a/b/c/d/acme/p%d/1.0.%d/x.json", p, c), []byte(fmt.Sprint(c, p)))
	}
	// 3000 subjects in 300 commits, then 100 commits to old ones.
	for c := 0; c < 400; c++ {
		var es []Entry
		for k := 0; k < 10; k++ {
			p := c*10 + k
			if c >= 300 {
				p = (c*37 + k*101) % 3000
			}
			es = append(es, entry(c, p))
		}
		if _, err := s.AppendCommit(es[0].Commit, es[0].Time, es); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(fmt.Sprintf("%040x", 400)); err != nil {
		t.Fatal(err)
	}
	at, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.saveSnapshot(at.Map, at.Size, at.Root); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, snapshotFile)
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	bits := int(data[snapHeader-1])
	if bits < 4 {
		t.Fatalf("a snapshot of %d subjects has %d bucket bits", at.Map.Len(), bits)
	}

	// Appends: two commits, to an old subject and a new one each.
	appendSome := func(o *Store, from int) {
		t.Helper()
		head := o.Head()
		if err := o.Begin(head); err != nil {
			t.Fatal(err)
		}
		for c := from; c < from+2; c++ {
			es := []Entry{entry(c, c%3000), entry(c, 5000+c)}
			if _, err := o.AppendCommit(es[0].Commit, es[0].Time, es); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Commit(fmt.Sprintf("%040x", from+2)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(o *Store) {
		t.Helper()
		ref := logMap(t, o)
		// Every map leaf the lazy map wrote is the reference's root there.
		me, _, ok, err := o.LastMap()
		if err != nil || !ok || me.Root != ref.Root() {
			t.Fatalf("last map leaf %v (%v), the entries give %v", me.Root, err, ref.Root())
		}
		got, err := o.Map()
		if err != nil {
			t.Fatal(err)
		}
		if got.Map.Root() != ref.Root() || got.Map.Len() != ref.Len() || got.Map.Last() != ref.Last() {
			t.Fatalf("map root %v, %d subjects, last %d; the entries give %v, %d, %d", got.Map.Root(), got.Map.Len(), got.Map.Last(), ref.Root(), ref.Len(), ref.Last())
		}
		if unread, _ := lazies(got.Map); unread != 0 {
			t.Fatalf("Map left %d buckets unread", unread)
		}
		for p := 0; p < 5010; p += 7 {
			sub := fmt.Sprintf("package acme/p%d", p)
			v1, i1, ok1 := got.Map.Get(sub)
			v2, i2, ok2 := ref.Get(sub)
			if v1 != v2 || ok1 != ok2 || !slices.Equal(i1, i2) {
				t.Fatalf("%s: %v %v, want %v %v", sub, v1, i1, v2, i2)
			}
			var v *Value
			if ok2 {
				v = &v2
			}
			if err := VerifyMap(ref.Root(), sub, v, got.Map.Prove(sub)); err != nil {
				t.Fatal(err)
			}
		}
	}

	o, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	appendSome(o, 400)
	if o.snapSize.Load() != 4000+400 {
		t.Fatalf("the store started from %d, want the snapshot at %d", o.snapSize.Load(), 4400)
	}
	// Four subjects' paths, in 1<<bits buckets: at most four read (an
	// Add puts what it read in the lazy node's place).
	if unread, read := lazies(o.m); unread < 1<<bits-4 || unread == 1<<bits || read > 4 {
		t.Fatalf("after two commits, %d buckets unread and %d read in place, of %d", unread, read, 1<<bits)
	}
	// MapRoot gives the roots Map does, and reads no bucket more.
	size, root, mapRoot, err := o.MapRoot()
	if err != nil {
		t.Fatal(err)
	}
	if unread2, read2 := lazies(o.m); unread2 < 1<<bits-4 || read2 > 4 {
		t.Fatalf("MapRoot read buckets: %d unread and %d read, of %d", unread2, read2, 1<<bits)
	}
	if ref := logMap(t, o); size != o.Size() || root != o.Root() || mapRoot != ref.Root() {
		t.Fatalf("MapRoot: size %d, root %v, map %v; the log: %d, %v, its entries' map %v", size, root, mapRoot, o.Size(), o.Root(), ref.Root())
	}
	check(o)

	// A bucket damaged on disk (a chain changed, its digest and the
	// header's sealed again: only its hash catches it) is built again
	// from the log's entries.
	if err := os.WriteFile(snap, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b := slices.Clone(data)
	first := snapHeader + (1<<bits)*bucketEntry + sha256.Size
	// Every bucket's first subject's chain, so that whichever the
	// appends reach is damaged.
	for k := 0; k < 1<<bits; k++ {
		e := b[snapHeader+k*bucketEntry:]
		off, n := int(beU64(e)), int(beU64(e[8:]))
		if n == 0 {
			continue
		}
		b[first+off+32+8] ^= 1
		d := sha256.Sum256(b[first+off : first+off+n])
		copy(e[56:88], d[:])
	}
	sum := sha256.Sum256(b[:first-sha256.Size])
	copy(b[first-sha256.Size:], sum[:])
	if err := os.WriteFile(snap, b, 0o644); err != nil {
		t.Fatal(err)
	}
	o2, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	// The snapshot is at 4400, the log further: its map starts there.
	appendSome(o2, 402)
	if o2.snapSize.Load() != 4400 {
		t.Fatalf("the store started from %d, want the snapshot at 4400", o2.snapSize.Load())
	}
	check(o2)

	// Readers of one store read its buckets at once (run with -race).
	if err := os.WriteFile(snap, data, 0o644); err != nil {
		t.Fatal(err)
	}
	o3, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer o3.Close()
	ref := logMap(t, o3)
	ref.Root() // built: its readers may be many
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := o3.Map()
			if err == nil && at.Map.Root() != ref.Root() {
				err = fmt.Errorf("map root %v, want %v", at.Map.Root(), ref.Root())
			}
			if err == nil {
				sub := fmt.Sprintf("package acme/p%d", g*11)
				v, _, _ := ref.Get(sub)
				err = VerifyMap(ref.Root(), sub, &v, at.Map.Prove(sub))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func beU64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// Between two snapshots, each commit writes a delta beside the snapshot:
// a new process reads the map from both, only the buckets it needs, with
// no entry of the log replayed; a delta damaged, of another snapshot, or
// of a log that moved on without it, is ignored or built again.
func TestStoreSnapshotDelta(t *testing.T) {
	defer func(n int64) { snapshotEvery = n }(snapshotEvery)
	snapshotEvery = 1000
	dir := t.TempDir()
	s := snapshotStore(t, dir)
	defer s.Close()
	entry := deltaTestEntry
	base := s.Size()
	if s.snapSize.Load() != base {
		t.Fatalf("no snapshot at %d (%d)", base, s.snapSize.Load())
	}
	// Appends by new processes, a commit each, to old and new subjects,
	// each closing the log as it ends (if closing).
	next := 300
	appendOne := func(closing bool) *Store {
		t.Helper()
		o, err := OpenStore(dir, testSubjects)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		if err := o.Begin(o.Head()); err != nil {
			t.Fatal(err)
		}
		es := []Entry{entry(next, next%3000), entry(next, 5000+next)}
		if _, err := o.AppendCommit(es[0].Commit, es[0].Time, es); err != nil {
			t.Fatal(err)
		}
		next++
		if err := o.Commit(es[0].Commit); err != nil {
			t.Fatal(err)
		}
		if closing {
			o.Close()
		}
		return o
	}
	// open checks what a new process reads: the map from the snapshot
	// and the delta, at the log's size (no entry replayed), or, with no
	// delta of use, from the snapshot alone.
	open := func(delta bool) {
		t.Helper()
		o, err := OpenStore(dir, testSubjects)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		m, n, full, ok := o.loadSnapshot(o.Size())
		if !ok || full != base || (n == o.Size()) != delta {
			t.Fatalf("loadSnapshot: at %d (full %d, %v); the log is at %d, the snapshot at %d; from a delta: %v", n, full, ok, o.Size(), base, delta)
		}
		if unread, read := lazies(m); read != 0 || unread < 8 {
			t.Fatalf("opening read %d buckets (%d unread)", read, unread)
		}
		ref := logMap(t, o)
		got, err := o.Map()
		if err != nil {
			t.Fatal(err)
		}
		if got.Map.Root() != ref.Root() || got.Map.Len() != ref.Len() || got.Map.Last() != ref.Last() {
			t.Fatalf("map root %v, %d subjects, last %d; the entries give %v, %d, %d", got.Map.Root(), got.Map.Len(), got.Map.Last(), ref.Root(), ref.Len(), ref.Last())
		}
		for p := 0; p < 5400; p += 3 {
			sub := fmt.Sprintf("package acme/p%d", p)
			v1, i1, ok1 := got.Map.Get(sub)
			v2, i2, ok2 := ref.Get(sub)
			if v1 != v2 || ok1 != ok2 || !slices.Equal(i1, i2) {
				t.Fatalf("%s: %v %v, want %v %v", sub, v1, i1, v2, i2)
			}
		}
	}
	for i := 0; i < 3; i++ {
		appendOne(true)
		open(true)
	}
	delta := filepath.Join(dir, deltaFile)
	good, err := os.ReadFile(delta)
	if err != nil {
		t.Fatal(err)
	}

	// A bucket of the delta damaged (a chain changed, its digest and the
	// header sealed again: only its hash catches it) is built again from
	// the log; a header damaged, the delta is ignored.
	n := int(beU64(good[deltaHeader-8:]))
	first := deltaHeader + n*deltaEntry + sha256.Size
	b := slices.Clone(good)
	for k := 0; k < n; k++ {
		e := b[deltaHeader+k*deltaEntry:]
		off, size := int(beU64(e[8:])), int(beU64(e[16:]))
		b[first+off+32+8] ^= 1
		d := sha256.Sum256(b[first+off : first+off+size])
		copy(e[64:96], d[:])
	}
	sum := sha256.Sum256(b[:first-sha256.Size])
	copy(b[first-sha256.Size:], sum[:])
	if err := os.WriteFile(delta, b, 0o644); err != nil {
		t.Fatal(err)
	}
	open(true)
	b = slices.Clone(good)
	b[len(deltaMagic)+8+32+3] ^= 1 // its size
	if err := os.WriteFile(delta, b, 0o644); err != nil {
		t.Fatal(err)
	}
	open(false)
	// A delta of another snapshot (the one before, here) is ignored.
	b = slices.Clone(good)
	b[len(deltaMagic)+8] ^= 1 // the snapshot's root it names
	sum = sha256.Sum256(b[:first-sha256.Size])
	copy(b[first-sha256.Size:], sum[:])
	if err := os.WriteFile(delta, b, 0o644); err != nil {
		t.Fatal(err)
	}
	open(false)

	// A delta of a log that moved on (a writer not closed yet) is used
	// up to its size, the rest replayed.
	if err := os.WriteFile(delta, good, 0o644); err != nil {
		t.Fatal(err)
	}
	o := appendOne(false)
	if m, n, _, ok := o.loadSnapshot(o.Size()); !ok || n >= o.Size() || n <= base {
		t.Fatalf("a delta behind the log: loadSnapshot at %d (%v), log at %d", n, ok, o.Size())
	} else if _, read := lazies(m); read != 0 {
		t.Fatalf("opening read %d buckets", read)
	}
	at, err := o.Map()
	if err != nil || at.Map.Root() != logMap(t, o).Root() {
		t.Fatalf("map from a delta behind the log: %v (%v)", at.Map.Root(), err)
	}
}

// When the commits since the snapshot reach too much of it for a delta
// (errDeltaFull), closing the log writes a new snapshot: the next process
// still reads the map at the log's size, with no entry replayed, however
// many such commits came (before, each replayed every entry since the
// last delta that fitted, more at each commit).
func TestStoreDeltaFullIsSnapshot(t *testing.T) {
	defer func(n int64) { snapshotEvery = n }(snapshotEvery)
	snapshotEvery = 1000
	dir := t.TempDir()
	entry := deltaTestEntry
	snapshotStore(t, dir).Close()
	// Each process: one commit of 400 files to old subjects all over the
	// map, far fewer leaves than the eighth that writes a snapshot at a
	// commit, but buckets enough to fill a delta in two or three.
	snapshots := 0
	for c := 300; c < 306; c++ {
		o, err := OpenStore(dir, testSubjects)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Begin(o.Head()); err != nil {
			t.Fatal(err)
		}
		var es []Entry
		for k := 0; k < 400; k++ {
			es = append(es, entry(c, (c*7919+k*7)%3000))
		}
		if _, err := o.AppendCommit(es[0].Commit, es[0].Time, es); err != nil {
			t.Fatal(err)
		}
		if err := o.Commit(es[0].Commit); err != nil {
			t.Fatal(err)
		}
		before := o.snapSize.Load()
		o.Close()
		n, err := OpenStore(dir, testSubjects)
		if err != nil {
			t.Fatal(err)
		}
		m, at, full, ok := n.loadSnapshot(n.Size())
		if !ok || at != n.Size() {
			t.Fatalf("after commit %d: the map read at %d (snapshot %d, %v), the log is at %d: %d entries to replay", c, at, full, ok, n.Size(), n.Size()-at)
		}
		if full > before {
			snapshots++
		}
		ref := logMap(t, n)
		if err := m.loadAll(); err != nil {
			t.Fatal(err)
		}
		if m.Root() != ref.Root() || m.Len() != ref.Len() {
			t.Fatalf("after commit %d: map root %v of %d subjects, the entries give %v of %d", c, m.Root(), m.Len(), ref.Root(), ref.Len())
		}
		n.Close()
	}
	if snapshots == 0 {
		t.Errorf("no delta filled up in 6 commits of 400 files: the test shows nothing")
	}
}

// deltaTestEntry is file p of commit c, in package acme/pP.
func deltaTestEntry(c, p int) Entry {
	commit := fmt.Sprintf("%040x", c+1)
	return NewEntry(commit, int64(1700000000+c), fmt.Sprintf("packages/a/b/c/d/acme/p%d/1.0.%d/x.json", p, c), []byte(fmt.Sprint(c, p)))
}

// snapshotStore opens a new log in dir and commits 3000 subjects in 300
// commits at once (deltaTestEntry): with snapshotEvery at most 3300, a
// snapshot at its size.
func snapshotStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 300; c++ {
		var es []Entry
		for k := 0; k < 10; k++ {
			es = append(es, deltaTestEntry(c, c*10+k))
		}
		if _, err := s.AppendCommit(es[0].Commit, es[0].Time, es); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(fmt.Sprintf("%040x", 300)); err != nil {
		t.Fatal(err)
	}
	return s
}
