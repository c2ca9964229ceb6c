package gitx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenSaysDubiousOwnership: a repository another user owns, which git
// refuses (safe.directory), is not reported as "not a git repository":
// git's own message, naming the owner and the way out, comes through.
func TestOpenSaysDubiousOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user needs root")
	}
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("SUDO_UID", "")
	dir := filepath.Join(t.TempDir(), "other.git")
	if _, err := InitBare(dir); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 4242, 4242)
	}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if !errors.Is(err, ErrUnsafeDirectory) || !strings.Contains(err.Error(), "dubious ownership") || !strings.Contains(err.Error(), "safe.directory") || strings.Contains(err.Error(), "not a git repository") {
		t.Fatalf("Open of a repository uid 4242 owns: %v, want git's dubious ownership message", err)
	}
}
