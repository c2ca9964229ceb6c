package light

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// Attack: a server's tile answers that would take the client's memory —
// a small gzip that inflates to gigabytes, an answer without end — are
// cut at the largest a tile can be; a Retry-After of a day is not
// waited for; a server failing every read ends within tileDeadline.
func TestAttackTileAnswers(t *testing.T) {
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zw.Write(make([]byte, 64<<20)) // 64 MiB of zeros, 64 KiB on the wire
	zw.Close()
	var fails atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/bomb"):
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(bomb.Bytes())
		case strings.HasSuffix(r.URL.Path, "/endless"):
			chunk := make([]byte, 64<<10)
			for range 1 << 12 { // 256 MiB, if nothing stops it
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case strings.HasSuffix(r.URL.Path, "/later"):
			if fails.Add(1) == 1 {
				w.Header().Set("Retry-After", "86400")
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("tile"))
		case strings.HasSuffix(r.URL.Path, "/000"):
			w.Header().Set("Content-Length", "100000")
			w.Write(make([]byte, 100000))
		default:
			http.Error(w, "failing", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	f, err := torchwood.NewTileFetcher(srv.URL+"/log/", torchwood.WithHTTPClient(c.tileHTTP()))
	if err != nil {
		t.Fatal(err)
	}
	fetcher := boundedTiles{f}
	ctx := context.Background()

	for _, path := range []string{"tile/0/bomb", "tile/0/endless"} {
		resp, err := c.tileHTTP().Get(srv.URL + "/log/" + path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !errors.Is(err, errTooLarge) || n > maxHashTile {
			t.Errorf("GET %s: %d bytes read, %v; want it cut at %d bytes", path, n, err, maxHashTile)
		}
	}

	// One that says its length is refused at once, not retried.
	start := time.Now()
	if _, err := fetcher.ReadTiles(ctx, []tlog.Tile{{H: 8, L: 0, N: 0, W: 256}}); err == nil || !strings.Contains(err.Error(), "413") {
		t.Errorf("a tile of 100000 bytes by its Content-Length: %v", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("a tile too long by its Content-Length was retried (%v)", d)
	}
	start = time.Now()
	if data, err := fetcher.ReadEndpoint(ctx, "tile/entries/later"); err != nil || string(data) != "tile" {
		t.Fatalf("a read after a 503 with Retry-After: %q, %v", data, err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("a 503 with Retry-After: 86400 held the read %v", d)
	}

	old := tileDeadline
	tileDeadline = 2 * time.Second
	defer func() { tileDeadline = old }()
	start = time.Now()
	_, err = fetcher.ReadTiles(ctx, []tlog.Tile{{H: 8, L: 0, N: 7, W: 256}})
	if err == nil || !strings.Contains(err.Error(), "did not answer the read of its tiles within 2s") {
		t.Fatalf("a server failing every read: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a server failing every read held it %v", d)
	}
}

// Attack: a checkpoint that trickles in, a byte at a time, above the
// transport's lowest rate: Open gives up after tileDeadline.
func TestAttackCheckpointTrickles(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 1000 {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	old := tileDeadline
	tileDeadline = time.Second
	defer func() { tileDeadline = old }()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client(), Introduction: strings.Repeat("ab", 32)}
	start := time.Now()
	_, err := c.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not whole within 1s") {
		t.Fatalf("a checkpoint trickling in: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a checkpoint trickling in held Open %v", d)
	}
}
