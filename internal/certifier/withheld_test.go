package certifier

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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

	head, err := g.Repo.Head(g.Ctx)
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
