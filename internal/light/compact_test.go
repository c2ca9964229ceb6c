package light_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/translog"
)

// The light client asks for batches in the compact encoding, and a
// server answers in it: a third fewer bytes than JSON for the same
// documents and proofs.
func TestBatchCompact(t *testing.T) {
	w := indextest.New(t)
	names := packages(3)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	var mu sync.Mutex
	var media []string
	target, _ := url.Parse(servertest.Serve(w))
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path == "/api/v1/log/subjects" {
			mu.Lock()
			media = append(media, r.Header.Get("Content-Type"))
			mu.Unlock()
		}
		return nil
	}
	ts := httptest.NewServer(p)
	defer ts.Close()
	dir := t.TempDir()
	v := open(t, newClient(w, ts.URL, dir))
	v.Prefetch(context.Background(), "package acme/p0", "package acme/p1", "package acme/p2")
	showAll(t, v, names)
	if len(media) == 0 || media[0] != translog.SubjectsMedia {
		t.Fatalf("batches answered as %q, want %s", media, translog.SubjectsMedia)
	}
	// Kept as read, and read offline from there.
	off, err := newClient(w, ts.URL, dir).OpenOffline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	showAll(t, off, names)
}

// Attack: a compact batch whose bytes were cut short (or whose lengths
// run past its end) proves nothing: the batch is refused whole, and
// each subject is read again alone and proved; what is kept offline is
// what those reads proved.
func TestBatchCompactGarbled(t *testing.T) {
	w := indextest.New(t)
	names := packages(3)
	for _, name := range names {
		w.Publish(indextest.Package{Name: name, Version: "1.0.0"})
	}
	front, reads := counted(t, servertest.Serve(w), nil)
	target, _ := url.Parse(front)
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(r *http.Response) error {
		if r.Header.Get("Content-Type") != translog.SubjectsMedia {
			return nil
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		r.Body.Close()
		body = body[:len(body)-40]
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		r.Header.Del("Content-Length")
		return nil
	}
	ts := httptest.NewServer(p)
	defer ts.Close()
	dir := t.TempDir()
	v := open(t, newClient(w, ts.URL, dir))
	v.Prefetch(context.Background(), "package acme/p0", "package acme/p1", "package acme/p2")
	if reads.n("/api/v1/log/subjects") == 0 {
		t.Fatal("no batch read")
	}
	before := reads.n("/api/v1/log/subject")
	showAll(t, v, names)
	if n := reads.n("/api/v1/log/subject") - before; n < len(names) {
		t.Fatalf("%d single reads after a garbled batch, want the %d packages read again", n, len(names))
	}
	off, err := newClient(w, ts.URL, dir).OpenOffline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// What was kept is what the single reads proved, not the batch.
	showAll(t, off, names)

}
