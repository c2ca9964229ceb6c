package main

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
)

// raceEnabled is set by race_test.go in -race builds.
var raceEnabled bool

func cairnCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command("cairn", args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "CAIRN_KEY=")
	return cmd
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cairnCmd(t, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Attack 11: a publish killed with SIGKILL at random moments, many times,
// never leaves the repository unverifiable or referencing a missing blob.
func TestPublishKilledAtRandom(t *testing.T) {
	rounds := 40
	if testing.Short() || raceEnabled {
		rounds = 20 // every process is several times slower under the race detector
	}
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	mustRun(t, "key", "new", p("root.key"))
	mustRun(t, "key", "new", p("alice.key"))
	mustRun(t, "init", p("repo"), "--root-key", p("root.key"))
	mustRun(t, "key", "grant", "--repo", p("repo"), "--key", p("root.key"), p("alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")

	artifact := make([]byte, 4<<20) // big enough that a kill can land mid-blob
	pkg := func(i int) string {
		d := p(fmt.Sprintf("pkg%d", i))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "cairn-package.yaml"), []byte(fmt.Sprintf("name: acme/crash\nversion: 1.0.%d\nartifacts:\n  - kind: source\n    file: src.tar.gz\n  - kind: binary\n    platform: linux-amd64\n    file: bin.tar.gz\n", i)), 0o644)
		rand.Read(artifact)
		os.WriteFile(filepath.Join(d, "src.tar.gz"), artifact, 0o644)
		os.WriteFile(filepath.Join(d, "bin.tar.gz"), artifact[:1<<20], 0o644)
		return d
	}
	// One undisturbed publish gives the window to kill in.
	start := time.Now()
	mustRun(t, "publish", "--repo", p("repo"), "--key", p("alice.key"), pkg(0))
	window := time.Since(start) * 3 / 2

	published := map[string]bool{"1.0.0": true}
	for i := 1; i <= rounds; i++ {
		cmd := cairnCmd(t, "publish", "--repo", p("repo"), "--key", p("alice.key"), pkg(i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(mrand.Int64N(int64(window))))
		cmd.Process.Signal(syscall.SIGKILL) // may land after the publish ended: both outcomes count
		err := cmd.Wait()
		if err == nil {
			published[fmt.Sprintf("1.0.%d", i)] = true
		}
	}
	t.Logf("%d rounds: %d publishes killed before they finished, %d completed", rounds, rounds+1-len(published), len(published))

	mustRun(t, "verify", "--repo", p("repo"), "--full")
	// Nothing referenced is missing: every descriptor and artifact of every
	// version in the index is in the blob store, and reads back verified.
	ctx := context.Background()
	r, err := index.Open(ctx, p("repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	views, err := r.Show(ctx, "acme/crash", "")
	if err != nil {
		t.Fatal(err)
	}
	inIndex := map[string]bool{}
	for _, v := range views {
		inIndex[v.Version] = true
		refs := []blob.Ref{v.Ref}
		for _, a := range v.Descriptor.Artifacts {
			refs = append(refs, a.Ref)
		}
		for _, ref := range refs {
			if _, err := blob.ReadAll(ctx, r.Blobs, ref); err != nil {
				t.Fatalf("%s@%s references %s, which the store cannot give back: %v", v.Name, v.Version, ref, err)
			}
		}
		if _, err := descriptor.Parse(mustBlob(t, r, v.Ref)); err != nil {
			t.Fatal(err)
		}
	}
	for v := range published {
		if !inIndex[v] {
			t.Fatalf("publish of %s exited 0 but the version is not in the index", v)
		}
	}
	// git agrees the object store is sound.
	if out, err := exec.Command("git", "--git-dir", p("repo/index.git"), "fsck", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck after kills: %v\n%s", err, out)
	}
	// And the repository still takes new work.
	mustRun(t, "publish", "--repo", p("repo"), "--key", p("alice.key"), pkg(rounds+1))
}

func mustBlob(t *testing.T, r *index.Repo, ref blob.Ref) []byte {
	b, err := blob.ReadAll(context.Background(), r.Blobs, ref)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
