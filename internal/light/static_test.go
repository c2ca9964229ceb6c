package light_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/blob/fileblob"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/light"
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
	v.Kept()
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
	v.Kept()
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

// Attack: the static copy of the log (a CDN, an object store anyone
// with its credentials writes) is trusted no more than a mirror. A tile
// changed there, or an HTML error page a CDN answers with 200, must not
// stop a light client whose server is honest, nor blame the server: the
// client refuses the copy's tile with a warning naming the copy, and
// reads the tile from the server. Only a server whose own tile is bad
// is a security error about the server.
func TestTamperedStaticTileFallsBackToServer(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	honest := servertest.Serve(w)
	target, _ := url.Parse(honest)
	serverURL, server := watched(t, httputil.NewSingleHostReverseProxy(target))
	dir := t.TempDir()
	bucket, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	if _, _, err := get(honest + "/log/checkpoint"); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.PublishLog(context.Background(), w.Repo, bucket, dir, remote.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	// Flip a byte in every published tile: the copy is bad.
	filepath.WalkDir(filepath.Join(dir, "tile"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		data[len(data)/2] ^= 1
		return os.WriteFile(p, data, 0o644)
	})
	tampered, _ := watched(t, http.FileServer(http.Dir(dir)))
	html, _ := watched(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body>503 Service Unavailable</body></html>")
	}))
	for _, copyURL := range []string{tampered, html} {
		var mu sync.Mutex
		var warned []string
		c := newClient(w, serverURL, t.TempDir())
		c.TilesURL = copyURL
		c.Warn = func(msg string) { mu.Lock(); warned = append(warned, msg); mu.Unlock() }
		before := server.with("/log/tile/")
		v, err := c.OpenPrefetch(context.Background(), "package acme/fastjson")
		if err == nil {
			v.Kept()
			_, err = v.Catalog()
		}
		if err != nil {
			t.Fatalf("an honest server, a bad static copy (%s): the read failed: %v", copyURL, err)
		}
		if server.with("/log/tile/") == before {
			t.Fatalf("the copy's bad tiles were not read from the server instead")
		}
		mu.Lock()
		if len(warned) == 0 || !strings.Contains(warned[0], copyURL) || !strings.Contains(warned[0], "cairn log publish --check") {
			t.Errorf("the copy's bad tile: warnings %q, want one naming %s and the command that mends it", warned, copyURL)
		}
		mu.Unlock()
	}

	// A copy whose hash tiles were cut short is named with the tile's
	// path on the copy and its length (it said "TileReader returned bad
	// result slice (tile/8/0/…)", the library's words and another path);
	// one that lacks them (a copy published before the server's tree)
	// is read around quietly.
	publish := func() string {
		d := t.TempDir()
		b, err := fileblob.OpenBucket(d, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := remote.PublishLog(context.Background(), w.Repo, b, d, remote.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cut, gone := publish(), publish()
	for _, d := range []string{cut, gone} {
		filepath.WalkDir(filepath.Join(d, "tile", "0"), func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			if d == gone {
				return os.Remove(p)
			}
			data, _ := os.ReadFile(p)
			return os.WriteFile(p, data[:len(data)/2+1], 0o644)
		})
	}
	for _, c := range []struct {
		dir, want string
	}{{cut, "tile/0/000.p/"}, {gone, ""}} {
		copyURL, _ := watched(t, http.FileServer(http.Dir(c.dir)))
		var mu sync.Mutex
		var warned []string
		cl := newClient(w, serverURL, t.TempDir())
		cl.TilesURL = copyURL
		cl.Warn = func(msg string) { mu.Lock(); warned = append(warned, msg); mu.Unlock() }
		v, err := cl.OpenPrefetch(context.Background(), "package acme/fastjson")
		if err == nil {
			v.Kept()
			_, err = v.Catalog()
		}
		if err != nil {
			t.Fatalf("an honest server, a copy with tiles cut or missing: %v", err)
		}
		mu.Lock()
		switch {
		case c.want == "" && len(warned) > 0:
			t.Errorf("a copy that lacks tiles: warnings %q, want none", warned)
		case c.want != "" && (len(warned) == 0 || !strings.Contains(warned[0], c.want) || !strings.Contains(warned[0], " bytes, not ") || strings.Contains(warned[0], "tile/8/") || strings.Contains(warned[0], "TileReader")):
			t.Errorf("a copy with tiles cut short: warnings %q, want one naming %s… and its length", warned, c.want)
		}
		mu.Unlock()
	}

	// The server's own tiles bad too: a security error about the server.
	bad, _ := watched(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/log/tile/") {
			httputil.NewSingleHostReverseProxy(target).ServeHTTP(rw, r)
			return
		}
		resp, err := http.Get(honest + r.URL.Path)
		if err != nil {
			http.Error(rw, err.Error(), 502)
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(data) > 0 {
			data[len(data)/2] ^= 1
		}
		rw.Write(data)
	}))
	c := newClient(w, bad, t.TempDir())
	c.TilesURL = tampered
	c.Warn = func(string) {}
	v, err := c.OpenPrefetch(context.Background(), "package acme/fastjson")
	if err == nil {
		v.Kept()
		_, err = v.Catalog()
	}
	var pe *light.ProofError
	if !errors.As(err, &pe) || pe.URL != bad {
		t.Fatalf("the copy's and the server's tiles both bad: %v; want a ProofError about %s", err, bad)
	}
}
