package remote

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
)

// Attack: anonymous requests for a tree of a size nobody announced
// (GET /api/v1/log/subject?size=999999999) must not make the replica pull
// from its writer once each: one pull answers them all, and once it has
// verified without that tree the reads are answered at once (503), not
// held. Counted on a real writer, behind a real proxy that counts its
// pulls (each reads the writer's checkpoint).
func TestReplicaReadsOfUnknownTreeDoNotPullEach(t *testing.T) {
	var pulls atomic.Int64
	w, h1, front := writerBehind(t, func(rw http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/api/v1/checkpoint" {
			pulls.Add(1)
		}
		return false
	})
	rep := w.newReplica("replica", front)
	rep.await(t, h1)
	// The follower's first pulls (its start, and the one the writer's
	// head announces): wait for them to settle.
	for deadline := time.Now().Add(30 * time.Second); pulls.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	before := pulls.Load()

	for range 3 {
		resp, err := http.Get(rep.url + "/api/v1/log/subject?s=package+acme/x&size=999999999")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("a read of a tree nobody announced: %s, want 503", resp.Status)
		}
	}
	if n := pulls.Load() - before; n > 1 {
		t.Errorf("3 anonymous reads of an unannounced tree made the replica pull %d times from its writer, want at most 1", n)
	}
	// The tree it serves is still read at once.
	resp, err := http.Get(rep.url + "/api/v1/log/subject?s=package+acme/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a read of the served tree: %s", resp.Status)
	}
}

// A replica whose pull failed (its writer restarting, say) asks again
// within seconds: the writer announces a head once, and a replica that
// missed it waited its whole interval (a minute here), serving an older
// head meanwhile.
func TestReplicaRetriesFailedPullSoon(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var refused atomic.Int64
	w, h1, front := writerBehind(t, func(rw http.ResponseWriter, r *http.Request) bool {
		if down.Load() && r.URL.Path == "/api/v1/checkpoint" {
			refused.Add(1)
			http.Error(rw, "restarting", http.StatusBadGateway)
			return true
		}
		return false
	})
	rep := w.newReplica("replica", front)
	for deadline := time.Now().Add(30 * time.Second); refused.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if refused.Load() < 2 {
		t.Fatalf("the replica asked the writer %d times", refused.Load())
	}
	down.Store(false) // the writer is back, announcing nothing new
	rep.await(t, h1)
}

// writerBehind makes a writer that publishes acme/x@1.0.0 (its head is
// returned) and a real proxy in front of it, whose URL is returned: each
// request goes to answer first, and to the writer unless answer did.
func writerBehind(t *testing.T, answer func(rw http.ResponseWriter, r *http.Request) bool) (*world, string, string) {
	t.Helper()
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	head, _ := w.repo.Head(w.ctx, index.MainRef)
	target, err := url.Parse(w.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !answer(rw, r) {
			proxy.ServeHTTP(rw, r)
		}
	}))
	t.Cleanup(front.Close) // after the replica's follower stops
	return w, head, front.URL
}
