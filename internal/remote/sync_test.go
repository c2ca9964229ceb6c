package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
)

// A sync cut while it runs (a server shutting down cancels its context)
// still reports every upstream it reached, with what happened to it:
// before, a name check failing on the cancelled context dropped the
// whole report, and the server never logged what its last sync did.
func TestSyncReportsEachUpstreamWhenCut(t *testing.T) {
	pub := newWorld(t)
	writer := newSigner(t)
	pub.grant(writer, "author", "publish:*")
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "libs/json", "1.0.0"), writer); err != nil {
		t.Fatal(err)
	}
	org := newWorld(t)
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", pub.url, pub.intro, org.root); err != nil {
		t.Fatal(err)
	}
	if res, err := Sync(org.ctx, org.repo, Options{}); err != nil || len(res) != 1 || res[0].Pulled == nil {
		t.Fatalf("first sync: %+v, %v", res, err)
	}

	ctx, cancel := context.WithCancel(org.ctx)
	cancel()
	res, err := Sync(ctx, org.repo, Options{})
	if len(res) != 1 || res[0].Upstream != "public" || res[0].Error == "" {
		t.Fatalf("sync on a cancelled context reports %+v, want upstream public, not synced", res)
	}
	var se *SyncError
	if !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
		t.Fatalf("sync on a cancelled context: %v, want a *SyncError wrapping context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "checking its names") {
		t.Errorf("sync error %q does not say the names went unchecked", err)
	}
}

// An upstream's errors name it once: a rolled-back upstream is "SECURITY
// ERROR: upstream public (URL) rolled back …", not prefixed again with
// "upstream public: " by the sync (before: both).
func TestSyncErrorNamesUpstreamOnce(t *testing.T) {
	pub := newWorld(t)
	writer := newSigner(t)
	pub.grant(writer, "author", "publish:*")
	before, _ := pub.repo.Head(pub.ctx, index.MainRef)
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "libs/json", "1.0.0"), writer); err != nil {
		t.Fatal(err)
	}
	org := newWorld(t)
	// The upstream's address, behind which its operator may put another
	// server.
	var (
		mu     sync.Mutex
		target = pub.url
	)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		u, _ := url.Parse(target)
		mu.Unlock()
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(rw, r)
	}))
	defer front.Close()
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", front.URL, pub.intro, org.root); err != nil {
		t.Fatal(err)
	}
	if _, err := Sync(org.ctx, org.repo, Options{}); err != nil {
		t.Fatal(err)
	}
	// Rolled back, and served again with no memory of the checkpoints it
	// signed (a restored backup).
	if _, err := indextest.Git(t, pub.repo, "update-ref", index.MainRef, before); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(pub.repo.LocalDir(), "verified.json"))
	os.Remove(filepath.Join(pub.repo.LocalDir(), "checkpoint"))
	restored := pub.serve(pub.repo)
	mu.Lock()
	target = restored
	mu.Unlock()
	pub.url = front.URL
	res, err := Sync(org.ctx, org.repo, Options{})
	if !errors.Is(err, ErrRollback) {
		t.Fatalf("sync of a rolled-back upstream: %v, want ErrRollback", err)
	}
	want := "SECURITY ERROR: upstream public (" + pub.url + ") rolled back"
	if !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), "upstream public") != 1 {
		t.Errorf("sync error %q: want it to start %q and name the upstream once", err, want)
	}
	if len(res) != 1 || res[0].Error != err.Error() {
		t.Errorf("sync reports %+v, want the same error", res)
	}
}
