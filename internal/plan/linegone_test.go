package plan

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
)

// Attack: two upstreams of an organisation publish one name, which a
// replica refuses as ambiguous. The organisation's server (or a mirror
// in front of it) then answers 404 for one line's checkpoint, as for a
// line never synced. A light client that verified that line before must
// not drop it and take the name from the other upstream: the line
// disappeared, a security error with the checkpoint it verified last. A
// client that never verified the line (every CI job) is refused as well:
// every line the organisation's root declares is required.
func TestLightUpstreamLineGone(t *testing.T) {
	alpha, beta := newWorld(t), newWorld(t) // both publish acme/log
	alphaURL, betaURL := servertest.Serve(alpha.World), servertest.Serve(beta.World)
	org := indextest.New(t)
	if _, err := author.RevokeKey(org.Ctx, org.Repo, keys.ID(org.Publisher.Public()), "acme/ is the upstreams'", org.Root); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, url, intro string }{{"alpha", alphaURL, alpha.Intro}, {"beta", betaURL, beta.Intro}} {
		if _, err := author.DeclareUpstream(org.Ctx, org.Repo, u.name, u.url, u.intro, org.Root); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := remote.Sync(org.Ctx, org.Repo, remote.Options{}); err != nil {
		t.Fatal(err)
	}
	orgURL := servertest.ServeWith(org, server.Options{UpstreamCheckpoint: func(ctx context.Context, u *index.Upstream) ([]byte, string, error) {
		return remote.UpstreamCheckpoint(ctx, org.Repo, u)
	}})
	target, _ := url.Parse(orgURL)
	next := httputil.NewSingleHostReverseProxy(target)
	var drop atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if drop.Load() && strings.HasPrefix(r.URL.Path, "/upstreams/beta/") {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	w := &world{World: org, project: t.TempDir()}
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, url: %s, introduction: %s}\npackages:\n  acme/log: ^1\nplatforms: [linux-amd64]\n", proxy.URL, org.Intro))

	// Both lines served: the name is ambiguous, light as replica.
	cache := t.TempDir()
	_, _, _, err := w.lock(Options{Cache: cache})
	ambiguous := func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "acme/log is published by upstreams alpha, beta")
	}
	if !ambiguous(err) {
		t.Fatalf("acme/log from two upstreams: %v, want it refused as ambiguous", err)
	}

	// Line beta answers 404: the client that verified it refuses.
	drop.Store(true)
	_, _, l, err := w.lock(Options{Cache: cache})
	var ge *light.GoneError
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), "repository corp: upstream beta: ") || !strings.Contains(err.Error(), "SECURITY ERROR") || !strings.Contains(ge.Error(), "cairn.dev/index/"+beta.Intro) {
		t.Fatalf("a line verified before answers 404: err %v, plan %v; want a security error naming upstream beta with its checkpoint", err, l)
	}
	// Offline, the line kept is read: still ambiguous.
	if _, _, _, err := w.lock(Options{Cache: cache, Offline: true}); !ambiguous(err) {
		t.Fatalf("offline after the line answered 404: %v, want ambiguous", err)
	}
	// A client that never verified beta (every CI job) is refused too:
	// left out, beta would hand acme/log to alpha.
	fresh := t.TempDir()
	_, _, l, err = w.lock(Options{Cache: fresh})
	var me *light.MissingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "repository corp: upstream beta: ") || !strings.Contains(err.Error(), "SECURITY ERROR") || !strings.Contains(err.Error(), "run `cairn sync` on the server") {
		t.Fatalf("a new client, line beta answers 404: err %v, plan %v; want a security error naming upstream beta", err, l)
	}
	// Offline, that client (the organisation's checkpoint kept, beta's
	// never read) is refused as well, not handed alpha's.
	_, _, l, err = w.lock(Options{Cache: fresh, Offline: true})
	if err == nil || !strings.Contains(err.Error(), "upstream beta: ") || !strings.Contains(err.Error(), "never read online") {
		t.Fatalf("offline, line beta never read: err %v, plan %v; want it refused", err, l)
	}
}
