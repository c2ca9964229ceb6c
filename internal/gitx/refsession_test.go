package gitx

import (
	"errors"
	"testing"
)

// A session moves a ref many times through one git, each move a
// compare-and-swap: a stale one is ErrRefMoved and leaves the ref, and
// the session goes on (with a new git) after it. Objects written after
// the session's git started are found.
func TestRefSession(t *testing.T) {
	ctx, r, rd := newRepo(t)
	s := r.NewRefSession("cairn: test")
	defer s.Close()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := s.cmd.Process.Pid
	c1 := commitFiles(t, r, rd, "", "a.json") // written after git started
	if err := s.Update(ctx, "refs/heads/main", c1, ""); err != nil {
		t.Fatal(err)
	}
	c2 := commitFiles(t, r, rd, c1, "b.json")
	if err := s.Update(ctx, "refs/heads/main", c2, c1); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.ResolveRef(ctx, "refs/heads/main"); got != c2 {
		t.Fatalf("main is at %s, want %s", got, c2)
	}
	if s.cmd == nil || s.cmd.Process.Pid != pid {
		t.Fatal("the session started a second git for two updates")
	}

	stale := commitFiles(t, r, rd, c1, "stale.json")
	if err := s.Update(ctx, "refs/heads/main", stale, c1); !errors.Is(err, ErrRefMoved) {
		t.Fatalf("a stale update: %v, want ErrRefMoved", err)
	}
	if err := s.Update(ctx, "refs/heads/main", stale, ""); !errors.Is(err, ErrRefMoved) {
		t.Fatalf("creating a ref that exists: %v, want ErrRefMoved", err)
	}
	if got, _ := r.ResolveRef(ctx, "refs/heads/main"); got != c2 {
		t.Fatalf("a refused update moved main to %s", got)
	}
	c3 := commitFiles(t, r, rd, c2, "c.json")
	if err := s.Update(ctx, "refs/heads/main", c3, c2); err != nil {
		t.Fatalf("the session after a refusal: %v", err)
	}
	if got, _ := r.ResolveRef(ctx, "refs/heads/main"); got != c3 {
		t.Fatalf("main is at %s, want %s", got, c3)
	}
	if err := s.Update(ctx, "refs/heads/other", c1, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("closing the session: %v", err)
	}
	if err := s.Update(ctx, "refs/heads/main", c1, c3); err == nil {
		t.Fatal("a closed session moved a ref")
	}
	if got, _ := r.ResolveRef(ctx, "refs/heads/main"); got != c3 {
		t.Fatalf("main is at %s after the session closed, want %s", got, c3)
	}
}
