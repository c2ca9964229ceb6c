package server

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/record"
)

// A server enforcing a policy of its index (Options.IndexPolicy) judges
// at each head with the version in force there: the Go module list and
// files follow the policy as it is published, and a refusal names the
// policy and the version's digest. A version whose issuers do not bind
// here refuses to judge rather than serve unjudged.
func TestIndexPolicyFollowsHeads(t *testing.T) {
	g := newGoFixture(t, "")
	g.publish("example.com/greet", "1.0.0", "hello")
	g.publish("example.com/greet", "1.1.0", "hello, vulnerable")
	g.vulnerable("example.com/greet", "1.1.0")
	exe, _ := filepath.Abs(os.Args[0])
	o := Options{Exe: exe, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Grace: time.Hour, MaxUpload: 1 << 20, IndexPolicy: "org"}
	if _, err := New(g.repo, o); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no policy org") {
		t.Fatalf("a server of a policy the index lacks: %v", err)
	}
	if _, err := author.PublishPolicy(g.ctx, g.repo, "org", []byte("forbid:\n  - {name: no-withdrawn, property: withdrawn}\n"), g.root); err != nil {
		t.Fatal(err)
	}
	srv, err := New(g.repo, o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer func() { ts.Close(); srv.Close() }()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/go/example.com/greet/@v/list"); code != 200 || body != "v1.0.0\nv1.1.0\n" {
		t.Fatalf("list under the lax version: %d %q", code, body)
	}

	strict, err := author.PublishPolicy(g.ctx, g.repo, "org", []byte(noHighVulns), g.root)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get("/go/example.com/greet/@v/list"); code != 200 || body != "v1.0.0\n" {
		t.Errorf("list under the strict version: %d %q", code, body)
	}
	code, body := get("/go/example.com/greet/@v/v1.1.0.info")
	if code != http.StatusForbidden || !strings.HasPrefix(body, "cairn: refused by policy index:org (sha256:"+strict.SHA256[:8]+"…): example.com/greet@v1.1.0\n") {
		t.Errorf("the refused version's .info: %d %q", code, body)
	}
	if code, body := get("/api/v1/packages/example.com/greet"); code != 200 || !strings.Contains(body, `"policy":"sha256:`+record.PolicyDigest(noHighVulns)+`"`) {
		t.Errorf("light document: %d %q", code, body)
	}

	// A version naming an issuer of a repository this server does not
	// follow: nothing is judged, so nothing is served as allowed.
	if _, err := author.PublishPolicy(g.ctx, g.repo, "org", []byte("require:\n  - {name: audited, property: audited, by: sec@elsewhere}\n"), g.root); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/go/example.com/greet/@v/v1.0.0.zip"); code == 200 || !strings.Contains(body, `the project reads no repository "elsewhere"`) {
		t.Errorf("a zip under a version that does not bind: %d %q", code, body)
	}

	// A version whose forbid rule names a holder no root granted (the
	// security team's name misspelt; published past cairn policy
	// publish's check, as by git push) would forbid nothing: nothing is
	// judged under it either, rather than 1.1.0 served as allowed.
	if _, err := author.PublishPolicy(g.ctx, g.repo, "org", []byte("forbid:\n  - {name: team-findings, property: vulnerable, by: sec-taem}\n"), g.root); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/go/example.com/greet/@v/v1.1.0.zip"); code == 200 || !strings.Contains(body, `issuer "sec-taem": repository local's root has granted no key to a holder of that name (its holders: alice, gopher, sec-team)`) {
		t.Errorf("a zip under a version whose forbid names nobody: %d %q", code, body)
	}
	if _, err := author.PublishPolicy(g.ctx, g.repo, "org", []byte("forbid:\n  - {name: team-findings, property: vulnerable, by: sec-team}\n"), g.root); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/go/example.com/greet/@v/v1.1.0.zip"); code != http.StatusForbidden || !strings.Contains(body, `team-findings`) {
		t.Errorf("a zip under the corrected version: %d %q", code, body)
	}
}
