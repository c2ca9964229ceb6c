package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletion asks cobra's hidden __complete command, as the shell
// scripts of 'cairn completion' do, and checks the words offered:
// property kinds, remote names, package names and versions read from the
// repository at --repo or the one found from the current directory.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	ctx := context.Background()
	must := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, &out, &errb); code != exitOK {
			t.Fatalf("cairn %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
	}
	must("key", "new", filepath.Join(dir, "root.key"))
	must("key", "new", filepath.Join(dir, "alice.key"))
	must("init", repo, "--root-key", filepath.Join(dir, "root.key"))
	must("key", "grant", "--repo", repo, "--key", filepath.Join(dir, "root.key"), filepath.Join(dir, "alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")
	for _, v := range []string{"1.0.0", "1.1.0"} {
		pkg := filepath.Join(dir, "pkg-"+v)
		os.MkdirAll(pkg, 0o755)
		os.WriteFile(filepath.Join(pkg, "cairn-package.yaml"), []byte("name: acme/fastjson\nversion: "+v+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(pkg, "src.tar.gz"), []byte("source "+v), 0o644)
		must("publish", "--repo", repo, "--key", filepath.Join(dir, "alice.key"), pkg)
	}
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("forbid:\n  - {property: withdrawn}\n"), 0o644)
	for _, name := range []string{"org-strict", "org-default"} {
		must("policy", "publish", "--repo", repo, "--key", filepath.Join(dir, "root.key"), name, filepath.Join(dir, "policy.yaml"))
	}
	must("remote", "add", "--repo", repo, "origin", "http://127.0.0.1:1", "--introduction", strings.Repeat("ab", 32))
	must("remote", "add", "--repo", repo, "mirror", "http://127.0.0.1:2", "--introduction", strings.Repeat("ab", 32))

	complete := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"__complete"}, args...), &out, &errb); code != exitOK {
			t.Fatalf("cairn __complete %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	for _, c := range []struct {
		args []string
		want string // the words, then cobra's directive line
	}{
		{[]string{"certify", "--property", ""}, "audited\ntested\nreviewed\nreproduced\nproof-checked\nscanned\nvulnerable\nfixed\ndeprecated\nwithdrawn\n:4\n"},
		{[]string{"certifier", "--property-on-failure", ""}, "tested-failed\n:4\n"},
		{[]string{"pull", "--repo", repo, ""}, "mirror\norigin\n:4\n"},
		{[]string{"policy", "show", "--repo", repo, ""}, "org-default\norg-strict\n:4\n"},
		{[]string{"policy", "log", "--repo", repo, "org-default", ""}, ":4\n"},
		{[]string{"pull", "--repo", repo, "origin", ""}, ":4\n"},
		{[]string{"remote", "set-url", "--repo", repo, "o"}, "mirror\norigin\n:4\n"},
		{[]string{"promote", "--repo", repo, "--to", ""}, "mirror\norigin\n:4\n"},
		{[]string{"certifier", "--repo", repo, "--remote", ""}, "mirror\norigin\n:4\n"},
		{[]string{"show", "--repo", repo, ""}, "acme/fastjson\n:4\n"},
		{[]string{"show", "--repo", repo, "acme/fastjson@"}, "acme/fastjson@1.0.0\nacme/fastjson@1.1.0\n:4\n"},
		{[]string{"certify", "--repo", repo, "acme/f"}, "acme/fastjson@\n:6\n"},
		{[]string{"show", "--repo", filepath.Join(dir, "nowhere"), ""}, ":4\n"},
	} {
		if got := complete(c.args...); got != c.want {
			t.Errorf("cairn __complete %s:\n%s\nwant:\n%s", strings.Join(c.args, " "), got, c.want)
		}
	}

	// Without --repo, the repository is found as every command finds it.
	t.Setenv("CAIRN_REPO", "")
	t.Chdir(repo)
	if got, want := complete("why", ""), "acme/fastjson\n:4\n"; got != want {
		t.Errorf("cairn __complete why '' in the repository:\n%s\nwant:\n%s", got, want)
	}
}
