package server

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index"
)

// A push that finds less room than the server keeps free (--min-free)
// is refused before its ref moves, saying so through git, and /healthz
// answers 503 meanwhile: a push landed on a full disk was accepted while
// its transparency log and checkpoint could not be written.
func TestPushRefusedWhenTheDiskIsNearlyFull(t *testing.T) {
	for _, tc := range []struct {
		minFree int64
		full    bool
	}{{1 << 62, true}, {1, false}} {
		s := newServed(t, Options{MinFree: tc.minFree})
		publishOne(t, s.fixture, "1.0.0")
		before, _ := s.repo.Head(s.ctx, index.MainRef)
		resp, body := s.do("GET", "/healthz", nil, nil)
		if tc.full != (resp.StatusCode == http.StatusServiceUnavailable) || tc.full && !strings.Contains(string(body), "the server's disk is nearly full") {
			t.Errorf("min-free %d: healthz %s %q", tc.minFree, resp.Status, body)
		}
		dir := filepath.Join(t.TempDir(), "clone")
		if out, err := gitIn(t, ".", "clone", "-q", s.url+"/index.git", dir); err != nil {
			t.Fatalf("clone: %v\n%s", err, out)
		}
		os.WriteFile(filepath.Join(dir, "stray"), []byte("not a record"), 0o644)
		gitIn(t, dir, "add", "stray")
		if out, err := gitIn(t, dir, "commit", "-q", "-m", "stray"); err != nil {
			t.Fatalf("commit: %v\n%s", err, out)
		}
		out, err := gitIn(t, dir, "push", "origin", "main")
		if err == nil {
			t.Fatalf("min-free %d: push accepted:\n%s", tc.minFree, out)
		}
		saysFull := strings.Contains(out, "remote: cairn: refused: refs/heads/main: the server's disk is nearly full:") && strings.Contains(out, "(cairn serve --min-free); nothing was written")
		if saysFull != tc.full {
			t.Errorf("min-free %d: the refusal names the disk %v, want %v:\n%s", tc.minFree, saysFull, tc.full, out)
		}
		if after, _ := s.repo.Head(s.ctx, index.MainRef); after != before {
			t.Errorf("min-free %d: main moved to %s", tc.minFree, after)
		}
	}
}

// A replica takes no push (it forwards them to its writer): its disk
// nearly full is not its /healthz's failure, which would take a replica
// that serves reads well out of a balancer.
func TestReplicaHealthzIgnoresMinFree(t *testing.T) {
	writer, _ := url.Parse("http://127.0.0.1:1")
	s := newServed(t, Options{MinFree: 1 << 62, Replica: &Replica{Writer: writer}})
	publishOne(t, s.fixture, "1.0.0")
	if resp, body := s.do("GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a replica's healthz with its disk nearly full: %s %q, want ok", resp.Status, body)
	}
}

// A server whose transparency log cannot be brought to main's head
// (here a directory is where a tile is written; a full disk, in
// earnest) signs no checkpoint of what was appended: /healthz says so
// rather than "ok".
func TestHealthzWhenTheLogCannotBeKept(t *testing.T) {
	s := newServed(t, Options{})
	publishOne(t, s.fixture, "1.0.0")
	if resp, body := s.do("GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz before: %s %s", resp.Status, body)
	}
	// The partial tile the next append writes (the log grows from 7 leaves
	// to 10) is in the way: a directory, not empty.
	trap := filepath.Join(s.repo.Main().LogDir(), "tile", "0", "000.p", "10")
	if err := os.MkdirAll(filepath.Join(trap, "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	publishOne(t, s.fixture, "1.1.0")
	head, _ := s.repo.Head(s.ctx, index.MainRef)
	resp, body := s.do("GET", "/healthz", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "index verified at "+head+", but no checkpoint can be signed of it: main's transparency log is behind the verified head "+head) {
		t.Fatalf("healthz with the log in the way: %s %q", resp.Status, body)
	}
	os.RemoveAll(trap)
	if resp, body := s.do("GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz once the log can be kept: %s %s", resp.Status, body)
	}
}
