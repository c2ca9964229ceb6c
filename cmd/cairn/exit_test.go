package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/install"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
)

// The exit-code table, and the one voice of errors: an error line, then a hint.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	call := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, errb.String()
	}
	if code, _ := call("key", "new", filepath.Join(dir, "root.key")); code != exitOK {
		t.Fatalf("key new: %d", code)
	}
	if code, _ := call("init", filepath.Join(dir, "repo"), "--root-key", filepath.Join(dir, "root.key")); code != exitOK {
		t.Fatalf("init: %d", code)
	}
	repo := filepath.Join(dir, "repo")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"certify"}, exitUsage, "accepts 1 arg(s), received 0"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"verify", "--nope"}, exitUsage, "unknown flag: --nope"},
		{[]string{"verify"}, exitNotFound, "no repository found in"},
		{[]string{"show", "--repo", repo, "acme/none"}, exitNotFound, "acme/none is not published"},
		{[]string{"verify", "--repo", filepath.Join(dir, "nowhere")}, exitNotFound, "no repository at"},
		{[]string{"key", "grant", "--repo", repo, "--key", filepath.Join(dir, "root.key"), filepath.Join(dir, "root.key.pub"), "--holder", "x", "--scope", "root:*"}, exitUsage, `--scope root:*: scope "root:*": unknown action`},
	}
	for _, c := range cases {
		code, stderr := call(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || !strings.HasPrefix(stderr, "cairn: error: ") {
			t.Errorf("cairn %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
}

// Every security refusal exits 3, whichever family refused it: a script or
// a CI job tells "refused" from "failed" by the code alone. Where the CLI
// reaches the refusal cheaply it is run end to end; the other families go
// through classify with the error type their package returns, wrapped as
// their callers wrap it. The test fails if any family's exitRefused
// became exitError.
func TestSecurityRefusalsExitThree(t *testing.T) {
	ctx := context.Background()
	call := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, errb.String()
	}
	must := func(args ...string) {
		t.Helper()
		if code, stderr := call(args...); code != exitOK {
			t.Fatalf("cairn %s: exit %d: %s", strings.Join(args, " "), code, stderr)
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
	// newRepo makes a repository where alice may publish acme/* and has
	// published acme/fastjson@1.0.0.
	newRepo := func() (dir, repo string) {
		t.Helper()
		dir = t.TempDir()
		repo = filepath.Join(dir, "repo")
		must("key", "new", filepath.Join(dir, "root.key"))
		must("key", "new", filepath.Join(dir, "alice.key"))
		must("init", repo, "--root-key", filepath.Join(dir, "root.key"))
		must("key", "grant", "--repo", repo, "--key", filepath.Join(dir, "root.key"), filepath.Join(dir, "alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")
		pkg := filepath.Join(dir, "pkg")
		os.MkdirAll(pkg, 0o755)
		os.WriteFile(filepath.Join(pkg, "cairn-package.yaml"), []byte("name: acme/fastjson\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(pkg, "src.tar.gz"), []byte("source"), 0o644)
		must("publish", "--repo", repo, "--key", filepath.Join(dir, "alice.key"), pkg)
		return dir, repo
	}

	e2e := []struct {
		name   string
		tamper func(dir, repo string) // acts on the repository with plain git
		args   func(dir, repo string) []string
		want   string
	}{
		{"rule error: a grant not signed by the root", nil, func(dir, repo string) []string {
			return []string{"key", "grant", "--repo", repo, "--key", filepath.Join(dir, "alice.key"), filepath.Join(dir, "alice.key.pub"), "--holder", "alice", "--scope", "publish:*"}
		}, "rule "},
		{"rule error on read: a record deleted with plain git", func(dir, repo string) {
			clone := filepath.Join(dir, "clone")
			gitIn(dir, "clone", "-q", filepath.Join(repo, "index.git"), clone)
			gitIn(clone, "rm", "-q", "-r", layout.VersionDir("acme/fastjson", "1.0.0"))
			gitIn(clone, "commit", "-q", "-m", "drop")
			gitIn(clone, "push", "-q", "origin", "main")
		}, func(dir, repo string) []string { return []string{"log", "--repo", repo} }, "rule append-only broken"},
		{"rule error: a malformed record put on main with plain git", func(dir, repo string) {
			clone := filepath.Join(dir, "clone")
			gitIn(dir, "clone", "-q", filepath.Join(repo, "index.git"), clone)
			p := layout.RecordPath(layout.VersionDir("acme/fastjson", "1.0.0"), strings.Repeat("ab", 32))
			os.WriteFile(filepath.Join(clone, p), []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[],"extra":1}`), 0o644)
			gitIn(clone, "add", p)
			gitIn(clone, "commit", "-q", "-m", "junk")
			gitIn(clone, "push", "-q", "origin", "main")
		}, func(dir, repo string) []string { return []string{"show", "--repo", repo, "acme/fastjson"} }, "rule well-formed broken"},
		{"fork: main rolled back past the verified head", func(dir, repo string) {
			gitIn(filepath.Join(repo, "index.git"), "update-ref", "refs/heads/main", "refs/heads/main~1")
		}, func(dir, repo string) []string { return []string{"verify", "--repo", repo} }, "history rewritten"},
	}
	for _, c := range e2e {
		dir, repo := newRepo()
		must("verify", "--repo", repo)
		if c.tamper != nil {
			c.tamper(dir, repo)
		}
		code, stderr := call(c.args(dir, repo)...)
		if code != exitRefused || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.name, code, stderr, exitRefused, c.want)
		}
	}

	// A blob whose stored bytes were swapped: the real store's verifying read.
	store, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := blob.PutFile(ctx, store, writeTemp(t, "the real bytes"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := store.OpenFile(ref.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.Name(), []byte("other bytes, same len"), 0o644)
	f.Close()
	_, mismatch := blob.ReadAll(ctx, store, ref)

	families := []struct {
		name string
		err  error
	}{
		{"blob mismatch", fmt.Errorf("fetch %s: %w", ref, mismatch)},
		{"checkpoint error", fmt.Errorf("pull: %w", &remote.CheckpointError{Remote: "origin", Problem: "the checkpoint's root is not the one computed"})},
		{"push refused", &remote.PushError{Remote: "origin", Output: "rule scope broken"}},
		{"blob upload refused", fmt.Errorf("upload: %w: https://x/blobs: 403 Forbidden: key not granted", blob.ErrRefused)},
		{"unpinned input", fmt.Errorf("lock: %w", &plan.UnpinnedError{})},
		{"policy refusal", fmt.Errorf("install: %w", &policy.RefusedError{})},
		{"lock mismatch", fmt.Errorf("install: %w", &plan.LockError{Problems: []string{"acme/log: sha256 differs"}})},
		{"unsafe archive", fmt.Errorf("install acme/log: %w", &install.UnsafeError{Archive: "a.tar.gz", Entry: "../x", Why: "outside"})},
		{"certifier key not granted", certifierStopped{fmt.Errorf("key not granted certify:tested")}},
		{"rule error wrapping a malformed record", fmt.Errorf("append: %w", &index.RuleError{Rule: index.RuleWellFormed, Detail: "x", Err: fmt.Errorf("%w: junk", record.ErrMalformed)})},
	}
	for _, c := range families {
		if c.err == nil {
			t.Fatalf("%s: the real code produced no error", c.name)
		}
		if code, _ := classify(c.err); code != exitRefused {
			t.Errorf("%s (%v): exit %d, want %d", c.name, c.err, code, exitRefused)
		}
	}
	var me *blob.MismatchError
	if !errors.As(mismatch, &me) {
		t.Errorf("the swapped blob read gave %v, not a *blob.MismatchError", mismatch)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
