package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/transport/transporttest"
)

// stalling serves w's server, trickling (a byte every 1.5 s: under
// git's low-speed limit of a byte a second too) the requests that match.
func (w *world) stalling(match func(*http.Request) bool) string {
	to, _ := url.Parse(w.url)
	s := httptest.NewServer(transporttest.Trickle(httputil.NewSingleHostReverseProxy(to), 1500*time.Millisecond, match))
	w.t.Cleanup(s.Close)
	return s.URL
}

// replica makes a replica of w's index that follows url as "origin",
// never pulled.
func (w *world) replica(name, url string) *index.Repo {
	w.t.Helper()
	r, err := index.InitReplica(w.ctx, filepath.Join(w.dir, name), w.intro)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { r.Close() })
	if err := Add(r, Remote{Name: "origin", URL: url, Introduction: w.intro}); err != nil {
		w.t.Fatal(err)
	}
	return r
}

func stallBounds(t *testing.T) {
	t.Setenv(transport.EnvConnect, "500ms")
	t.Setenv(transport.EnvStall, "500ms")
}

// pullWithin pulls origin into r and fails the test if the pull hangs.
func pullWithin(t *testing.T, r *index.Repo) error {
	return transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		_, err := Pull(ctx, r, "origin", Options{})
		return err
	})
}

// Attack: the server's git endpoint trickles. The pull fails within the
// bound, naming the URL, and no ref moves.
func TestPullGitStalls(t *testing.T) {
	stallBounds(t)
	w := newWorld(t)
	u := w.stalling(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/index.git/") })
	c := w.replica("c", u)
	err := pullWithin(t, c)
	if !errors.Is(err, transport.ErrTimeout) || !strings.Contains(err.Error(), u+"/index.git") || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("pull: %v, want a stall naming %s/index.git", err, u)
	}
	if got, _ := c.Head(w.ctx, Ref("origin")); got != "" {
		t.Fatalf("the remote's ref moved to %s on a stalled pull", got)
	}
}

// Attack: the checkpoint trickles; then it never comes (no headers). Each
// pull fails within the bound, naming the checkpoint's URL.
func TestPullCheckpointStalls(t *testing.T) {
	stallBounds(t)
	w := newWorld(t)
	u := w.stalling(func(r *http.Request) bool { return r.URL.Path == "/api/v1/checkpoint" })
	err := pullWithin(t, w.replica("c", u))
	if !errors.Is(err, transport.ErrTimeout) || !strings.Contains(err.Error(), u+"/api/v1/checkpoint") || !strings.Contains(err.Error(), "response body stalled") {
		t.Fatalf("pull: %v, want the checkpoint's body stalled, naming %s/api/v1/checkpoint", err, u)
	}
	silent := transporttest.Silent(t)
	err = pullWithin(t, w.replica("d", silent))
	if !errors.Is(err, transport.ErrTimeout) || !strings.Contains(err.Error(), silent+"/api/v1/checkpoint") || !strings.Contains(err.Error(), "no response headers within 500ms") {
		t.Fatalf("pull: %v, want no headers within 500ms, naming %s/api/v1/checkpoint", err, silent)
	}
}

// Attack: the server's host never accepts the connection. The pull
// fails at the connect timeout, naming the URL.
func TestPullConnectTimeout(t *testing.T) {
	stallBounds(t)
	w := newWorld(t)
	u := transporttest.Unaccepting(t)
	err := pullWithin(t, w.replica("c", u))
	var ce *transport.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "no connection within 500ms") {
		t.Fatalf("pull: %v, want a *ConnectError naming %s", err, u)
	}
}
