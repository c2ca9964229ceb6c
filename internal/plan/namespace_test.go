package plan

import (
	"fmt"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server/servertest"
)

// Attack: an upstream publishes acme/newthing, a name the organisation
// has not published but whose namespace its root granted one of its keys
// (publish:acme/*). A project resolving through the organisation never
// gets the upstream's acme/newthing: resolution refuses it, and a lock
// that pinned it while the namespace was not the organisation's fails its
// check once it is. Names outside the namespace still come from upstream.
func TestUpstreamNameInsideOrgNamespace(t *testing.T) {
	up := indextest.New(t)
	upURL := servertest.Serve(up)
	up.Grant(up.Publisher, "alice", "publish:libs/*")
	up.Publish(indextest.Package{Name: "acme/newthing", Version: "6.6.6"})
	up.Publish(indextest.Package{Name: "libs/json", Version: "1.0.0"})

	// The organisation's publisher (granted publish:acme/*) is revoked
	// first: acme/ is nobody's namespace there.
	org := indextest.New(t)
	if _, err := author.RevokeKey(org.Ctx, org.Repo, keys.ID(org.Publisher.Public()), "left", org.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := author.DeclareUpstream(org.Ctx, org.Repo, "public", upURL, up.Intro, org.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Sync(org.Ctx, org.Repo, remote.Options{}); err != nil {
		t.Fatal(err)
	}
	w := &world{World: org, project: t.TempDir()}
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, path: %s, introduction: %s}\npackages:\n  acme/newthing: '*'\n  libs/json: ^1\nplatforms: [linux-amd64]\n", org.Dir, org.Intro))
	p, srcs, old, err := w.lock(Options{})
	if err != nil {
		t.Fatalf("before acme/ is the organisation's: %v", err)
	}
	if got := old.Package("acme/newthing"); got == nil || got.Repository != "corp/public" {
		t.Fatalf("acme/newthing before acme/ is the organisation's: %+v", got)
	}
	srcs.Close()

	// The root grants a key publish:acme/*: acme/newthing is internal now,
	// published or not.
	dev := indextest.NewSigner()
	org.Grant(dev, "dev", "publish:acme/*")
	_, srcs, l, err := w.lock(Options{})
	if err == nil {
		t.Fatalf("a project resolved the upstream's acme/newthing through the organisation: %+v", l.Package("acme/newthing"))
	}
	if !strings.Contains(err.Error(), "acme/newthing is published in none of the repositories: it is an internal name of corp, whose upstream namesakes (corp/public) are never used") {
		t.Fatalf("resolving acme/newthing: %v, want it refused as an internal name of corp", err)
	}

	// The lock written before fails its check: judged on the index as it
	// is now, acme/newthing is internal.
	err = Check(w.Ctx, p, old, nil, srcs)
	if err == nil || !strings.Contains(err.Error(), "acme/newthing is an internal name of corp: its upstream namesake in corp/public is never used") {
		t.Fatalf("checking the old lock: %v, want acme/newthing refused", err)
	}

	// Outside acme/, the upstream's packages still resolve.
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, path: %s, introduction: %s}\npackages:\n  libs/json: ^1\nplatforms: [linux-amd64]\n", org.Dir, org.Intro))
	_, _, l, err = w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Package("libs/json"); got == nil || got.Repository != "corp/public" {
		t.Fatalf("libs/json: %+v", got)
	}
}
