package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A rule with enforcement: warn does not refuse at the server, and the
// server reports what it serves despite it: each request counted in
// cairn_policy_warnings_total{rule,via}, one log line per version while
// the heads do not move (not one per request), and the light package
// document's warnings (the version, rule and record).
func TestWarnReportedAtServer(t *testing.T) {
	var logs syncBuffer
	g := newGoFixture(t, "forbid:\n  - {name: no-high-vulnerabilities, property: vulnerable, severity: high, enforcement: warn}\n",
		func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	d := g.publish("example.com/greet", "1.0.0", "hello")
	vuln := g.vulnerable("example.com/greet", "1.0.0")
	for _, path := range []string{"/go/example.com/greet/@v/v1.0.0.zip", "/go/example.com/greet/@v/v1.0.0.info", "/blobs/sha256/" + d.Artifacts[0].SHA256} {
		if resp, body := g.do("GET", path, nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: a warn rule refused at the server: %d %q", path, resp.StatusCode, body)
		}
	}
	if _, body := g.do("GET", "/go/example.com/greet/@v/list", nil, nil); string(body) != "v1.0.0\n" {
		t.Errorf("list: %q, want the warned version listed", body)
	}
	resp, body := g.do("GET", "/api/v1/packages/example.com/greet", nil, nil)
	var doc PackageDoc
	if err := json.Unmarshal(body, &doc); resp.StatusCode != 200 || err != nil {
		t.Fatalf("light read: %d %v", resp.StatusCode, err)
	}
	if len(doc.Refusals) != 0 || len(doc.Warnings) != 1 || doc.Warnings[0].Version != "1.0.0" || doc.Warnings[0].Rule != "no-high-vulnerabilities" ||
		len(doc.Warnings[0].Records) != 1 || doc.Warnings[0].Records[0] != vuln {
		t.Errorf("light read: refusals %+v, warnings %+v; want 1.0.0 warned by %s", doc.Refusals, doc.Warnings, vuln)
	}

	_, metrics := g.do("GET", "/metrics", nil, nil)
	for via, n := range map[string]int{"go": 2, "blob": 1, "light": 1} {
		want := fmt.Sprintf(`cairn_policy_warnings_total{rule="no-high-vulnerabilities",via="%s"} %d`, via, n)
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics: no %s:\n%s", want, grepLines(string(metrics), "cairn_policy"))
		}
	}
	if strings.Contains(string(metrics), "cairn_policy_refusals_total{") {
		t.Errorf("/metrics counts refusals of a warn rule:\n%s", grepLines(string(metrics), "cairn_policy"))
	}
	if n := strings.Count(logs.String(), "served despite a warn rule"); n != 1 || !strings.Contains(logs.String(), vuln) {
		t.Errorf("%d log lines of the warned version (want 1, naming record %s):\n%s", n, vuln, grepLines(logs.String(), "warn rule"))
	}
}
