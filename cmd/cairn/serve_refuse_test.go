package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cairn serve does not start on an index whose main was changed behind
// cairn's back: exit 3 (a security refusal), naming the rule and the
// commit, and nothing listens.
func TestServeRefusesTamperedIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	call := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, args := range [][]string{
		{"key", "new", filepath.Join(dir, "root.key")},
		{"init", repo, "--root-key", filepath.Join(dir, "root.key")},
		{"key", "new", filepath.Join(dir, "alice.key")},
		{"key", "grant", "--repo", repo, "--key", filepath.Join(dir, "root.key"), filepath.Join(dir, "alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*"},
	} {
		if code, _, stderr := call(args...); code != exitOK {
			t.Fatalf("cairn %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	clone := filepath.Join(dir, "clone")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=m", "GIT_AUTHOR_EMAIL=m@x", "GIT_COMMITTER_NAME=m", "GIT_COMMITTER_EMAIL=m@x", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(dir, "clone", "-q", filepath.Join(repo, "index.git"), clone)
	git(clone, "rm", "-q", "-r", "keys")
	git(clone, "commit", "-q", "-m", "drop the grants")
	git(clone, "push", "-q", "origin", "main")
	commit := git(clone, "rev-parse", "--short=12", "HEAD")

	code, stdout, stderr := call("serve", "--repo", repo, "--addr", "127.0.0.1:0", "--sync", "0")
	if code != exitRefused || !strings.Contains(stderr, "rule append-only broken in commit "+commit) {
		t.Fatalf("serve on a tampered index: exit %d, stderr %q; want exit %d naming rule append-only and commit %s", code, stderr, exitRefused, commit)
	}
	if strings.Contains(stdout, "serving") {
		t.Fatalf("serve said it serves: %q", stdout)
	}
}
