package remote

import (
	"testing"

	"cairn.dev/cairn/internal/author"
)

// TestProgress: a push says it fetches, then how many of its blobs are
// uploaded; a pull says it fetches, then how many commits of all are
// verified, ending with all of them.
func TestProgress(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	other := w.client("other", w.url) // pulls after the push
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	var pushed []Progress
	if _, err := Push(w.ctx, c, "origin", alice, Options{Progress: func(p Progress) { pushed = append(pushed, p) }}); err != nil {
		t.Fatal(err)
	}
	up := "uploading blobs to " + w.url
	if len(pushed) < 3 || pushed[0] != (Progress{Step: "fetching remote origin"}) ||
		pushed[len(pushed)-1] != (Progress{Step: up, Done: 2, Total: 2}) {
		t.Fatalf("push reported %+v; want fetching, then %q up to 2 of 2 (the descriptor and the source)", pushed, up)
	}

	var pulled []Progress
	p, err := Pull(w.ctx, other, "origin", Options{Progress: func(p Progress) { pulled = append(pulled, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled) < 2 || pulled[0] != (Progress{Step: "fetching remote origin"}) ||
		pulled[len(pulled)-1] != (Progress{Step: "verifying remote origin", Done: p.Commits, Total: p.Commits}) || p.Commits == 0 {
		t.Fatalf("pull of %d commits reported %+v; want fetching, then verifying up to all", p.Commits, pulled)
	}
}
