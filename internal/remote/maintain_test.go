package remote

import (
	"fmt"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
)

// A replica that pulls after every push (a follower) gets a pack or
// loose objects from each pull, and its fetches run no gc of their own:
// a pull lets git tidy it when git's thresholds say so (git gc --auto),
// so that its object store does not grow with every pull it ever made.
// Here each fetch keeps a pack (fetch.unpackLimit=1) and git's limit is
// lowered to 10 packs (gc.autoPackLimit), which git counts exactly.
func TestPullsLetGitTidy(t *testing.T) {
	w := newWorld(t)
	alice := w.publishLib()
	c := w.client("c", w.url)
	for _, kv := range [][2]string{{"fetch.unpackLimit", "1"}, {"gc.autoPackLimit", "10"}} {
		if _, err := indextest.Git(t, c, "config", kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/lib", fmt.Sprintf("1.0.%d", i+1)), alice); err != nil {
			t.Fatal(err)
		}
		if _, err := Pull(w.ctx, c, "origin", Options{}); err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
	}
	packs, err := filepath.Glob(filepath.Join(indextest.GitDir(t, c), "objects", "pack", "*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	if len(packs) > 11 {
		t.Fatalf("the replica holds %d packs after 31 pulls with gc.autoPackLimit=10", len(packs))
	}
	if out, err := indextest.Git(t, c, "fsck", "--connectivity-only"); err != nil {
		t.Fatalf("git fsck after: %v\n%s", err, out)
	}
}
