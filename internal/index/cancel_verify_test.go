package index_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/index"
)

// A full verification whose context ends while its rules are behind its
// readers (^C on cairn pull or cairn verify --full) returns the
// context's error: not a rule broken by a file it never read, and not
// never (the rules waited for files the reader had dropped).
func TestVerifyCancelledReturns(t *testing.T) {
	ix, err := gen.Build(t.Context(), filepath.Join(t.TempDir(), "ix"), 6_000, false)
	if err != nil {
		t.Fatal(err)
	}
	for try := range 3 {
		ctx, cancel := context.WithCancel(t.Context())
		l := ix.Repo.Main()
		n := 0
		l.Progress = func(index.Progress) {
			if n++; n == 3 {
				cancel()
			}
		}
		done := make(chan error, 1)
		go func() { _, err := ix.Repo.VerifyLine(ctx, l, true); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("try %d: a verification cancelled after two commits returned %v; want context.Canceled", try, err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("try %d: the verification still runs 2 minutes after its context was cancelled", try)
		}
		cancel()
	}
}
