package light

import (
	"context"
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
