package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
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
		{[]string{"verify"}, exitUsage, "no repository: pass --repo DIR or set CAIRN_REPO"},
		{[]string{"show", "--repo", repo, "acme/none"}, exitNotFound, "acme/none is not published"},
		{[]string{"verify", "--repo", filepath.Join(dir, "nowhere")}, exitNotFound, "no repository at"},
		{[]string{"key", "grant", "--repo", repo, "--key", filepath.Join(dir, "root.key"), filepath.Join(dir, "root.key.pub"), "--holder", "x", "--scope", "root:*"}, exitError, `scope "root:*": unknown action`},
	}
	for _, c := range cases {
		code, stderr := call(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || !strings.HasPrefix(stderr, "cairn: error: ") {
			t.Errorf("cairn %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
}
