package index_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
)

// An append's files are staged in main's log while its commit is built
// and main moves (see Repo.commit): an append refused by the rules (before
// its commit is staged) or whose blobs cannot be stored (after) leaves the
// log as it was, committed and unlocked, and the next append extends it.
func TestLogUntouchedByRefusedAppends(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	head := f.head()
	stateFile := filepath.Join(f.repo.Main().LogDir(), "state.json")
	before, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		now, _ := os.ReadFile(stateFile)
		lg, err := f.repo.LogOf(f.repo.Main())
		if err != nil {
			t.Fatal(err)
		}
		if string(now) != string(before) || lg.Head() != head || lg.Staged() != 0 || f.head() != head {
			t.Fatalf("%s: main at %.12s, its log at %.12s with %d staged (state changed: %v); want both at %.12s, nothing staged", what, f.head(), lg.Head(), lg.Staged(), string(now) != string(before), head)
		}
	}

	// Refused by the rules: the key has no grant.
	if _, err := author.Publish(f.ctx, f.repo, f.pkgDir("acme/fastjson", "1.1.0", ""), newSigner()); err == nil {
		t.Fatal("a publish by a key with no grant was accepted")
	}
	unchanged("after a refused publish")

	// The commit is built and staged in the log, but its blobs cannot be
	// stored, so main does not move.
	blobs := filepath.Join(f.dir, "blobs", "sha256")
	if err := os.RemoveAll(blobs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobs, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Publish(f.ctx, f.repo, f.pkgDir("acme/fastjson", "1.1.0", ""), f.alice); err == nil {
		t.Fatal("a publish whose blobs were not stored was accepted")
	}
	unchanged("after a publish whose blobs were not stored")
	os.Remove(blobs)

	// The next append takes the locks (a lock left held would stall it)
	// and extends the log.
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.publish(f.alice, "acme/fastjson", "1.1.0")
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the publish after the refused ones stalled: a lock of main's log was left held")
	}
	if f.head() == head {
		t.Fatal("the publish did not move main")
	}
	f.checkLog(f.head())
}
