package translog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// buildStore commits commits 0..n-1 of commitOf into a new store in dir,
// each batch of 40 commits its own Commit.
func buildStore(t *testing.T, dir string, n int64) *Store {
	t.Helper()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for c := int64(0); c < n; c++ {
		commit, tm, es := commitOf(c)
		if _, err := s.AppendCommit(commit, tm, es); err != nil {
			t.Fatal(err)
		}
		if c%40 == 39 || c == n-1 {
			if err := s.Commit(commit); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// recompute appends commits 0..n-1 to s recomputing it, and commits;
// it returns the first error.
func recompute(s *Store, n int64) error {
	if err := s.BeginRecompute(); err != nil {
		return err
	}
	var last string
	for c := int64(0); c < n; c++ {
		commit, tm, es := commitOf(c)
		if _, err := s.AppendCommit(commit, tm, es); err != nil {
			s.Rollback()
			return err
		}
		last = commit
	}
	return s.Commit(last)
}

// A log recomputed from the same commits is kept as it is: no file is
// written again, and it goes on from there like a log never recomputed.
// One recomputed from other commits, or whose files differ anywhere
// (an entry bundle, a hash tile of any level, a stored hash the root does
// not read, the state's last entries), fails with ErrDiffers and is left
// as it was.
func TestStoreRecompute(t *testing.T) {
	const commits = 300 // 1,200 leaves: full bundles and level-0 tiles, a partial level-1 tile
	dir := t.TempDir()
	s := buildStore(t, dir, commits)
	size, root := s.Size(), s.Root()
	before := snapshot(t, dir)
	stat := func(p string) os.FileInfo {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	bundle0 := torchwood.TilePath(tlog.Tile{H: tileHeight, L: -1, N: 0, W: tileWidth})
	fi0 := stat(bundle0)

	if err := recompute(s, commits); err != nil {
		t.Fatalf("recomputing a right log: %v", err)
	}
	if got := snapshot(t, dir); !got.equal(before) {
		t.Fatalf("recomputing a right log changed its files:\n%s", got.diff(before))
	}
	if !os.SameFile(fi0, stat(bundle0)) || !fi0.ModTime().Equal(stat(bundle0).ModTime()) {
		t.Fatal("recomputing a right log wrote its tiles again")
	}
	if s.Size() != size || s.Root() != root {
		t.Fatalf("after recomputing: size %d root %v, want %d %v", s.Size(), s.Root(), size, root)
	}
	at, err := s.Map()
	again, err2 := OpenStore(dir, testSubjects)
	if err2 != nil {
		t.Fatal(err2)
	}
	defer again.Close()
	want, err2 := again.Map()
	if err != nil || err2 != nil || at.Map.Root() != want.Map.Root() || at.Size != size {
		t.Fatalf("the recomputed map: %v at %d (%v), rebuilt from the entries: %v (%v)", at.Map.Root(), at.Size, err, want.Map.Root(), err2)
	}

	// Recomputed and extended: the same files as a log built straight.
	if err := s.BeginRecompute(); err != nil {
		t.Fatal(err)
	}
	var last string
	for c := int64(0); c < commits+20; c++ {
		commit, tm, es := commitOf(c)
		if _, err := s.AppendCommit(commit, tm, es); err != nil {
			t.Fatal(err)
		}
		last = commit
	}
	if err := s.Commit(last); err != nil {
		t.Fatal(err)
	}
	straight := t.TempDir()
	buildStore(t, straight, commits+20)
	if got, want := snapshot(t, dir), snapshot(t, straight); !got.equal(want) {
		t.Fatalf("a log recomputed and extended differs from one built straight:\n%s", got.diff(want))
	}

	// Fewer commits than the log holds: the Commit refuses.
	if err := recompute(s, commits); !errors.Is(err, ErrDiffers) {
		t.Fatalf("recomputing fewer commits than the log holds: %v", err)
	}

	damages := []struct {
		name string
		file string
		edit func(b []byte) []byte
	}{
		{"entry bundle", bundle0, func(b []byte) []byte { b[40] ^= 1; return b }},
		{"level-0 tile", torchwood.TilePath(tlog.Tile{H: tileHeight, L: 0, N: 1, W: tileWidth}), func(b []byte) []byte { b[0] ^= 1; return b }},
		{"stored hash", hashesFile, func(b []byte) []byte { b[0] ^= 1; return b }}, // leaf 0's: not on the root's path
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			s := buildStore(t, dir, commits)
			p := filepath.Join(dir, d.file)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, d.edit(data), 0o644); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			err = recompute(s, commits)
			if !errors.Is(err, ErrDiffers) {
				t.Fatalf("recomputing a log with a damaged %s: %v", d.name, err)
			}
			if got := snapshot(t, dir); !got.equal(before) {
				t.Fatalf("a recomputation that failed changed the files:\n%s", got.diff(before))
			}
		})
	}
	t.Run("other commits", func(t *testing.T) {
		dir := t.TempDir()
		s := buildStore(t, dir, commits)
		if err := s.BeginRecompute(); err != nil {
			t.Fatal(err)
		}
		defer s.Rollback()
		var err error
		for c := int64(0); c < commits && err == nil; c++ {
			commit, tm, es := commitOf(c)
			if c == 100 {
				es[1].Size++
			}
			_, err = s.AppendCommit(commit, tm, es)
		}
		// Found when its bundle is complete.
		if !errors.Is(err, ErrDiffers) || s.Log.Next() != 512 {
			t.Fatalf("recomputing with an entry changed at leaf 401: %v (stopped at %d)", err, s.Log.Next())
		}
		if _, err := s.AppendCommit(commitOf(commits)); !errors.Is(err, ErrDiffers) {
			t.Fatalf("an append after a difference: %v", err)
		}
	})
	t.Run("state's last entries", func(t *testing.T) {
		dir := t.TempDir()
		s := buildStore(t, dir, commits)
		st := *mustState(t, dir)
		st.Last[0] = st.Last[1]
		if err := writeState(dir, &st); err != nil {
			t.Fatal(err)
		}
		s.Log.mu.Lock()
		s.Log.stamp = nil // read it again
		s.Log.mu.Unlock()
		if err := recompute(s, commits); !errors.Is(err, ErrDiffers) {
			t.Fatalf("recomputing a log whose state holds a wrong last entry: %v", err)
		}
	})
}

func mustState(t *testing.T, dir string) *state {
	t.Helper()
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A full hash tile above level 0 is compared too (a partial one is
// written again from the hashes when the write lock is taken).
func TestRecomputeUpperTile(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	const size = 1<<16 + 300
	grow(t, l, 0, size, "built")
	p := filepath.Join(dir, torchwood.TilePath(tlog.Tile{H: tileHeight, L: 1, N: 0, W: tileWidth}))
	for _, damaged := range []bool{false, true} {
		if damaged {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[100] ^= 1
			os.WriteFile(p, data, 0o644)
		}
		if err := l.beginRedo(); err != nil {
			t.Fatal(err)
		}
		var err error
		for i := int64(0); i < size && err == nil; i++ {
			_, _, err = l.Append(testEntry(i))
		}
		if err == nil {
			err = l.Commit("built")
		}
		if damaged != errors.Is(err, ErrDiffers) {
			t.Fatalf("recomputing with the level-1 tile damaged %v: %v", damaged, err)
		}
		l.Rollback()
	}
}
