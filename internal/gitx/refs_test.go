package gitx

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ReadRef answers what git answers, from a loose ref, from packed-refs
// after git pack-refs, after a move of a packed ref (loose again), and
// for refs that do not exist; a symbolic ref is left to git.
func TestReadRef(t *testing.T) {
	ctx, r, rd := newRepo(t)
	c1 := commitFiles(t, r, rd, "", "a.json")
	c2 := commitFiles(t, r, rd, c1, "b.json")
	same := func(ref, want string) {
		t.Helper()
		got, err := r.ReadRef(ref)
		if want == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("ReadRef(%s) = %q, %v; want fs.ErrNotExist", ref, got, err)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("ReadRef(%s) = %q, %v; want %s", ref, got, err, want)
		}
		if byGit, _ := r.ResolveRef(ctx, ref); byGit != got {
			t.Fatalf("ReadRef(%s) = %s, git says %s", ref, got, byGit)
		}
	}
	same("refs/heads/main", "")
	if err := r.UpdateRef(ctx, "refs/heads/main", c1, "", "test"); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateRef(ctx, "refs/upstreams/up/main", c2, "", "test"); err != nil {
		t.Fatal(err)
	}
	same("refs/heads/main", c1)
	same("refs/upstreams/up/main", c2)
	same("refs/upstreams/other/main", "")
	same("refs/upstreams/up/main/deeper", "") // a parent is a file

	if out, err := exec.Command("git", "-C", r.GitDir, "pack-refs", "--all").CombinedOutput(); err != nil {
		t.Fatalf("git pack-refs: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(r.GitDir, "refs/heads/main")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after git pack-refs main is still a loose ref (%v): the test reads nothing from packed-refs", err)
	}
	same("refs/heads/main", c1)
	same("refs/upstreams/up/main", c2)
	if err := r.UpdateRef(ctx, "refs/heads/main", c2, c1, "test"); err != nil {
		t.Fatal(err)
	}
	same("refs/heads/main", c2) // loose again, over the packed value

	if out, err := exec.Command("git", "-C", r.GitDir, "symbolic-ref", "refs/heads/alias", "refs/heads/main").CombinedOutput(); err != nil {
		t.Fatalf("git symbolic-ref: %v: %s", err, out)
	}
	if _, err := r.ReadRef("refs/heads/alias"); !errors.Is(err, ErrRefUnread) {
		t.Fatalf("a symbolic ref: %v, want ErrRefUnread", err)
	}
	for _, ref := range []string{"HEAD", "main", "refs/../config"} {
		if _, err := r.ReadRef(ref); !errors.Is(err, ErrRefUnread) {
			t.Errorf("ReadRef(%q): %v, want ErrRefUnread", ref, err)
		}
	}
}
