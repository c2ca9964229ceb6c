package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newUnpacker is an unpacker over a fresh package directory inside a
// parent directory that an escape would write to.
func newUnpacker(t *testing.T) (*unpacker, string, string) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "pkg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return &unpacker{archive: "a.tar", root: root, prefix: "pkg", limits: Limits{}.withDefaults(),
		links: map[string]string{}, regular: map[string]File{}}, dir, parent
}

// Writes go through an os.Root: a link the unpacker's own checks do not
// know of (here made behind its back) still cannot carry a write out of
// the package's directory.
func TestRootConfinesWrites(t *testing.T) {
	u, dir, parent := newUnpacker(t)
	if err := os.Symlink("..", filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	err := u.file("up/escaped", 0o644, 1, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "entry up/escaped") {
		t.Fatalf("a write through an unknown link out = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(parent, "escaped")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file was written outside the package's directory: %v", err)
	}
	if err := u.dir("up/d/"); err == nil {
		t.Fatal("a directory was made through an unknown link out")
	}
	if _, err := os.Lstat(filepath.Join(parent, "d")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a directory was made outside the package's directory: %v", err)
	}
}

// The operating system's resolution through the os.Root is a second
// judge of links: one that the archive's own map of links misses (as a
// case-insensitive disk would) is refused.
func TestJudgeLinksAsksTheRoot(t *testing.T) {
	u, dir, _ := newUnpacker(t)
	if err := os.Symlink("..", filepath.Join(dir, "UP")); err != nil {
		t.Fatal(err)
	}
	if err := u.symlink("l", "UP/pkg/../../x"); err != nil {
		t.Fatal(err)
	}
	err := u.judgeLinks()
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), `entry "l": a symlink to "UP/pkg/../../x" does not resolve inside the package's directory`) {
		t.Fatalf("judgeLinks = %v", err)
	}
}
