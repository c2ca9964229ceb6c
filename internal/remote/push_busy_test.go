package remote

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
)

// busyFront is a real HTTP server in front of a cairn server, as a load
// balancer would be: it answers the first `busy` blob uploads (every one
// if busy < 0) 503 with Retry-After, and passes everything else on. It
// keeps the time of each upload it sees.
type busyFront struct {
	mu      sync.Mutex
	busy    int
	perBlob int // if > 0, each blob's first perBlob uploads are answered busy
	after   string
	puts    []time.Time
	tries   map[string]int
}

func (b *busyFront) serve(t *testing.T, backend string) string {
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/blobs/") {
			b.mu.Lock()
			b.puts = append(b.puts, time.Now())
			refuse := b.busy != 0
			if b.busy > 0 {
				b.busy--
			}
			if b.perBlob > 0 {
				if b.tries == nil {
					b.tries = map[string]int{}
				}
				b.tries[r.URL.Path]++
				refuse = b.tries[r.URL.Path] <= b.perBlob
			}
			b.mu.Unlock()
			if refuse {
				w.Header().Set("Retry-After", b.after)
				http.Error(w, "the server is busy: try again in a moment", http.StatusServiceUnavailable)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func (b *busyFront) times() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.puts...)
}

// A server that answers an upload 503 with Retry-After: 1 is asked
// again after about that second, not at once, and the push lands.
func TestPushUploadHonoursRetryAfter(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	front := &busyFront{busy: 1, after: "1"}
	c := w.client("c", front.serve(t, w.url))
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/busy", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	p, err := Push(w.ctx, c, "origin", alice, Options{})
	if err != nil {
		t.Fatalf("a push to a server busy once: %v", err)
	}
	if p.Commits != 1 || p.Uploaded == 0 {
		t.Fatalf("pushed %d commit(s), %d blob(s); want 1 commit and its blobs", p.Commits, p.Uploaded)
	}
	puts := front.times()
	if len(puts) < 2 {
		t.Fatalf("%d upload(s) reached the server, want the refused one and its retry", len(puts))
	}
	if gap := puts[1].Sub(puts[0]); gap < 900*time.Millisecond {
		t.Fatalf("the upload was retried %s after a 503 with Retry-After: 1; want about a second", gap)
	}
}

// A server that stays busy ends the push after one bounded budget of
// waits, with a "server busy" error that is neither a refusal nor a lost
// race.
func TestPushServerStaysBusy(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	defer func(n int, d time.Duration) { maxPushAttempts, maxPushWait = n, d }(maxPushAttempts, maxPushWait)
	maxPushAttempts, maxPushWait = 3, 10*time.Second
	front := &busyFront{busy: -1, after: "0"}
	c := w.client("c", front.serve(t, w.url))
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/busy", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	_, err := Push(w.ctx, c, "origin", alice, Options{})
	var pe *PushError
	if err == nil || errors.As(err, &pe) || errors.Is(err, ErrRaceLost) || errors.Is(err, blob.ErrRefused) {
		t.Fatalf("a push to a server that stays busy: err = %v, want a busy error, no refusal nor lost race", err)
	}
	if !errors.Is(err, blob.ErrBusy) || !strings.Contains(err.Error(), "server busy") {
		t.Fatalf("err = %v, want blob.ErrBusy saying \"server busy\"", err)
	}
	if n := len(front.times()); n != maxPushAttempts+1 {
		t.Fatalf("%d uploads tried, want %d: the first and one per retry of the push's budget", n, maxPushAttempts+1)
	}
	if ra, ok := blob.Busy(err); !ok || ra != 0 {
		t.Fatalf("blob.Busy(err) = %v, %v; want the server's Retry-After: 0", ra, ok)
	}
}

// A Retry-After longer than what is left of the push's budget ends the
// push at once, saying how long the server asked for.
func TestPushRetryAfterBeyondBudget(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	defer func(d time.Duration) { maxPushWait = d }(maxPushWait)
	maxPushWait = 2 * time.Second
	front := &busyFront{busy: -1, after: "3600"}
	c := w.client("c", front.serve(t, w.url))
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/busy", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Push(w.ctx, c, "origin", alice, Options{}); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, blob.ErrBusy) || !strings.Contains(err.Error(), "1h0m0s") {
			t.Fatalf("err = %v, want a busy error naming the server's Retry-After (1h0m0s)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the push still waits 5 s after a Retry-After beyond its budget")
	}
	if n := len(front.times()); n != 1 {
		t.Fatalf("%d uploads tried, want 1", n)
	}
}

// One push has one budget of retries, whatever they are for: a server
// busy twice for each of a version's blobs spends a budget of three
// retries (the upload loop does not get a budget of its own per blob).
func TestPushBudgetIsShared(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	defer func(n int) { maxPushAttempts = n }(maxPushAttempts)
	maxPushAttempts = 3
	front := &busyFront{perBlob: 2, after: "0"}
	c := w.client("c", front.serve(t, w.url))
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/busy", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	_, err := Push(w.ctx, c, "origin", alice, Options{})
	if !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("err = %v, want a busy error once the push's 3 retries are spent", err)
	}
	// The first blob: busy, busy, stored (2 retries); the second: busy,
	// retried (the third), busy: spent.
	if n := len(front.times()); n != 5 {
		t.Fatalf("%d uploads tried, want 5: one budget of 3 retries for the whole push", n)
	}
}
