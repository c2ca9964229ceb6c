package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/transport"
)

// slowHookFile, in a served repository, makes the test binary's
// pre-receive hook sleep for the duration it holds before it checks.
const slowHookFile = "test-slow-hook"

// An honest push whose pre-receive hook runs longer than the client's
// stall window is not cut: the server sends keepalives often enough,
// and they reach the client at once, and git's low-speed limit is low
// enough for keepalives to count.
func TestSlowHookPushNotCut(t *testing.T) {
	f := newFixture(t)
	c, p := publishInClone(t, f, "acme/slow", "1.0.0", [][3]string{{"source", "", "src.tar.gz"}})
	upload(t, f, c, p.Ref, p.Descriptor.Artifacts[0].Ref)
	t.Setenv(transport.EnvStall, "2s")
	if err := os.WriteFile(filepath.Join(f.repo.Dir, slowHookFile), []byte("5s"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := pushClone(t, f, c)
	if err != nil {
		t.Fatalf("a push whose hook took 5 s was cut by a 2 s stall window (after %v):\n%s", time.Since(start).Round(time.Millisecond), out)
	}
	head, _ := c.Head(f.ctx, index.MainRef)
	if got, _ := f.repo.Head(f.ctx, index.MainRef); got != head {
		t.Fatalf("the server's main is %s, want the pushed %s", got, head)
	}
}
