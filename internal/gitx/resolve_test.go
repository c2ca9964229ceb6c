package gitx

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// ResolveRef says "" only for a ref that is absent: a git cut by a
// cancelled context has not answered, and says so (before: "", nil, so a
// sync cut while it ran reported an upstream with no name clashes).
func TestResolveRefCancelled(t *testing.T) {
	r, err := InitBare(filepath.Join(t.TempDir(), "r.git"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if id, err := r.ResolveRef(ctx, "refs/heads/absent"); id != "" || err != nil {
		t.Fatalf("absent ref: %q, %v; want \"\", nil", id, err)
	}
	cut, cancel := context.WithCancel(ctx)
	cancel()
	if id, err := r.ResolveRef(cut, "refs/heads/absent"); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %q, %v; want context.Canceled", id, err)
	}
}
