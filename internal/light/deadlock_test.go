package light_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/server/servertest"
)

// Attack: a server (or a man in the middle) that changes the root's
// document in every batch answer, the batch in which Open reads the root
// and the checkpoint's key together. The key, proved, needs the root,
// which its own batch refused: Open must refuse, naming the root, and
// not wait for the root's load its own batch holds (it hung, for good).
func TestAttackRootChangedInItsBatch(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	for _, everywhere := range []bool{false, true} {
		url := tamper(t, servertest.Serve(w), func(path string, _ http.Header, body []byte) []byte {
			return editDocs(path, body, everywhere, func(d subjectDoc) subjectDoc {
				if d.Subject == "root" && len(d.Files) > 0 {
					var f map[string]any
					json.Unmarshal(d.Files[0], &f)
					f["index"] = f["index"].(float64) + 1
					d.Files[0], _ = json.Marshal(f)
				}
				return d
			})
		})
		c := newClient(w, url, t.TempDir())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := make(chan error, 1)
		go func() {
			v, err := c.OpenPrefetch(ctx, "package acme/log")
			if err == nil {
				_, err = v.Subject(ctx, "package acme/log")
				v.Kept()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if everywhere {
				wantProofError(t, err, `subject "root"`)
			} else if err != nil {
				// The root read again alone, unchanged, proves.
				t.Errorf("the root changed in batches only (read again alone): %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("the root changed in its batch (everywhere: %v): Open has not returned after 15 s", everywhere)
		}
		cancel()
	}
}

// Attack: answers without end. A checkpoint's answer is refused past
// maxCheckpointAnswer, unread, saying so (not as a malformed note after
// reading all of it); a batch's past maxBatchAnswer, its subjects then
// read one by one.
func TestAttackEndlessAnswers(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	target := servertest.Serve(w)
	endless := func(path string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, path) {
				proxyTo(t, target).ServeHTTP(rw, r)
				return
			}
			chunk := []byte(strings.Repeat("A", 1<<16))
			for range (80 << 20) / len(chunk) {
				if _, err := rw.Write(chunk); err != nil {
					return
				}
			}
		})
	}
	ckpt := httptest.NewServer(endless("/log/checkpoint"))
	t.Cleanup(ckpt.Close)
	_, err := newClient(w, ckpt.URL, t.TempDir()).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "an answer of more than 1048576 bytes: refused unread") {
		t.Fatalf("an endless checkpoint: %v", err)
	}
	batch := httptest.NewServer(endless("/api/v1/log/subjects"))
	t.Cleanup(batch.Close)
	v, err := newClient(w, batch.URL, t.TempDir()).OpenPrefetch(context.Background(), "package acme/log")
	if err != nil {
		t.Fatalf("endless batches, subjects read one by one: %v", err)
	}
	defer v.Kept()
	if files, err := v.Subject(context.Background(), "package acme/log"); err != nil || len(files) == 0 {
		t.Fatalf("acme/log after endless batches: %d files, %v", len(files), err)
	}
}

// proxyTo is a reverse proxy to target.
func proxyTo(t *testing.T, target string) http.Handler {
	u, err := neturl.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}

// Attack: a server (or a bundle replayed as one) that answers 410 Gone
// for every subject read at the tree it signs. A read that meets it opens
// the checkpoint again, once; the Open it starts meets it too and must
// not open again in turn (it did, without end: memory grew by gigabytes
// and signals went unheeded). Open refuses, saying the server does not
// answer at the tree it signed.
func TestAttackGoneAtEveryTree(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	target, _ := neturl.Parse(servertest.Serve(w))
	proxy := httputil.NewSingleHostReverseProxy(target)
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/log/subject") {
			http.Error(rw, "not answered at this tree any more", http.StatusGone)
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(ts.Close)
	c := newClient(w, ts.URL, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		v, err := c.OpenPrefetch(ctx, "package acme/log")
		if err == nil {
			v.Kept()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, light.ErrMoved) || !strings.Contains(err.Error(), "does not answer at the tree of size") {
			t.Fatalf("a server gone at every tree it signs: %v, want ErrMoved saying it does not answer at its tree", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a server gone at every tree it signs: Open has not returned after 15 s")
	}
}

// A server that answers its log's entry bundles but not its hash tiles
// (404, 500, gone): nothing arrived to check, so nothing is proved
// wrong. The client fails, saying the server did not serve the tiles,
// and raises no security error (it did: "SECURITY ERROR: ... its tiles
// are not that tree's", exit 3).
func TestHashTilesNotServed(t *testing.T) {
	w := indextest.New(t)
	for i := range 100 {
		w.Publish(indextest.Package{Name: fmt.Sprintf("acme/p%d", i), Version: "1.0.0"})
	}
	target, _ := neturl.Parse(servertest.Serve(w))
	proxy := httputil.NewSingleHostReverseProxy(target)
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/log/tile/") && !strings.HasPrefix(r.URL.Path, "/log/tile/entries/") {
			http.NotFound(rw, r)
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(ts.Close)
	_, err := newClient(w, ts.URL, t.TempDir()).Open(context.Background())
	var pe *light.ProofError
	var ie *light.InconsistentError
	if !errors.Is(err, light.ErrUnavailable) || errors.As(err, &pe) || errors.As(err, &ie) {
		t.Fatalf("hash tiles not served: %v; want ErrUnavailable, no proof or consistency error", err)
	}
}
