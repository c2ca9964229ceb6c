package translog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// testEntry is leaf i of the test logs.
func testEntry(i int64) Entry {
	return NewEntry(fmt.Sprintf("%040x", i/3), 1700000000+i/3, fmt.Sprintf("packages/a/b/c/d/acme/p%d/1.0.%d/descriptor.json", i/7, i), []byte(fmt.Sprint("file ", i)))
}

// memTree is the reference: the same records through x/mod's tlog, in memory.
type memTree []tlog.Hash

func (m memTree) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		out[i] = m[x]
	}
	return out, nil
}

func (m *memTree) add(n int64, text []byte) {
	hs, err := tlog.StoredHashes(n, text, *m)
	if err != nil {
		panic(err)
	}
	*m = append(*m, hs...)
}

func openLog(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// grow appends leaves from..to-1 and commits them as head.
func grow(t testing.TB, l *Log, from, to int64, head string) {
	t.Helper()
	for i := from; i < to; i++ {
		idx, leaf, err := l.Append(testEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		if idx != i || leaf != LeafHash(testEntry(i).Text()) {
			t.Fatalf("Append of leaf %d = %d, %v", i, idx, leaf)
		}
	}
	if err := l.Commit(head); err != nil {
		t.Fatal(err)
	}
}

// The tree's roots and proofs are x/mod tlog's over the same records, at
// every committed size, through tile boundaries of every level.
func TestLogMatchesTlog(t *testing.T) {
	l := openLog(t, t.TempDir())
	var ref memTree
	sizes := []int64{1, 2, 3, 255, 256, 257, 511, 600, 65535, 65536, 65537, 70000}
	var prev int64
	for _, n := range sizes {
		grow(t, l, prev, n, "head"+strconv.FormatInt(n, 10))
		for i := prev; i < n; i++ {
			ref.add(i, testEntry(i).Text())
		}
		if l.Size() != n || l.Head() != "head"+strconv.FormatInt(n, 10) {
			t.Fatalf("after commit: size %d head %s, want %d", l.Size(), l.Head(), n)
		}
		want, _ := tlog.TreeHash(n, ref)
		if l.Root() != want {
			t.Fatalf("root at %d = %v, want %v", n, l.Root(), want)
		}
		prev = n
	}
	for _, n := range sizes {
		want, _ := tlog.TreeHash(n, ref)
		got, err := l.TreeHash(n)
		if err != nil || got != want {
			t.Fatalf("TreeHash(%d) = %v, %v; want %v", n, got, err, want)
		}
		for _, i := range []int64{0, n / 2, n - 1} {
			p, err := l.ProveRecord(i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, n, want, i, LeafHash(testEntry(i).Text())); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, n, err)
			}
			if err := tlog.CheckRecord(p, n, want, i, LeafHash(testEntry(i+1).Text())); err == nil {
				t.Fatalf("inclusion of %d in %d proves another leaf too", i, n)
			}
		}
		for _, m := range sizes {
			if m > n {
				continue
			}
			p, err := l.ProveTree(m, n)
			if err != nil {
				t.Fatal(err)
			}
			old, _ := tlog.TreeHash(m, ref)
			if err := tlog.CheckTree(p, n, want, m, old); err != nil {
				t.Fatalf("consistency %d → %d: %v", m, n, err)
			}
		}
	}
	if _, err := l.TreeHash(70001); err == nil {
		t.Fatal("TreeHash past the size answered")
	}
	if _, err := l.ProveRecord(70000, 70000); err == nil {
		t.Fatal("ProveRecord of a leaf past the tree answered")
	}
	if _, err := l.ProveTree(10, 70001); err == nil {
		t.Fatal("ProveTree to a size past the log answered")
	}

	// Every tile on disk is the one tlog computes from the records, and
	// full tiles replaced their partial ones.
	checkTiles(t, l.Dir(), ref, 70000)

	// The entries read back, one by one and in ranges.
	for _, i := range []int64{0, 255, 256, 69999} {
		e, err := l.Entry(i)
		if err != nil || !bytes.Equal(e, testEntry(i).Text()) {
			t.Fatalf("Entry(%d) = %q, %v", i, e, err)
		}
	}
	var next int64 = 250
	if err := l.Range(250, 70000, func(i int64, e []byte) error {
		if i != next || !bytes.Equal(e, testEntry(i).Text()) {
			return fmt.Errorf("Range gave %d %q, want %d", i, e, next)
		}
		next++
		return nil
	}); err != nil || next != 70000 {
		t.Fatalf("Range: %v (stopped at %d)", err, next)
	}
	if _, err := l.Entry(70000); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Entry past the size: %v", err)
	}
}

// checkTiles compares every file under dir/tile with what tlog computes for
// a tree of size n over ref: exactly the tiles of that size (full tiles,
// and each level's partial tile), and partial tiles only of tiles not yet full.
func checkTiles(t *testing.T, dir string, ref memTree, n int64) {
	t.Helper()
	want := map[string]bool{}
	for _, tile := range tlog.NewTiles(tileHeight, 0, n) {
		want[torchwood.TilePath(tile)] = true
		if tile.L == 0 {
			want[torchwood.TilePath(tlog.Tile{H: tileHeight, L: -1, N: tile.N, W: tile.W})] = true
		}
	}
	err := filepath.WalkDir(filepath.Join(dir, tileDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		tile, err := torchwood.ParseTilePath(rel)
		if err != nil {
			return fmt.Errorf("stray file %s", rel)
		}
		data, _ := os.ReadFile(p)
		if tile.L == -1 {
			var b []byte
			for i := tile.N * tileWidth; i < tile.N*tileWidth+int64(tile.W); i++ {
				b, _ = torchwood.AppendTileEntry(b, testEntry(i).Text())
			}
			if !bytes.Equal(data, b) {
				return fmt.Errorf("entry bundle %s differs from the entries", rel)
			}
		} else if td, _ := tlog.ReadTileData(tile, ref); !bytes.Equal(data, td) {
			return fmt.Errorf("tile %s differs from tlog's", rel)
		}
		if tile.W < tileWidth {
			full := tile
			full.W = tileWidth
			if want[torchwood.TilePath(full)] {
				return fmt.Errorf("partial tile %s kept beside its full tile", rel)
			}
		}
		delete(want, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) > 0 {
		t.Fatalf("tiles missing: %v", want)
	}
}

// serve serves a log's tiles as cairn serve does, from ReadTile.
func serve(l *Log) *httptest.Server {
	return httptest.NewServer(http.StripPrefix("/log/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := l.ReadTile(r.URL.Path)
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(data)
	})))
}

// A tlog client written elsewhere (torchwood's) reads the log's entries
// over HTTP, from ReadTile and from a static file server over the
// directory, and verifies them against the tree.
func TestTilesWithTorchwoodClient(t *testing.T) {
	l := openLog(t, t.TempDir())
	grow(t, l, 0, 300, "a")
	grow(t, l, 300, 1000, "b")
	servers := map[string]*httptest.Server{
		"ReadTile":    serve(l),
		"static file": httptest.NewServer(http.StripPrefix("/log/", http.FileServer(http.Dir(l.Dir())))),
	}
	for name, srv := range servers {
		defer srv.Close()
		fetcher, err := torchwood.NewTileFetcher(srv.URL + "/log/")
		if err != nil {
			t.Fatal(err)
		}
		client, err := torchwood.NewClient(fetcher)
		if err != nil {
			t.Fatal(err)
		}
		sizes := []int64{300, 1000}
		if name == "static file" {
			// Files on disk hold the partial tiles of the latest size only:
			// C2SP tlog-tiles lets a log drop them once the full tile is there.
			sizes = sizes[1:]
		}
		for _, n := range sizes {
			root, _ := l.TreeHash(n)
			tree := tlog.Tree{N: n, Hash: root}
			// Entries stops short of a partial bundle; resumed, it reads it.
			var next int64
			for rounds := 0; next < n && rounds < 3; rounds++ {
				for i, e := range client.Entries(context.Background(), tree, next) {
					if i != next || !bytes.Equal(e, testEntry(i).Text()) {
						t.Fatalf("%s: entry %d = %q", name, i, e)
					}
					next++
				}
				if err := client.Err(); err != nil {
					t.Fatalf("%s: entries of tree %d: %v", name, n, err)
				}
			}
			if next != n {
				t.Fatalf("%s: read %d entries of tree %d", name, next, n)
			}
			e, proof, err := client.Entry(context.Background(), tree, n-1)
			if err != nil || !bytes.Equal(e, testEntry(n-1).Text()) {
				t.Fatalf("%s: Entry(%d) = %q, %v", name, n-1, e, err)
			}
			if err := tlog.CheckRecord(proof, n, root, n-1, LeafHash(e)); err != nil {
				t.Fatal(err)
			}
			// x/mod's tile hash reader too.
			hr := torchwood.TileHashReaderWithContext(context.Background(), tree, fetcher)
			p, err := tlog.ProveTree(n, 300, hr)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			old, _ := l.TreeHash(300)
			if err := tlog.CheckTree(p, n, root, 300, old); err != nil {
				t.Fatal(err)
			}
		}
		// A tree the server does not hold is refused by the client.
		bad := tlog.Tree{N: 1000, Hash: tlog.Hash{1}}
		if _, _, err := client.Entry(context.Background(), bad, 5); err == nil {
			t.Fatalf("%s: a client accepted entries against another root", name)
		}
	}
}

func TestReadTile(t *testing.T) {
	l := openLog(t, t.TempDir())
	grow(t, l, 0, 100, "a")
	grow(t, l, 0+100, 300, "b")
	for _, p := range []string{"tile/0/000", "tile/0/001.p/44", "tile/entries/000", "tile/entries/001.p/44", "tile/1/000.p/1",
		// A partial tile of an earlier size, whose full tile replaced it on disk.
		"tile/0/000.p/100", "tile/entries/000.p/100", "tile/entries/001.p/3"} {
		data, err := l.ReadTile(p)
		if err != nil {
			t.Fatalf("ReadTile(%s): %v", p, err)
		}
		tile, _ := torchwood.ParseTilePath(p)
		if tile.L >= 0 && len(data) != tile.W*tlog.HashSize {
			t.Fatalf("ReadTile(%s): %d bytes", p, len(data))
		}
		if tile.L < 0 {
			e, _, _ := torchwood.ReadTileEntry(data)
			if !bytes.Equal(e, testEntry(tile.N*tileWidth).Text()) {
				t.Fatalf("ReadTile(%s) starts with %q", p, e)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), "tile/0/000.p/100")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a partial tile stayed beside its full tile: %v", err)
	}
	for _, p := range []string{"tile/0/001.p/45", "tile/0/001", "tile/entries/002.p/1", "tile/1/000", "tile/2/000.p/1",
		"tile/0/1", "tile/0/000.p/256", "checkpoint", "../state.json", "tile/../hashes", "tile/8/000", "hashes", "tile/0/000.p/0"} {
		if _, err := l.ReadTile(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadTile(%s) = %v, want fs.ErrNotExist", p, err)
		}
	}
}

func TestStagedAndReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	if l.Size() != 0 || l.Head() != "" {
		t.Fatalf("new log: size %d head %q", l.Size(), l.Head())
	}
	grow(t, l, 0, 10, "a")
	for i := int64(10); i < 700; i++ {
		if _, _, err := l.Append(testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Staged leaves are not visible.
	if l.Size() != 10 || l.Staged() != 690 {
		t.Fatalf("with leaves staged: size %d, staged %d", l.Size(), l.Staged())
	}
	if _, err := l.ReadTile("tile/0/000"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a staged tile is readable: %v", err)
	}
	root10 := l.Root()
	l.Rollback()
	if l.Size() != 10 || l.Staged() != 0 || l.Root() != root10 {
		t.Fatal("rollback changed the committed log")
	}
	// A commit with nothing staged moves the head only.
	if err := l.Commit("b"); err != nil || l.Head() != "b" || l.Size() != 10 {
		t.Fatalf("empty commit: %v, head %s, size %d", err, l.Head(), l.Size())
	}
	grow(t, l, 10, 700, "c")
	l.Close()

	l2 := openLog(t, dir)
	if l2.Size() != 700 || l2.Head() != "c" {
		t.Fatalf("reopened: size %d head %s", l2.Size(), l2.Head())
	}
	var ref memTree
	for i := int64(0); i < 700; i++ {
		ref.add(i, testEntry(i).Text())
	}
	if want, _ := tlog.TreeHash(700, ref); l2.Root() != want {
		t.Fatal("reopened log has another root")
	}
	grow(t, l2, 700, 800, "d")
	for i := int64(700); i < 800; i++ {
		ref.add(i, testEntry(i).Text())
	}
	checkTiles(t, dir, ref, 800)

	// A directory with other things is not taken for a log.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644)
	if _, err := OpenLog(other); err == nil || !strings.Contains(err.Error(), "not a transparency log") {
		t.Fatalf("OpenLog of a directory with other files: %v", err)
	}
}

// A state file whose root the hashes do not give is refused.
func TestCorrupt(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	grow(t, l, 0, 20, "a")
	l.Close()
	st, _ := readState(dir)
	st.Root[0] ^= 1
	writeState(dir, st)
	if _, err := OpenLog(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), st.Root.String()) {
		t.Fatalf("OpenLog with a wrong root: %v", err)
	}
	st.Root[0] ^= 1
	st.Size = 30
	writeState(dir, st)
	if _, err := OpenLog(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenLog with a size past the hashes: %v", err)
	}
}

// Two writers of one directory take turns: the second appends after
// what the first committed.
func TestWriteLock(t *testing.T) {
	dir := t.TempDir()
	a, b := openLog(t, dir), openLog(t, dir)
	grow(t, a, 0, 5, "a")
	if _, _, err := a.Append(testEntry(5)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, _, err := b.Append(testEntry(6))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a second writer appended while the first held the log: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := a.Commit("b"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Commit("c"); err != nil {
		t.Fatal(err)
	}
	if b.Size() != 7 {
		t.Fatalf("second writer's log: %d leaves, want 7", b.Size())
	}
	// A writer that meant to continue from where it left the log learns
	// that another one moved it.
	if err := a.Begin("b"); !errors.Is(err, ErrMoved) {
		t.Fatalf("Begin at a head the log left: %v", err)
	}
	if err := a.Begin("c"); err != nil {
		t.Fatal(err)
	}
	a.Rollback()
	if err := a.Reload(); err != nil || a.Size() != 7 || a.Head() != "c" {
		t.Fatalf("reload: %v, size %d head %s", err, a.Size(), a.Head())
	}
	e, _ := a.Entry(6)
	if !bytes.Equal(e, testEntry(6).Text()) {
		t.Fatalf("entry 6 = %q", e)
	}
}

// crashEnv names the log directory a child process appends to and
// crashes in, between its tiles and its state file.
const crashEnv = "TRANSLOG_CRASH_DIR"

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("run by TestCrashBetweenTilesAndState")
	}
	from, _ := strconv.ParseInt(os.Getenv("TRANSLOG_CRASH_FROM"), 10, 64)
	to, _ := strconv.ParseInt(os.Getenv("TRANSLOG_CRASH_TO"), 10, 64)
	l, err := OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	testHookBeforeState = func() { os.Exit(7) } // killed: no deferred cleanup runs
	grow(t, l, from, to, "crashed")
	t.Fatal("the commit did not reach the crash")
}

// A process killed after writing its tiles and before its state file
// leaves a log that reopens at the old committed size and, given the same
// entries, re-derives byte for byte the log of a process never killed.
func TestCrashBetweenTilesAndState(t *testing.T) {
	for _, c := range []struct{ from, to int64 }{{300, 301}, {300, 600}, {0, 70000}, {255, 256}} {
		t.Run(fmt.Sprint(c.from, "-", c.to), func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			grow(t, l, 0, c.from, "before")
			before := snapshot(t, dir)
			l.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
			cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprint("TRANSLOG_CRASH_FROM=", c.from), fmt.Sprint("TRANSLOG_CRASH_TO=", c.to))
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if snapshot(t, dir).equal(before) {
				t.Fatal("the killed child wrote nothing: the test tests nothing")
			}

			l = openLog(t, dir)
			if l.Size() != c.from || l.Head() != "before" {
				t.Fatalf("after the crash: size %d head %s, want %d before", l.Size(), l.Head(), c.from)
			}
			if got := snapshot(t, dir); !got.equal(before) {
				t.Fatalf("after the crash, the log's files differ from before it:\n%s", got.diff(before))
			}
			grow(t, l, c.from, c.to, "after")

			clean := t.TempDir()
			cl := openLog(t, clean)
			grow(t, cl, 0, c.from, "before")
			grow(t, cl, c.from, c.to, "after")
			if got, want := snapshot(t, dir), snapshot(t, clean); !got.equal(want) {
				t.Fatalf("the log recovered from a crash differs from one never crashed:\n%s", got.diff(want))
			}
		})
	}
}

// files maps a log directory's file names to their contents (the lock
// file, which holds nothing, aside).
type files map[string]string

func snapshot(t *testing.T, dir string) files {
	t.Helper()
	out := files{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == lockFile {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f files) equal(g files) bool { return f.diff(g) == "" }

func (f files) diff(g files) string {
	var b strings.Builder
	for k, v := range f {
		if w, ok := g[k]; !ok {
			fmt.Fprintf(&b, "  extra %s\n", k)
		} else if v != w {
			fmt.Fprintf(&b, "  differs %s\n", k)
		}
	}
	for k := range g {
		if _, ok := f[k]; !ok {
			fmt.Fprintf(&b, "  missing %s\n", k)
		}
	}
	return b.String()
}

// A commit does not sync its partial tiles: a crash may lose or tear
// them. Opening the log writes them again from the hashes and the state.
func TestRepairPartialTiles(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	grow(t, l, 0, 70000, "a")
	want := snapshot(t, dir)
	l.Close()
	for _, p := range []string{"tile/0/273.p/112", "tile/entries/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("no partial tile %s: %v", p, err)
		}
	}
	os.Remove(filepath.Join(dir, "tile/0/273.p/112"))
	os.WriteFile(filepath.Join(dir, "tile/entries/273.p/112"), []byte("torn"), 0o644)
	os.WriteFile(filepath.Join(dir, "tile/1/001.p/17"), nil, 0o644)
	l = openLog(t, dir)
	if got := snapshot(t, dir); !got.equal(want) {
		t.Fatalf("reopened log's files:\n%s", got.diff(want))
	}
	if _, err := l.ReadTile("tile/entries/273.p/112"); err != nil {
		t.Fatal(err)
	}
}
