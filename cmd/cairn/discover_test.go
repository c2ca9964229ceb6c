package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// initRepo makes a cairn repository at dir with cairn itself.
func initRepo(t *testing.T, dir string) {
	t.Helper()
	var out bytes.Buffer
	key := filepath.Join(t.TempDir(), "root.key")
	if code := run(context.Background(), []string{"key", "new", key}, &out, &out); code != exitOK {
		t.Fatal(out.String())
	}
	if code := run(context.Background(), []string{"init", dir, "--root-key", key}, &out, &out); code != exitOK {
		t.Fatal(out.String())
	}
}

// TestDiscoverStopsAtAGitRepository: from parent/proj/src, where proj is
// a plain git repository (a work tree, a linked work tree's .git file, a
// bare repository), discovery stops at proj, as git does, and does not
// use the index in parent; the error names where it stopped, and exits 4
// (not found) as --repo nowhere does. From a plain directory below
// parent, parent is found.
func TestDiscoverStopsAtAGitRepository(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "parent")
	initRepo(t, parent)
	if err := os.MkdirAll(filepath.Join(parent, "docs", "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := discoverRepo(filepath.Join(parent, "docs", "a")); err != nil || got != parent {
		t.Fatalf("from parent/docs/a: %q, %v; want %s", got, err, parent)
	}
	work := filepath.Join(parent, "proj")
	if out, err := exec.Command("git", "init", "-q", work).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	linked := filepath.Join(parent, "linked")
	bare := filepath.Join(parent, "bare.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
		t.Fatalf("git init --bare: %v: %s", err, out)
	}
	os.MkdirAll(linked, 0o755)
	if err := os.WriteFile(filepath.Join(linked, ".git"), []byte("gitdir: "+bare+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, stop := range []string{work, linked, filepath.Join(bare, "refs")} {
		from := filepath.Join(stop, "src", "deep")
		if err := os.MkdirAll(from, 0o755); err != nil {
			t.Fatal(err)
		}
		want := stop
		if strings.HasSuffix(stop, "refs") {
			want = bare
		}
		got, err := discoverRepo(from)
		var nr *noRepoError
		if !errors.As(err, &nr) || !strings.Contains(err.Error(), "stopped at "+want+", a git repository that is not a cairn index") {
			t.Fatalf("from %s: %q, %v; want a stop at %s", from, got, err, want)
		}
		if code, hint := classify(err); code != exitNotFound || !strings.Contains(hint, "--repo DIR") || !strings.Contains(hint, "cairn init") || strings.Contains(hint, err.Error()) {
			t.Fatalf("classify: exit %d, hint %q; want 4 and a hint that says what to do", code, hint)
		}
	}
}

// TestDiscoverRefusesAnotherUsersRepository: a repository found above
// the current directory that another user owns is refused (git's
// safe.directory), with exit 3 and the way to use it anyway.
func TestDiscoverRefusesAnotherUsersRepository(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user needs root")
	}
	parent := filepath.Join(t.TempDir(), "parent")
	initRepo(t, parent)
	from := filepath.Join(parent, "sub")
	if err := os.MkdirAll(from, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(parent, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	got, err := discoverRepo(from)
	var no *notOwnedError
	if !errors.As(err, &no) || !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Fatalf("from %s: %q, %v; want a refusal naming the owner", from, got, err)
	}
	if code, hint := classify(err); code != exitRefused || !strings.Contains(hint, "--repo "+parent) {
		t.Fatalf("classify: exit %d, hint %q", code, hint)
	}
}

// TestDiscoverStopsAtAFilesystemBoundary: discovery does not cross into
// another filesystem (git's GIT_DISCOVERY_ACROSS_FILESYSTEM default):
// from /proc/self it stops at /proc, the top of proc's filesystem.
func TestDiscoverStopsAtAFilesystemBoundary(t *testing.T) {
	proc, err1 := os.Stat("/proc/self")
	root, err2 := os.Stat("/")
	if err1 != nil || err2 != nil {
		t.Skip("no /proc")
	}
	_, pd, ok1 := ownerDevice(proc)
	_, rd, ok2 := ownerDevice(root)
	if !ok1 || !ok2 || pd == rd {
		t.Skip("/proc is not another filesystem here")
	}
	_, err := discoverRepo("/proc/self")
	if err == nil || !strings.Contains(err.Error(), "stopped at /proc, the top of its filesystem") {
		t.Fatalf("from /proc/self: %v; want a stop at /proc", err)
	}
}
