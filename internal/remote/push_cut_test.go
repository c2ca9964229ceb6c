package remote

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
)

// A push whose connection is cut after the server landed it (the server
// restarted, a proxy timed out) is an UncertainPushError saying so, with
// a hint to push again — not git's bare "RPC failed" — and pushing again
// finds the commits on the remote's main and succeeds.
func TestPushCutAfterItLanded(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	writer, _ := url.Parse(w.url)
	proxy := httputil.NewSingleHostReverseProxy(writer)
	var cut atomic.Bool
	cut.Store(true)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") && cut.Load() {
			// The push reaches the writer whole, which checks and lands
			// it; its answer never reaches the client.
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			io.Copy(io.Discard, rec.Result().Body)
			conn, _, err := rw.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	defer front.Close()

	c := w.client("laptop", front.URL)
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	local, _ := c.Head(w.ctx, index.MainRef)
	_, err := Push(w.ctx, c, "origin", alice, Options{})
	var ue *UncertainPushError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "may have landed or not") || !strings.Contains(ue.Hint(), "run cairn push again") {
		t.Fatalf("a push cut after it landed: %v, want an UncertainPushError", err)
	}
	if got, _ := w.repo.Head(w.ctx, index.MainRef); got != local {
		t.Fatalf("the writer is at %s, want the pushed %s (the push landed)", got, local)
	}
	cut.Store(false)
	p, err := Push(w.ctx, c, "origin", alice, Options{})
	if err != nil || p.Head != local || p.Commits != 0 {
		t.Fatalf("pushing again: %+v, %v; want nothing to push at %s", p, err, local)
	}
}
