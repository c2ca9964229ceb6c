package gitx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Clone makes a work tree of the remote's main whose origin names it.
func TestClone(t *testing.T) {
	ctx, r, rd := newRepo(t)
	head := commitFiles(t, r, rd, "", "pkg/a.json")
	if err := r.UpdateRef(ctx, "refs/heads/main", head, "", "test"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	c, err := Clone(ctx, r.GitDir, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := filepath.EvalSymlinks(c.WorkTree); got != mustEval(t, dir) {
		t.Errorf("clone's work tree %q, want %q", c.WorkTree, dir)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "pkg/a.json")); err != nil || string(data) != "content of pkg/a.json" {
		t.Errorf("checked-out file: %q, %v", data, err)
	}
	if got, _ := c.ResolveRef(ctx, "refs/heads/main"); got != head {
		t.Errorf("clone's main %q, want %q", got, head)
	}
	if url, ok, err := c.ConfigGet(ctx, "remote.origin.url"); err != nil || !ok || url != r.GitDir {
		t.Errorf("origin %q %v %v, want %q", url, ok, err, r.GitDir)
	}
	// A clone over an existing non-empty directory fails and says so.
	if _, err := Clone(ctx, r.GitDir, dir); err == nil || !strings.Contains(err.Error(), "git clone") {
		t.Errorf("clone over an existing clone: %v, want git clone's error", err)
	}
}

func mustEval(t *testing.T, p string) string {
	t.Helper()
	got, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// SetAttributes writes attributes that git itself then reads, and replaces
// what was there.
func TestSetAttributes(t *testing.T) {
	ctx, r, _ := newRepo(t)
	check := func(want string) {
		t.Helper()
		out, err := r.run(ctx, nil, "check-attr", "delta", "--", "records/x.json")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "records/x.json: delta: "+want {
			t.Errorf("git check-attr: %q, want delta %s", got, want)
		}
	}
	if err := r.SetAttributes("* -delta"); err != nil {
		t.Fatal(err)
	}
	check("unset")
	if err := r.SetAttributes("*.txt -delta", "records/* delta"); err != nil {
		t.Fatal(err)
	}
	check("set")
}
