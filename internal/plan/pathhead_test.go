package plan

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
)

// Attack: an index on disk (path:) whose main is moved back to before a
// record, with the index's own verified.json removed beside it (both by
// whoever may move main, on a shared mount), verified from the
// introduction and was taken, the record gone. The machine keeps the
// head it verified there in its cache, and refuses a main that does not
// descend from it, naming both; a main that moved on is taken.
func TestPathIndexRolledBack(t *testing.T) {
	w := newWorld(t)
	w.write("cairn.yaml", w.projectFile("packages:\n  acme/log: ^1.0\nplatforms: [linux-amd64]\n"))
	cache := t.TempDir()
	before, err := w.Repo.Head(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "high"}) // the record a rollback would hide
	if _, _, _, err := w.lock(Options{Cache: cache}); err != nil {
		t.Fatal(err)
	}
	verified, _ := w.Repo.Head(w.Ctx, index.MainRef)

	// Moved back, the index's own memory of it removed.
	w.Repo.Close()
	if out, err := exec.Command("git", "--git-dir", indextest.GitDir(t, w.Repo), "update-ref", "refs/heads/main", before).CombinedOutput(); err != nil {
		t.Fatalf("update-ref: %v\n%s", err, out)
	}
	os.Remove(w.Repo.Main().Marker)
	os.RemoveAll(w.Repo.Main().LogDir())
	_, _, _, err = w.lock(Options{Cache: cache})
	var fe *index.ForkError
	if !errors.As(err, &fe) || fe.Verified != verified || fe.Head != before || !strings.Contains(err.Error(), "whatever the index's own verified.json says") || !strings.Contains(err.Error(), "if it was moved back on purpose — a restore, a submodule at an older revision — remove that file") {
		t.Fatalf("lock of the rolled-back index: %v, want a fork from %s to %s", err, verified, before)
	}
	// Another machine (another cache) never saw the later head: it
	// takes the index as it finds it, as anyone would.
	if _, _, _, err := w.lock(Options{Cache: t.TempDir()}); err != nil {
		t.Fatalf("a machine that never saw the later head: %v", err)
	}

	// Put back, and moved on: taken, and the head kept moves on.
	if out, err := exec.Command("git", "--git-dir", indextest.GitDir(t, w.Repo), "update-ref", "refs/heads/main", verified).CombinedOutput(); err != nil {
		t.Fatalf("update-ref: %v\n%s", err, out)
	}
	os.Remove(w.Repo.Main().Marker)
	if _, _, _, err := w.lock(Options{Cache: cache}); err != nil {
		t.Fatalf("the index put back: %v", err)
	}
	kept, _ := filepath.Glob(filepath.Join(cache, "paths", "*.json"))
	if len(kept) != 1 {
		t.Fatalf("heads kept: %v", kept)
	}
	if data, _ := os.ReadFile(kept[0]); !strings.Contains(string(data), verified) {
		t.Fatalf("the head kept: %s, want %s", data, verified)
	}
}
