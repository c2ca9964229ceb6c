package light

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server/servertest"
)

// A view opened while an earlier view of the same repository, in the
// same process, is still keeping what it read waits for those keeps
// (waitKept), so that it reads what they keep: OpenOffline right after
// OpenPrefetch, with no Kept between and the keeps held back, waits for
// them and then reads the package kept.
func TestOpenWaitsForEarlierKeeps(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	url := servertest.Serve(w)
	dir := t.TempDir()
	ctx := context.Background()

	released := make(chan struct{})
	held := &Client{BaseURL: url, Introduction: w.Intro, StateDir: dir, keepGate: func() { <-released }}
	v, err := held.OpenPrefetch(ctx, "package acme/log")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Kept()
	const hold = 200 * time.Millisecond
	start := time.Now()
	time.AfterFunc(hold, func() { close(released) })

	off, err := (&Client{BaseURL: url, Introduction: w.Intro, StateDir: dir}).OpenOffline(ctx)
	if err != nil {
		t.Fatalf("OpenOffline while the first view's keeps were held: %v (it must wait for them)", err)
	}
	if waited := time.Since(start); waited < hold {
		t.Fatalf("OpenOffline returned after %v, before the first view's keeps were released (%v)", waited, hold)
	}
	files, err := off.Subject(ctx, "package acme/log")
	if err != nil || len(files) == 0 {
		t.Fatalf("acme/log offline, after the keeps: %d files, %v", len(files), err)
	}
}

// The checkpoint stored is stored again only when it changes: opened
// again at the very checkpoint (the server signed no other since), the
// stored file stays as it is (no write, no sync); opened at a new one,
// it is replaced, and OpenOffline reads the new one.
func TestStoredCheckpointWrittenWhenNew(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	url := servertest.Serve(w)
	dir := t.TempDir()
	ctx := context.Background()
	c := &Client{BaseURL: url, Introduction: w.Intro, StateDir: dir}
	open := func() (os.FileInfo, *View) {
		t.Helper()
		v, err := c.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v.Kept()
		fi, err := os.Stat(c.statePath())
		if err != nil {
			t.Fatal(err)
		}
		return fi, v
	}
	first, v1 := open()
	again, v2 := open()
	if !bytes.Equal(v1.Note, v2.Note) {
		t.Fatalf("the server signed another checkpoint between two reads:\n%s\n%s", v1.Note, v2.Note)
	}
	if !os.SameFile(first, again) {
		t.Errorf("the same checkpoint was stored again (the file was replaced)")
	}
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	newer, v3 := open()
	if v3.Checkpoint.Size <= v1.Checkpoint.Size || os.SameFile(first, newer) {
		t.Fatalf("after a publish: size %d (was %d), file replaced %v; want a larger tree stored", v3.Checkpoint.Size, v1.Checkpoint.Size, !os.SameFile(first, newer))
	}
	off, err := c.OpenOffline(ctx)
	if err != nil || !bytes.Equal(off.Note, v3.Note) {
		t.Fatalf("offline after the new checkpoint: %v; note %q, want the new one", err, off.Note)
	}
}
