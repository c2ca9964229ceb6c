package install

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/transport/transporttest"
)

// Attack: a mirror trickles its blobs a byte every 200 ms. Alone, it
// fails the install within the stall bound (500 ms here), naming its
// URL, with nothing materialised; before a good mirror, it is cut and
// the install succeeds.
func TestTricklingMirror(t *testing.T) {
	t.Setenv(transport.EnvConnect, "500ms")
	t.Setenv(transport.EnvStall, "500ms")
	w := newWorld(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	good := servertest.Serve(w.World)
	to, _ := url.Parse(good)
	ts := httptest.NewServer(transporttest.Trickle(httputil.NewSingleHostReverseProxy(to), 200*time.Millisecond,
		func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/blobs/") }))
	t.Cleanup(ts.Close)
	slow := ts.URL
	w.served(good, nil, "packages:\n  acme/log: ^1.0\n")
	p, err := plan.ReadProject(w.project)
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := plan.Open(context.Background(), p, plan.Options{Cache: w.cache})
	if err != nil {
		t.Fatal(err)
	}
	defer srcs.Close()
	l, err := plan.Resolve(context.Background(), p, srcs)
	if err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(t.TempDir(), "deps")
	install := func() error {
		return transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
			_, err := Install(ctx, l, srcs, Options{Into: into, Cache: w.blobs, Platform: "linux-amd64"})
			return err
		})
	}
	srcs[0].Blobs = []blob.Store{&blob.HTTP{URL: slow}}
	err = install()
	if !errors.Is(err, transport.ErrTimeout) || !strings.Contains(err.Error(), slow+"/blobs/sha256/") || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("install from a trickling mirror: %v, want a stall naming %s", err, slow)
	}
	if _, err := os.Stat(into); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("something was materialised: %v", err)
	}
	srcs[0].Blobs = []blob.Store{&blob.HTTP{URL: slow}, &blob.HTTP{URL: good}}
	if err := install(); err != nil {
		t.Fatalf("with a good mirror after the trickling one: %v", err)
	}
}
