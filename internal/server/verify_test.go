package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
)

// behindItsBack commits in dir (a clone of the server's index) and
// pushes to the bare repository on disk, past the server and its hook.
func behindItsBack(t *testing.T, dir string, args ...string) {
	t.Helper()
	for _, a := range [][]string{args, {"commit", "-q", "-m", "behind its back"}, {"push", "-q", "origin", "main"}} {
		if out, err := gitIn(t, dir, a...); err != nil {
			t.Fatalf("git %v: %v\n%s", a, err, out)
		}
	}
}

func publishOne(t *testing.T, f *fixture, version string) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/x\nversion: "+version+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source "+version), 0o644)
	if _, err := author.Publish(f.ctx, f.repo, dir, f.alice); err != nil {
		t.Fatal(err)
	}
}

// Attack 8, the server's part: a record deleted with plain git on the
// server's disk, while it runs, turns /healthz to a failure that names
// the rule and the commit; and a server does not start on such an index.
func TestAttackDeletedBehindItsBack(t *testing.T) {
	s := newServed(t, Options{})
	publishOne(t, s.fixture, "1.0.0")
	if resp, body := s.do("GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz before: %s %s", resp.Status, body)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := gitIn(t, ".", "clone", "-q", indextest.GitDir(t, s.repo), clone); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	out, _ := gitIn(t, clone, "ls-files", "packages")
	victim := strings.Fields(out)[0]
	behindItsBack(t, clone, "rm", "-q", victim)
	commit, _ := gitIn(t, clone, "rev-parse", "--short=12", "HEAD")
	commit = strings.TrimSpace(commit)

	resp, body := s.do("GET", "/healthz", nil, nil)
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "rule append-only broken in commit "+commit) {
		t.Fatalf("healthz after a record was deleted behind the server's back: %s %q, want a failure naming rule append-only and commit %s", resp.Status, body, commit)
	}

	// A server does not start on it.
	_, err := New(s.repo, Options{Exe: "cairn", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var re *index.RuleError
	if !errors.As(err, &re) || re.Rule != index.RuleAppendOnly || !strings.Contains(err.Error(), commit) {
		t.Fatalf("New on an index that does not verify: %v, want rule %s in commit %s", err, index.RuleAppendOnly, commit)
	}
}

// History rewritten on the server's disk (main reset behind what was
// verified) is a fork: /healthz fails and a server does not start.
func TestAttackRewrittenBehindItsBack(t *testing.T) {
	s := newServed(t, Options{})
	publishOne(t, s.fixture, "1.0.0")
	before, _ := s.repo.Head(s.ctx, index.MainRef)
	publishOne(t, s.fixture, "1.1.0")
	if resp, body := s.do("GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz before: %s %s", resp.Status, body)
	}
	if out, err := gitIn(t, indextest.GitDir(t, s.repo), "update-ref", "refs/heads/main", before); err != nil {
		t.Fatalf("reset: %v\n%s", err, out)
	}
	resp, body := s.do("GET", "/healthz", nil, nil)
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "history rewritten") {
		t.Fatalf("healthz after main was rewound: %s %q", resp.Status, body)
	}
	_, err := New(s.repo, Options{Exe: "cairn", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var fe *index.ForkError
	if !errors.As(err, &fe) {
		t.Fatalf("New on a rewound index: %v, want a ForkError", err)
	}
}
