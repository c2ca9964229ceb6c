package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index/layout"
)

// cairn serve verifies the index once, in the server (which refuses an
// index that does not verify whoever starts it), and a broken rule still
// exits 3 naming it, in the server's words.
func TestServeRefusesTamperedIndexOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	must := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, &out, &errb); code != exitOK {
			t.Fatalf("cairn %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
	}
	gitIn := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=m", "GIT_AUTHOR_EMAIL=m@x", "GIT_COMMITTER_NAME=m", "GIT_COMMITTER_EMAIL=m@x", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	must("key", "new", filepath.Join(dir, "root.key"))
	must("key", "new", filepath.Join(dir, "alice.key"))
	must("init", repo, "--root-key", filepath.Join(dir, "root.key"))
	must("key", "grant", "--repo", repo, "--key", filepath.Join(dir, "root.key"), filepath.Join(dir, "alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")
	pkg := filepath.Join(dir, "pkg")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "cairn-package.yaml"), []byte("name: acme/fastjson\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(pkg, "src.tar.gz"), []byte("source"), 0o644)
	must("publish", "--repo", repo, "--key", filepath.Join(dir, "alice.key"), pkg)
	must("verify", "--repo", repo)

	clone := filepath.Join(dir, "clone")
	gitIn(dir, "clone", "-q", filepath.Join(repo, "index.git"), clone)
	gitIn(clone, "rm", "-q", "-r", layout.VersionDir("acme/fastjson", "1.0.0"))
	gitIn(clone, "commit", "-q", "-m", "drop")
	gitIn(clone, "push", "-q", "origin", "main")

	var out, errb bytes.Buffer
	code := run(ctx, []string{"serve", "--repo", repo, "--addr", "127.0.0.1:0", "--sync", "0"}, &out, &errb)
	stderr := errb.String()
	if code != exitRefused {
		t.Fatalf("serve on a tampered index: exit %d, want %d\n%s", code, exitRefused, stderr)
	}
	for _, want := range []string{"does not verify, so it is not served", "rule append-only broken"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("serve's refusal lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(out.String(), "serving") {
		t.Errorf("serve started:\n%s", out.String())
	}
}
