package remote

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
)

// A pull's checkpoint signs exactly the head the pull verified. fetch
// stops the line at the checkpoint's head; the check behind it refuses
// on its own a checkpoint of an older head (defence in depth), which a
// lock's kept checkpoint may be, but a pull's never is.
func TestPullCheckpointMustSignVerifiedHead(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	before, _ := w.repo.Head(w.ctx, index.MainRef)
	old := checkpointOf(t, w.url)
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	after, _ := w.repo.Head(w.ctx, index.MainRef)
	c := w.client("c", w.url)
	rm, err := Get(c, "origin")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(rm.checkpointPath(c))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.VerifyLine(w.ctx, rm.Line(c), false)
	if err != nil || res.Head != after {
		t.Fatalf("verify: %v at %v, want %s", err, res, after)
	}

	// The attack, past fetch: a fresh checkpoint of an ancestor of the
	// head just verified.
	_, _, err = checkCheckpoint(w.ctx, c, rm, rm.Line(c), old, res, time.Now())
	var ce *CheckpointError
	if !errors.As(err, &ce) || !bytes.Equal(ce.Evidence, old) {
		t.Fatalf("a checkpoint of ancestor %s after verifying %s: err = %v, want a *CheckpointError with the checkpoint", before, after, err)
	}
	for _, want := range []string{"SECURITY ERROR: remote origin", "the checkpoint signs head " + before + ", not " + after + ", the head just verified"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if now, _ := os.ReadFile(rm.checkpointPath(c)); !bytes.Equal(now, kept) {
		t.Fatalf("a refused checkpoint replaced the one kept beside the line")
	}

	// A lock keeps a checkpoint of the head it pinned, which later
	// history contains: that use still accepts an ancestor.
	if _, err := OpenCheckpoint(w.ctx, c, after, w.intro, old); err != nil {
		t.Fatalf("OpenCheckpoint of an ancestor's checkpoint (a lock's): %v", err)
	}
}

// Fetching a line that continues from the verified head, with its
// checkpoint, runs no git merge-base: the replay itself finds a history
// that does not pass through the verified head, and only then is one
// ancestry question asked, to tell a rollback from a fork
// (TestRollbackRefused, TestReplayedOldCheckpointIsRollback, TestSplitView).
func TestPullAsksNoAncestry(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(t.TempDir(), "trace")
	t.Setenv("GIT_TRACE", trace)
	rm, err := Get(c, "origin")
	if err != nil {
		t.Fatal(err)
	}
	p, err := fetch(w.ctx, c, rm, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if head, _ := w.repo.Head(w.ctx, index.MainRef); p.Head != head || p.Commits != 1 || p.Checkpoint == nil || p.Checkpoint.Head != head {
		t.Fatalf("pulled to %s (%d commits), want %s (1)", p.Head, p.Commits, head)
	}
	log, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("fetch")) {
		t.Fatalf("GIT_TRACE recorded no fetch: the trace is not read: %s", log)
	}
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "merge-base") {
			t.Errorf("fetching a line that continues ran %s", strings.TrimSpace(l))
		}
	}
}

// A pull that continues from the head main stands at moves main with no
// git process asking whether main is behind: the replay from that head
// proved it.
func TestPullAdvancesMainWithoutAncestry(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	if _, err := Pull(w.ctx, c, "origin", Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	head, err := w.repo.Head(w.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(t.TempDir(), "trace")
	t.Setenv("GIT_TRACE", trace)
	p, err := Pull(w.ctx, c, "origin", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Head != head || p.Main != "fast-forwarded" {
		t.Fatalf("pulled to %s, main %s; want %s, fast-forwarded", p.Head, p.Main, head)
	}
	if main, _ := c.Head(w.ctx, index.MainRef); main != head {
		t.Fatalf("main at %s, want %s", main, head)
	}
	log, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "merge-base") && strings.Contains(l, head) {
			t.Errorf("moving main ran %s", strings.TrimSpace(l))
		}
	}
}
