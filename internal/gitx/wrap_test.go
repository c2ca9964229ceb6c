package gitx

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
)

// git's failures keep the exec error (%w): callers can ask for the exit
// status.
func TestGitErrorsWrap(t *testing.T) {
	r, err := InitBare(filepath.Join(t.TempDir(), "r.git"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var exit *exec.ExitError
	if _, err := r.run(ctx, nil, "cat-file", "-t", "0000000000000000000000000000000000000001"); !errors.As(err, &exit) {
		t.Errorf("git: %v, want an *exec.ExitError within", err)
	}
	if err := r.UpdateRef(ctx, "refs/heads/x", "0000000000000000000000000000000000000001", "", "test"); !errors.As(err, &exit) || errors.Is(err, ErrRefMoved) {
		t.Errorf("update-ref: %v, want an *exec.ExitError within", err)
	}
	err = r.Walk(ctx, WalkOptions{To: "no-such-rev"}, func(*LogEntry) error { return nil })
	if !errors.As(err, &exit) {
		t.Errorf("git log: %v, want an *exec.ExitError within", err)
	}
}
