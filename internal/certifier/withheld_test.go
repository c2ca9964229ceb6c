package certifier

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
)

// A version promoted binary-only (its source withheld by `cairn promote
// --artifacts binary`) cannot be tested from its source: a certifier that
// tests sources skips it — saying why, and which --artifact choices the
// version has on the server — counts it skipped, moves past it, certifies
// the versions after it, and a --once run ends well. Run again, it does
// not look at the version a second time.
func TestCertifySkipsWithheldSource(t *testing.T) {
	g := newRig(t)

	// An organisation publishes acme/app with its source and a binary,
	// and promotes the binary alone to the public index.
	org := indextest.New(t)
	g.Grant(org.Publisher, "org-alice", "publish:acme/*")
	org.Publish(indextest.Package{Name: "acme/app", Version: "1.0.0"})
	if err := remote.Add(org.Repo, remote.Remote{Name: "public", URL: g.url, Introduction: g.Intro}); err != nil {
		t.Fatal(err)
	}
	res, err := remote.Promote(g.Ctx, org.Repo, "acme/app@1.0.0", "public", []string{"binary"}, org.Publisher, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Withheld) != 1 {
		t.Fatalf("promotion withheld %v, want the source", res.Withheld)
	}
	// A version published after it, source and all.
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})

	head, err := g.Repo.Head(g.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	state := t.TempDir()
	o := Options{Command: passes, Metrics: m, Log: newTextLog(&logs)}
	c := g.certifier(o, state)
	if err := c.Run(g.Ctx); err != nil {
		t.Fatalf("--once with a binary-only version: %v\nlog:\n%s", err, logs.String())
	}
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 1 {
		t.Fatalf("acme/log@1.0.0 after the binary-only acme/app: %d tested records, want 1\nlog:\n%s", len(got), logs.String())
	}
	if got := g.records("acme/app", "1.0.0", record.Tested); len(got) != 0 {
		t.Fatalf("acme/app@1.0.0 certified without its source: %+v", got)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "package=acme/app") && strings.Contains(l, "skipped") {
			line = l
		}
	}
	for _, want := range []string{"src.tar.gz", "not on the server", "--artifact binary:linux-amd64"} {
		if !strings.Contains(line, want) {
			t.Fatalf("the skip of acme/app says %q, want it to name %q\nlog:\n%s", line, want, logs.String())
		}
	}
	if strings.Contains(line, "--artifact source") {
		t.Fatalf("the skip offers the withheld source: %s", line)
	}
	if n := testutil.ToFloat64(m.outcomes.WithLabelValues("public", "skipped")); n != 1 {
		t.Fatalf("skipped versions counted: %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.errors.WithLabelValues("public")); n != 0 {
		t.Fatalf("errors counted: %v, want none", n)
	}
	if p := c.follows[0].progress; p.Base != head || len(p.Done) != 0 {
		t.Fatalf("progress stays at %.12s (done %v), want every version up to the head %.12s dealt with", p.Base, p.Done, head)
	}
	c.Close()

	// Run again: nothing new, nothing retried.
	logs.Reset()
	again := g.certifier(Options{Command: passes, Log: newTextLog(&logs)}, state)
	if err := again.Run(g.Ctx); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if strings.Contains(logs.String(), "acme/app") {
		t.Fatalf("the second run dealt with acme/app again:\n%s", logs.String())
	}

	// Told to test the binary, a certifier certifies it.
	bin := t.TempDir()
	g.run(g.certifier(Options{Command: `tar xzf "$CAIRN_ARTIFACT" && grep -q "acme/app 1.0.0" README`, Artifact: "binary:linux-amd64"}, bin))
	got := g.records("acme/app", "1.0.0", record.Tested)
	if len(got) != 1 {
		t.Fatalf("acme/app@1.0.0 with --artifact binary:linux-amd64: %d tested records, want 1", len(got))
	}
	if p := got[0].Record.Predicate.(record.TestResultPredicate); p.Result != "PASSED" {
		t.Fatalf("the binary's test: %+v", p)
	}
}

// newTextLog logs in text to w.
func newTextLog(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// requests is a real HTTP server in front of a cairn server that keeps
// the method and path of each blob request it passes on.
type requests struct {
	mu   sync.Mutex
	seen []string // "HEAD /blobs/sha256/HEX"
}

func (q *requests) front(t *testing.T) func(string) string {
	return func(backend string) string {
		u, err := url.Parse(backend)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(u)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/blobs/") {
				q.mu.Lock()
				q.seen = append(q.seen, r.Method+" "+r.URL.Path)
				q.mu.Unlock()
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(ts.Close)
		return ts.URL
	}
}

// A version whose artifacts the server holds costs no HEAD request: the
// certifier fetches what it tests and asks the server about nothing else
// (a HEAD only before uploading a blob, its evidence, to skip one the
// server has).
func TestCertifyMakesNoHeadRequests(t *testing.T) {
	q := &requests{}
	g := newRigAt(t, indextest.New(t), q.front(t))
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0", Platforms: []string{"linux-amd64", "darwin-arm64"}})
	g.run(g.certifier(Options{Command: passes}, ""))
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 1 {
		t.Fatalf("acme/log@1.0.0: %d tested records, want 1", len(got))
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	put := map[string]bool{}
	gets := 0
	for _, r := range q.seen {
		if p, ok := strings.CutPrefix(r, "PUT "); ok {
			put[p] = true
		}
		if strings.HasPrefix(r, "GET ") {
			gets++
		}
	}
	if gets == 0 {
		t.Fatalf("the run fetched no blob through the front: %v", q.seen)
	}
	for _, r := range q.seen {
		if p, ok := strings.CutPrefix(r, "HEAD "); ok && !put[p] {
			t.Errorf("the run asked %s of a blob it did not upload (every request: %v)", r, q.seen)
		}
	}
}
