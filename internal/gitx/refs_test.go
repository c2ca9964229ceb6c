package gitx

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
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

// A ref file (a loose ref, packed-refs) that has not changed is not read
// again; every move git makes is seen at once, even of a file kept long
// enough to be answered from memory, and even when the moves come faster
// than the file system's clock ticks.
func TestReadRefKeepsUnchangedFiles(t *testing.T) {
	ctx, r, rd := newRepo(t)
	c1 := commitFiles(t, r, rd, "", "a.json")
	c2 := commitFiles(t, r, rd, c1, "b.json")
	var reads atomic.Int64
	readRefFile = func(name string) ([]byte, error) {
		reads.Add(1)
		return os.ReadFile(name)
	}
	t.Cleanup(func() { readRefFile = os.ReadFile })
	const ref = "refs/heads/main"
	file := filepath.Join(r.GitDir, ref)
	read := func(want string) {
		t.Helper()
		if got, err := r.ReadRef(ref); err != nil || got != want {
			t.Fatalf("ReadRef = %q, %v; want %s", got, err, want)
		}
	}
	// readsOf reads the ref k times, each answering want, and says how
	// many times a ref file was read for them.
	readsOf := func(k int, want string) int64 {
		t.Helper()
		n := reads.Load()
		for range k {
			read(want)
		}
		return reads.Load() - n
	}
	aged := func(name string) { // as if written a while ago
		t.Helper()
		old := time.Now().Add(-2 * racyWindow)
		if err := os.Chtimes(name, old, old); err != nil {
			t.Fatal(err)
		}
	}
	age := func() { aged(file) }

	// A file just written is read every time: another write within the
	// clock's tick could leave its stat as it was.
	if err := r.UpdateRef(ctx, ref, c1, "", "test"); err != nil {
		t.Fatal(err)
	}
	if got := readsOf(2, c1); got != 2 {
		t.Fatalf("a ref file written just now was read %d times in two reads, want 2", got)
	}

	// An old file is read once.
	age()
	if got := readsOf(3, c1); got != 1 {
		t.Fatalf("an unchanged ref file was read %d times in three reads, want 1", got)
	}

	// Every move is seen, the file old each time before it moves.
	for i := range 20 {
		from, to := c1, c2
		if i%2 == 1 {
			from, to = c2, c1
		}
		if err := r.UpdateRef(ctx, ref, to, from, "test"); err != nil {
			t.Fatal(err)
		}
		read(to)
		age()
		read(to) // kept
	}

	// A file rewritten in place (not git's way) is seen too.
	age()
	read(c1)
	if err := os.WriteFile(file, []byte(c2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	read(c2)

	// Packed by git (git gc packs refs): packed-refs is read once while it
	// is unchanged, and every repacking is seen.
	packed := filepath.Join(r.GitDir, "packed-refs")
	pack := func() {
		t.Helper()
		if out, err := exec.Command("git", "-C", r.GitDir, "pack-refs", "--all").CombinedOutput(); err != nil {
			t.Fatalf("git pack-refs: %v: %s", err, out)
		}
		if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("after git pack-refs %s is still a loose ref (%v)", ref, err)
		}
		aged(packed)
	}
	pack()
	if got := readsOf(3, c2); got != 1 {
		t.Fatalf("an unchanged packed-refs was read %d times in three reads, want 1", got)
	}
	if err := r.UpdateRef(ctx, ref, c1, c2, "test"); err != nil {
		t.Fatal(err)
	}
	read(c1) // loose again
	pack()
	read(c1) // packed again: the packed-refs kept said c2
	if err := r.UpdateRef(ctx, ref, c2, c1, "test"); err != nil {
		t.Fatal(err)
	}
	pack()
	read(c2)
}
