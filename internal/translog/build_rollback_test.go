package translog

import (
	"path/filepath"
	"testing"
)

// A batch built by a builder (from the log's first leaf, or a
// recomputation) and rolled back leaves nothing behind: no temporary
// file, and no builder that the next batch would take for its own (its
// subjects are of leaves no longer staged). The batches after it give
// the map of a log built without the rollbacks.
func TestStoreBuilderRollback(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendAll := func(from, to int64) string {
		t.Helper()
		var last string
		for c := from; c < to; c++ {
			commit, tm, es := commitOf(c)
			if _, err := s.AppendCommit(commit, tm, es); err != nil {
				t.Fatalf("commit %d: %v", c, err)
			}
			last = commit
		}
		return last
	}
	noTemp := func(when string) {
		t.Helper()
		if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) > 0 {
			t.Errorf("%s: %v left beside the log", when, left)
		}
	}
	// From the first leaf, rolled back; then again, committed.
	if err := s.Begin(""); err != nil {
		t.Fatal(err)
	}
	appendAll(0, 10)
	s.Rollback()
	noTemp("after a batch from the first leaf was rolled back")
	if err := s.Begin(""); err != nil {
		t.Fatal(err)
	}
	head := appendAll(0, 60)
	if err := s.Commit(head); err != nil {
		t.Fatal(err)
	}
	// A recomputation, rolled back; then appends.
	if err := s.BeginRecompute(); err != nil {
		t.Fatal(err)
	}
	appendAll(0, 20)
	s.Rollback()
	noTemp("after a recomputation was rolled back")
	if err := s.Begin(head); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(appendAll(60, 70)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Map()
	if err != nil {
		t.Fatal(err)
	}
	want, err := buildStore(t, t.TempDir(), 70).Map()
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != want.Size || got.Root != want.Root || got.Map.Root() != want.Map.Root() {
		t.Fatalf("after the rollbacks: size %d, log root %v, map root %v; without them: %d, %v, %v", got.Size, got.Root, got.Map.Root(), want.Size, want.Root, want.Map.Root())
	}
}
