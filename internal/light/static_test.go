package light_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/blob/fileblob"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server/servertest"
)

// paths records the paths a server was asked for.
type paths struct {
	mu   sync.Mutex
	seen []string
}

func (p *paths) add(s string) { p.mu.Lock(); p.seen = append(p.seen, s); p.mu.Unlock() }

func (p *paths) with(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.seen {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func watched(t *testing.T, h http.Handler) (string, *paths) {
	p := &paths{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.add(r.URL.Path)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, p
}

// A light client given the server's log published as static files
// (cairn log publish, behind a CDN) reads every tile there: the server
// sees no tile request, only the checkpoint and the light reads. A copy
// that lags the server's checkpoint is made up for by the server.
func TestLightTilesFromStaticCopy(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	w.Audit("acme/fastjson", "1.0.0")
	honest := servertest.Serve(w)
	target, _ := url.Parse(honest)
	serverURL, server := watched(t, httputil.NewSingleHostReverseProxy(target))
	dir := t.TempDir()
	staticURL, static := watched(t, http.FileServer(http.Dir(dir)))
	bucket, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	publish := func() {
		t.Helper()
		// The checkpoint the server signed, with the tiles of its tree.
		if _, _, err := get(honest + "/log/checkpoint"); err != nil {
			t.Fatal(err)
		}
		if _, err := remote.PublishLog(context.Background(), w.Repo, bucket, dir, remote.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	publish()

	c := newClient(w, serverURL, t.TempDir())
	c.TilesURL = staticURL
	v, err := c.OpenPrefetch(context.Background(), "package acme/fastjson")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Catalog(); err != nil {
		t.Fatal(err)
	}
	if n := server.with("/log/tile/"); n != 0 {
		t.Fatalf("the server was asked for %d tiles: %v", n, server.seen)
	}
	if static.with("/tile/") == 0 || server.with("/log/checkpoint") == 0 {
		t.Fatalf("the static copy served %v, the server %v", static.seen, server.seen)
	}

	// The server moves on; the copy does not (yet).
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.1.0"})
	v, err = c.OpenPrefetch(context.Background(), "package acme/fastjson")
	if err != nil {
		t.Fatalf("with a copy behind the server: %v", err)
	}
	if _, err := v.Catalog(); err != nil {
		t.Fatalf("the catalog read with a lagging copy: %v", err)
	}
	if head, _ := w.Repo.Head(context.Background(), index.MainRef); v.Checkpoint.Head != head {
		t.Fatalf("the view is at %s, the server at %s", v.Checkpoint.Head, head)
	}
	if server.with("/log/tile/") == 0 {
		t.Fatal("the tiles the copy lacks were not read from the server")
	}
}
