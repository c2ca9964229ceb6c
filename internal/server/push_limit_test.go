package server

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// git runs git in dir and returns its combined output.
func gitIn(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A push over --max-push is refused with a message that names the
// limit and the flag, shown by the real git client — for a small push
// (sent with a Content-Length) and a large one (sent chunked).
func TestPushOverLimitSaysSo(t *testing.T) {
	for _, size := range []int{200 << 10, 3 << 20} {
		s := newServed(t, Options{MaxPush: 100 << 10})
		dir := filepath.Join(t.TempDir(), "clone")
		if out, err := gitIn(t, ".", "clone", "-q", s.url+"/index.git", dir); err != nil {
			t.Fatalf("clone: %v\n%s", err, out)
		}
		big := make([]byte, size)
		rand.Read(big)
		os.WriteFile(filepath.Join(dir, "big"), big, 0o644)
		gitIn(t, dir, "add", "big")
		if out, err := gitIn(t, dir, "commit", "-q", "-m", "big"); err != nil {
			t.Fatalf("commit: %v\n%s", err, out)
		}
		out, err := gitIn(t, dir, "push", "origin", "main")
		if err == nil {
			t.Fatalf("a push of %d bytes over a 100 KiB limit was accepted:\n%s", size, out)
		}
		for _, want := range []string{"push of more than 102400 bytes", "--max-push"} {
			if !strings.Contains(out, want) {
				t.Errorf("push of %d bytes: git shows no %q:\n%s", size, want, out)
			}
		}
		waitNoGit(t, 2*time.Second) // the refused push's git processes are gone
	}
}

// A push over 1 MiB, which git sends chunked, reaches git and the
// pre-receive hook (which refuses a file that is not a record).
func TestLargePushReachesHook(t *testing.T) {
	s := newServed(t, Options{MaxPush: 16 << 20})
	dir := filepath.Join(t.TempDir(), "clone")
	if out, err := gitIn(t, ".", "clone", "-q", s.url+"/index.git", dir); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	big := make([]byte, 3<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(dir, "big"), big, 0o644)
	gitIn(t, dir, "add", "big")
	if out, err := gitIn(t, dir, "commit", "-q", "-m", "big"); err != nil {
		t.Fatalf("commit: %v\n%s", err, out)
	}
	out, err := gitIn(t, dir, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "remote: cairn: refused") {
		t.Fatalf("a 3 MiB push did not reach the hook (%v):\n%s", err, out)
	}
}
