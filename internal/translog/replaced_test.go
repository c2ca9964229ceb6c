package translog

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// A log another process replaced whole (index.Repo.install renames a
// recomputed log's directory over the line's) is read, after Reload,
// from the new directory's hashes, not from the hashes file this Log
// opened in the old one: the new state with the old hashes would be a
// tree the file cannot give ("stored hash N is past the end").
func TestReloadAfterDirectoryReplaced(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "log")
	w := openLog(t, dir)
	grow(t, w, 0, 10, "a")
	w.Close()

	reader := openLog(t, dir) // a server's, open for its life
	if reader.Size() != 10 {
		t.Fatalf("reader: size %d", reader.Size())
	}

	// Another process computes the log afresh beside it and renames it in.
	fresh := filepath.Join(root, ".log.new")
	f := openLog(t, fresh)
	grow(t, f, 0, 700, "b")
	f.Close()
	old := filepath.Join(root, "log.old")
	if err := os.Rename(dir, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fresh, dir); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(old)

	if err := reader.Reload(); err != nil {
		t.Fatalf("Reload after the directory was replaced: %v", err)
	}
	if reader.Size() != 700 || reader.Head() != "b" {
		t.Fatalf("after Reload: size %d, head %q; want 700, b", reader.Size(), reader.Head())
	}
	var ref memTree
	for i := int64(0); i < 700; i++ {
		ref.add(i, testEntry(i).Text())
	}
	want, _ := tlog.TreeHash(700, ref)
	got, err := reader.TreeHash(700)
	if err != nil {
		t.Fatalf("TreeHash(700) after the directory was replaced: %v", err)
	}
	if got != want {
		t.Fatalf("TreeHash(700) = %v, want %v", got, want)
	}
	if _, err := reader.ProveRecord(650, 700); err != nil {
		t.Fatalf("ProveRecord after the directory was replaced: %v", err)
	}
}
