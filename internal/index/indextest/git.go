package indextest

// The git an operator or an attacker runs on an index, behind cairn's back:
// tests of the packages above index use it to tamper with what cairn reads.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index"
)

// GitDir returns r's git directory, for a test that acts on it with git
// itself, as an operator or an attacker would, behind cairn's back.
func GitDir(t testing.TB, r *index.Repo) string {
	t.Helper()
	if fi, err := os.Stat(filepath.Join(r.Dir, "index.git")); err == nil && fi.IsDir() {
		return filepath.Join(r.Dir, "index.git")
	}
	out, err := exec.Command("git", "-C", r.Dir, "rev-parse", "--absolute-git-dir").Output()
	if err != nil {
		t.Fatalf("finding the git directory of %s: %v", r.Dir, err)
	}
	return strings.TrimSpace(string(out))
}

// Git runs git on r's git directory and returns its standard output;
// a failure's error carries what git said.
func Git(t testing.TB, r *index.Repo, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir", GitDir(t, r)}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), &gitFailed{args: args, err: err, said: strings.TrimSpace(stderr.String())}
	}
	return string(out), nil
}

// gitFailed is a git run that failed, with what git said.
type gitFailed struct {
	args []string
	err  error
	said string
}

func (e *gitFailed) Error() string {
	return "git " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.said
}

func (e *gitFailed) Unwrap() error { return e.err }
