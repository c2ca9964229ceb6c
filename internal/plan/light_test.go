package plan

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/witness"
)

// A url repository, read by the light client unless it says light:
// false, resolves, locks, checks and evaluates the policy as a replica
// (light: false) does, with no clone in the cache:
// the same plan, the same checkpoint in the lock. A lock whose head the
// server has moved past still checks (its checkpoint proves its head is
// in the served history); one whose checkpoint is of another history
// does not. Offline, what was proved last is read and checked again.
func TestLightSource(t *testing.T) {
	w := newWorld(t)
	url := servertest.Serve(w.World)
	repo := fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\n", url, w.Intro)
	rest := "snapshot: lts-1.0\npackages:\n  acme/app: ^1.0\nplatforms: [linux-amd64]\npolicy: policy.yaml\n"

	w.write("cairn.yaml", repo+"    light: false\n"+rest)
	replicaCache := t.TempDir()
	_, rsrcs, replica, err := w.lock(Options{Cache: replicaCache})
	if err != nil {
		t.Fatal(err)
	}
	if rsrcs[0].Repo == nil || rsrcs[0].View != nil {
		t.Fatalf("light: false is not read into a replica: %+v", rsrcs[0])
	}
	// A witness quorum in cairn.yaml holds for a replica too: no witness
	// cosigns this server's checkpoints.
	wk, err := witness.VerifierKey("w.example", indextest.NewSigner().Public())
	if err != nil {
		t.Fatal(err)
	}
	witnessed := fmt.Sprintf("    witnesses: [%s]\n", wk)
	w.write("cairn.yaml", repo+"    light: false\n"+witnessed+rest)
	var qe *witness.QuorumError
	if _, _, _, err := w.lock(Options{Cache: replicaCache}); !errors.As(err, &qe) {
		t.Fatalf("a replica below its quorum: %v", err)
	}
	w.write("cairn.yaml", repo+"    light: true\n"+witnessed+rest)
	if _, _, _, err := w.lock(Options{Cache: t.TempDir()}); !errors.As(err, &qe) {
		t.Fatalf("a light repository below its quorum: %v", err)
	}
	cache := t.TempDir()
	w.write("cairn.yaml", repo+rest) // no light: key: light
	p, srcs, l, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if srcs[0].View == nil || srcs[0].Repo != nil {
		t.Fatalf("the source is not read by the light client: %+v", srcs[0])
	}
	if _, err := os.Stat(filepath.Join(cache, "indexes")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a light source cloned into the cache: %v", err)
	}
	if versions(l) != versions(replica) || l.Repositories[0].Head != replica.Repositories[0].Head || l.Repositories[0].Records != 0 || replica.Repositories[0].Records == 0 {
		t.Fatalf("light plan %s at %+v; the replica's %s at %+v", versions(l), l.Repositories[0], versions(replica), replica.Repositories[0])
	}
	if !srcs[0].View.Unwitnessed {
		t.Fatal("a repository that names no witness is not said to be unwitnessed")
	}
	// A light client counts no records: a count in its lock (the digest
	// made again) is not the lock's, and is refused as a replica's wrong
	// count is.
	good, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	counted, perr := relock(t, good, func(l *Lock) { l.Repositories[0].Records = 5 })
	if err := Check(w.Ctx, p, counted, perr, srcs); !errors.Is(err, ErrLockMismatch) || !strings.Contains(err.Error(), "repository acme: 5 records at head "+l.Repositories[0].Head+", but a light client's lock counts none (0: not known)") {
		t.Fatalf("a light lock with a count of records: %v", err)
	}
	if err := Check(w.Ctx, p, l, nil, srcs); err != nil {
		t.Fatalf("Check of a fresh light lock: %v", err)
	}
	pol, err := LoadPolicy(p, "", srcs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Evaluate(l, srcs, pol, time.Now()); err != nil {
		t.Fatalf("policy: %v", err)
	}

	// The server moves on: a vulnerability and a new version.
	w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: "vulnerable", VulnID: "GHSA-9999", Severity: "high"})
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.4.0", Deps: map[string]string{"acme/log": "^1.0"}})
	p2, srcs2, _, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if srcs2[0].Head() == l.Repositories[0].Head {
		t.Fatal("the server did not move")
	}
	if err := Check(w.Ctx, p2, l, nil, srcs2); err != nil {
		t.Fatalf("Check of a lock the server moved past: %v", err)
	}
	_, err = Evaluate(l, srcs2, pol, time.Now())
	var re *policy.RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "acme/log@1.1.0: forbid high-vulnerabilities: vulnerable GHSA-9999 (high)") {
		t.Fatalf("Evaluate at the new head = %v", err)
	}

	// A lock's checkpoint of another history (a fork of the index, from
	// the same introduction): refused.
	fork := forkWorld(t, w.World)
	fork.Publish(indextest.Package{Name: "acme/evil", Version: "1.0.0"})
	resp, err := http.Get(servertest.Serve(fork) + "/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	note, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	forked, err := checkpoint.Claimed(note)
	if err != nil {
		t.Fatal(err)
	}
	other := *l
	other.Repositories = []LockedRepo{l.Repositories[0]}
	other.Repositories[0].Head, other.Repositories[0].Checkpoint = forked.Head, string(note)
	if err := Check(w.Ctx, p2, &other, nil, srcs2); !errors.Is(err, ErrLockMismatch) || !strings.Contains(err.Error(), "SECURITY ERROR") || !strings.Contains(err.Error(), forked.Head) {
		t.Fatalf("a lock of another history: %v", err)
	}

	// Offline: what was proved last, checked again; nothing else.
	p3, srcs3, l3, err := w.lock(Options{Cache: cache, Offline: true})
	if err != nil {
		t.Fatalf("offline: %v", err)
	}
	if l3.Repositories[0].Head != srcs2[0].Head() {
		t.Fatalf("offline at head %s, the last read online was at %s", l3.Repositories[0].Head, srcs2[0].Head())
	}
	if err := Check(w.Ctx, p3, l3, nil, srcs3); err != nil {
		t.Fatalf("offline check: %v", err)
	}
	if _, _, _, err := w.lock(Options{Cache: t.TempDir(), Offline: true}); err == nil || !strings.Contains(err.Error(), "never read online") {
		t.Fatalf("offline with an empty cache: %v", err)
	}
	w.write("cairn.yaml", repo+"    light: true\n"+strings.Replace(rest, "acme/app: ^1.0", "acme/app: ^1.0\n  acme/other: \"*\"", 1))
	if _, _, _, err := w.lock(Options{Cache: cache, Offline: true}); !errors.Is(err, light.ErrNotKept) || !strings.Contains(err.Error(), "package acme/other: was not read online") {
		t.Fatalf("offline, a package never read: %v", err)
	}
}

// Two projects share a cache: one locks, the server moves, the other
// locks online, which moves the checkpoint this machine verified last.
// The first still locks and checks offline: the online read that moved
// the checkpoint read again, at the new tree, what was kept at the old.
func TestLightOfflineAfterAnotherProject(t *testing.T) {
	w := newWorld(t)
	url := servertest.Serve(w.World)
	repo := fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\n", url, w.Intro)
	one := repo + "packages:\n  acme/app: ^1.0\nplatforms: [linux-amd64]\n"
	two := repo + "packages:\n  acme/log: ^1.0\nplatforms: [linux-amd64]\n"
	cache := t.TempDir()
	w.write("cairn.yaml", one)
	p, _, l, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	w.Publish(indextest.Package{Name: "acme/other", Version: "1.0.0"})
	w.write("cairn.yaml", two)
	_, srcs2, _, err := w.lock(Options{Cache: cache})
	if err != nil || srcs2[0].Head() == l.Repositories[0].Head {
		t.Fatalf("the other project's lock: %v (the server moved: %v)", err, err == nil && srcs2[0].Head() != l.Repositories[0].Head)
	}
	srcs2.Close() // what it keeps, kept
	// The older tree's documents, read again at the new one, are gone.
	if trees, err := os.ReadDir(filepath.Join(cache, "light", w.Intro+".subjects")); err != nil || len(trees) != 1 {
		t.Errorf("the trees whose documents are kept: %v (%v), want the latest alone", trees, err)
	}
	w.write("cairn.yaml", one)
	_, srcs, again, err := w.lock(Options{Cache: cache, Offline: true})
	if err != nil {
		t.Fatalf("offline, after another project's lock moved the checkpoint: %v", err)
	}
	if versions(again) != versions(l) {
		t.Fatalf("offline: %s, online before: %s", versions(again), versions(l))
	}
	if err := Check(w.Ctx, p, l, nil, srcs); err != nil {
		t.Fatalf("offline check of the first lock: %v", err)
	}
}

// forkWorld copies w's repository (the checkpoint key granted first):
// the same introduction, to grow another history.
func forkWorld(t *testing.T, w *indextest.World) *indextest.World {
	t.Helper()
	if w.Checkpointer == nil {
		w.Checkpointer = indextest.NewSigner()
		w.Grant(w.Checkpointer, "server", "checkpoint")
	}
	f := *w
	f.Dir = filepath.Join(t.TempDir(), "fork")
	if err := os.CopyFS(f.Dir, os.DirFS(w.Dir)); err != nil {
		t.Fatal(err)
	}
	r, err := index.Open(w.Ctx, f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.Repo = r
	return &f
}

func TestLightProjectFields(t *testing.T) {
	intro := strings.Repeat("ab", 32)
	for _, c := range []struct{ yaml, want string }{
		{"  - {name: a, path: x, introduction: " + intro + ", light: true}\n", "not an index on disk"},
		{"  - {name: a, path: x, introduction: " + intro + ", light: false}\n", "not an index on disk"},
		{"  - {name: a, url: http://x, introduction: " + intro + ", witnesses: [nonsense]}\n", "witness"},
		{"  - {name: a, url: http://x, introduction: " + intro + ", quorum: 1}\n", "quorum 1 of 0"},
	} {
		if _, err := ParseProject(".", []byte("repositories:\n"+c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.yaml, err, c.want)
		}
	}
}
