package remote

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
)

// TestMain lets the test binary be the server's pre-receive hook: the
// server runs it as "EXE hook pre-receive --repo DIR", a real process.
func TestMain(m *testing.M) { servertest.Main(m) }

func newSigner(t *testing.T) keys.Signer {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewSigner(priv)
}

type world struct {
	t     *testing.T
	ctx   context.Context
	repo  *index.Repo // the server's repository
	root  keys.Signer
	ckpt  keys.Signer
	intro string
	url   string
	dir   string
}

// newWorld makes a repository with a checkpoint key and serves it on a
// real HTTP server.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := newUnserved(t)
	w.url = w.serve(w.repo)
	return w
}

// newUnserved is newWorld's repository, its checkpoint key granted, not
// served yet.
func newUnserved(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), root: newSigner(t), ckpt: newSigner(t), dir: t.TempDir()}
	r, intro, err := index.Init(w.ctx, filepath.Join(w.dir, "server"), []keys.Signer{w.root}, []string{"root"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w.repo, w.intro = r, intro.ID
	w.grant(w.ckpt, "server", "checkpoint")
	return w
}

func (w *world) serve(r *index.Repo, opts ...server.Options) string {
	var o server.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.CheckpointKey = w.ckpt
	ts := httptest.NewServer(w.server(r, o).Handler())
	w.t.Cleanup(ts.Close)
	return ts.URL
}

// server makes a cairn server of r with o, this test binary as its
// hook, w's checkpoint key unless o names one, closed with the test.
func (w *world) server(r *index.Repo, o server.Options) *server.Server {
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		w.t.Fatal(err)
	}
	o.Exe, o.Logger = exe, slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.CheckpointKey == nil {
		o.CheckpointKey = w.ckpt
	}
	srv, err := server.New(r, o)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { srv.Close() })
	return srv
}

func (w *world) grant(s keys.Signer, holder string, scopes ...string) {
	w.t.Helper()
	if _, err := author.Grant(w.ctx, w.repo, author.KeyGrant{Key: s.Public(), Holder: holder, Scopes: scopes}, w.root); err != nil {
		w.t.Fatal(err)
	}
}

// client makes a replica that follows the server as "origin".
func (w *world) client(name, url string) *index.Repo {
	w.t.Helper()
	r := w.replica(name, url)
	if _, err := Pull(w.ctx, r, "origin", Options{}); err != nil {
		w.t.Fatal(err)
	}
	return r
}

func pkgDir(t *testing.T, name, version string) string {
	dir := t.TempDir()
	manifest := fmt.Sprintf("name: %s\nversion: %s\nartifacts:\n  - kind: source\n    file: src.tar.gz\n", name, version)
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(manifest), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source of "+name+"@"+version), 0o644)
	return dir
}

// Eight publishers push at once: every push lands exactly once (the
// losers rebase and push again), the index verifies, no blob is lost.
func TestConcurrentPublishers(t *testing.T) {
	w := newWorld(t)
	const n = 8
	type publisher struct {
		key  keys.Signer
		repo *index.Repo
		name string
	}
	var ps []publisher
	for i := 0; i < n; i++ {
		k := newSigner(t)
		w.grant(k, fmt.Sprintf("p%d", i), fmt.Sprintf("publish:team%d/*", i))
		ps = append(ps, publisher{key: k, name: fmt.Sprintf("team%d/lib", i)})
	}
	for i := range ps {
		ps[i].repo = w.client(fmt.Sprintf("client%d", i), w.url)
		if _, err := author.Publish(w.ctx, ps[i].repo, pkgDir(t, ps[i].name, "1.0.0"), ps[i].key); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	rebased := 0
	var mu sync.Mutex
	for i := range ps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Half push at once without fetching (Fresh), on a head
			// the others move: the server refuses, they fetch, rebase.
			p, err := Push(w.ctx, ps[i].repo, "origin", ps[i].key, Options{Fresh: i%2 == 1})
			errs[i] = err
			if err == nil {
				mu.Lock()
				rebased += p.Rebased
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publisher %d: %v", i, err)
		}
	}
	res, err := w.repo.Verify(w.ctx, true)
	if err != nil {
		t.Fatalf("the server's index does not verify: %v", err)
	}
	// Root, 9 grants, and per publisher a descriptor and an authored record.
	if want := 1 + 9 + 2*n; res.Total != want {
		t.Errorf("the index holds %d files, want %d: a push was lost or landed twice", res.Total, want)
	}
	for _, p := range ps {
		views, err := w.repo.Show(w.ctx, p.name, "")
		if err != nil || len(views) != 1 {
			t.Fatalf("%s: %d versions (%v), want 1", p.name, len(views), err)
		}
		d, _, err := w.repo.Descriptor(w.ctx, p.name, "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range d.Artifacts {
			if ok, _ := w.repo.Blobs.Stat(w.ctx, a.Ref); !ok {
				t.Errorf("%s: blob %s lost", p.name, a.Ref)
			}
		}
	}
	t.Logf("%d rebases among %d concurrent pushes", rebased, n)
}

// A server rolled back to an older head is refused as a rollback, with
// both heads, and the client's copy stays where it was: the server went
// back in time, not the local copy.
func TestRollbackRefused(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	before, _ := w.repo.Head(w.ctx, index.MainRef)
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	after, _ := w.repo.Head(w.ctx, index.MainRef)
	c := w.client("c", w.url)
	// The server's operator (or an attacker on it) rolls main back. The
	// server itself refuses to sign the smaller tree.
	if _, err := indextest.Git(t, w.repo, "update-ref", index.MainRef, before); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(w.repo.LocalDir(), "verified.json"))
	if _, err := Pull(w.ctx, c, "origin", Options{}); err == nil || !strings.Contains(err.Error(), "SECURITY ERROR: refusing to sign a checkpoint") || !strings.Contains(err.Error(), "the log shrank") {
		t.Fatalf("pull from a server whose main was rolled back: %v, want its refusal to sign", err)
	}
	// Served again with its memory of what it signed gone (a restored
	// backup), it signs the older tree: the client refuses it.
	os.Remove(filepath.Join(w.repo.LocalDir(), "checkpoint"))
	url := w.serve(w.repo)
	setURL(t, c, "origin", url)
	_, err := Pull(w.ctx, c, "origin", Options{})
	var rb *RollbackError
	if !errors.As(err, &rb) || !errors.Is(err, ErrRollback) {
		t.Fatalf("pull of a rolled-back server: err = %v, want a *RollbackError", err)
	}
	if errors.Is(err, index.ErrFork) {
		t.Errorf("a rollback is reported as a fork: %v", err)
	}
	if rb.Verified != after || rb.Head != before || rb.URL != url {
		t.Fatalf("the error carries %+v, want verified %s, head %s, URL %s", rb, after, before, url)
	}
	for _, want := range []string{"SECURITY ERROR: remote origin (" + url + ") rolled back: it serves head " + before + ", an ancestor of " + after, "this copy stays at " + after} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	// The client's copy stays at what it verified.
	if got, _ := c.Head(w.ctx, Ref("origin")); got != after {
		t.Fatalf("the remote's ref moved to %s after a refused pull", got)
	}
	if got, _ := c.Head(w.ctx, index.MainRef); got != after {
		t.Fatalf("main moved to %s after a refused pull", got)
	}
	if got, _, _ := c.Main().VerifiedHead(); got != after {
		t.Fatalf("main's verified head is %s after a refused pull, want %s", got, after)
	}
}

// A still-fresh checkpoint of an older head, replayed to a client that
// verified past it, is a rollback too, even when the history served
// behind it is the newest.
func TestReplayedOldCheckpointIsRollback(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	before, _ := w.repo.Head(w.ctx, index.MainRef)
	old := checkpointOf(t, w.url)
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	after, _ := w.repo.Head(w.ctx, index.MainRef)
	c := w.client("c", w.url)
	setURL(t, c, "origin", mitm(t, w.url, old))
	_, err := Pull(w.ctx, c, "origin", Options{})
	var rb *RollbackError
	if !errors.As(err, &rb) || rb.Verified != after || rb.Head != before {
		t.Fatalf("an old checkpoint replayed: err = %v, want a *RollbackError from %s back to %s", err, after, before)
	}
	if got, _ := c.Head(w.ctx, index.MainRef); got != after {
		t.Fatalf("main moved to %s", got)
	}
}

// A checkpoint older than the bound is a frozen mirror.
func TestFrozenCheckpoint(t *testing.T) {
	w := newWorld(t)
	c := w.client("c", w.url)
	later := func() time.Time { return time.Now().Add(25 * time.Hour) }
	_, err := Pull(w.ctx, c, "origin", Options{Now: later})
	var ce *CheckpointError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "past the 24h0m0s bound") || len(ce.Evidence) == 0 {
		t.Fatalf("a 25-hour-old checkpoint: err = %v, want a *CheckpointError with evidence", err)
	}
	if n := strings.Count(err.Error(), "SECURITY ERROR"); n != 1 {
		t.Fatalf("a 25-hour-old checkpoint: %q says SECURITY ERROR %d times, want once", err, n)
	}
}

// A server that signs one head and serves another history — two clients
// shown different heads — is caught by its own signature.
func TestSplitView(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	// A second copy of the same index, given a different history.
	other, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "other"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	head, _ := w.repo.Head(w.ctx, index.MainRef)
	if _, err := indextest.Git(t, other, "fetch", "-q", indextest.GitDir(t, w.repo), index.MainRef+":"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	_ = head
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Publish(w.ctx, other, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	otherURL := w.serve(other)
	// The server signs checkpoints of one history and serves the other.
	toOther, _ := url.Parse(otherURL)
	toSigned, _ := url.Parse(w.url)
	other2, signed := httputil.NewSingleHostReverseProxy(toOther), httputil.NewSingleHostReverseProxy(toSigned)
	split := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/checkpoint" {
			signed.ServeHTTP(rw, r)
			return
		}
		other2.ServeHTTP(rw, r)
	}))
	defer split.Close()
	c, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "c"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := Add(c, Remote{Name: "origin", URL: split.URL, Introduction: w.intro}); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(w.ctx, c, "origin", Options{})
	var ce *CheckpointError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "does not contain it") || !strings.Contains(string(ce.Evidence), "\ncairn-head ") {
		t.Fatalf("a split view: err = %v, want a *CheckpointError with the signed checkpoint", err)
	}
	if got, _ := c.Head(w.ctx, index.MainRef); got != "" {
		t.Fatalf("main was created at %s from a refused pull", got)
	}
	// A client that pulled one history and is then shown the other is
	// refused too, with both heads.
	c2 := w.client("c2", w.url)
	verified, _ := c2.Head(w.ctx, index.MainRef)
	rm, _ := Get(c2, "origin")
	rm.URL = otherURL
	os.Remove(configPath(c2, "origin"))
	if err := Add(c2, *rm); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(w.ctx, c2, "origin", Options{})
	var fe *ForkError
	if !errors.As(err, &fe) || !errors.Is(err, index.ErrFork) || errors.Is(err, ErrRollback) {
		t.Fatalf("another history after a verified one: err = %v, want a *ForkError", err)
	}
	if fe.Verified != verified || fe.Head == verified || !strings.Contains(err.Error(), "SECURITY ERROR: remote origin ("+otherURL+") serves another history: its head "+fe.Head+" neither descends from nor precedes "+verified) {
		t.Fatalf("the fork's error does not name both heads: %v", err)
	}
	if got, _ := c2.Head(w.ctx, index.MainRef); got != verified {
		t.Fatalf("main moved to %s after a refused pull", got)
	}
}

// A push that breaks a rule is refused by the server, and says which.
func TestPushRefusedForRule(t *testing.T) {
	w := newWorld(t)
	alice, mallory := newSigner(t), newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	w.grant(mallory, "mallory", "publish:evil/*")
	c := w.client("c", w.url)
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(w.ctx, c, "origin", alice, Options{}); err != nil {
		t.Fatal(err)
	}
	// Uploads are refused to a key without a publish scope.
	up := &blob.HTTP{URL: w.url, Signer: uploadSigner(newSigner(t))}
	data := []byte("unreferenced")
	err := up.Put(w.ctx, blob.DigestBytes(data), strings.NewReader(string(data)))
	if !errors.Is(err, blob.ErrRefused) || !strings.Contains(err.Error(), "is not granted in this repository") {
		t.Fatalf("upload by an ungranted key: err = %v", err)
	}
}

// front is an address that proxies to an honest server until an
// attacker takes it (take), and back to the honest one (take("")).
type front struct {
	URL      string
	attacker atomic.Pointer[string]
}

func newFront(t *testing.T, honestURL string) *front {
	f := &front{}
	honest, _ := url.Parse(honestURL)
	toHonest := httputil.NewSingleHostReverseProxy(honest)
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if a := f.attacker.Load(); a != nil {
			u, _ := url.Parse(*a)
			httputil.NewSingleHostReverseProxy(u).ServeHTTP(rw, r)
			return
		}
		toHonest.ServeHTTP(rw, r)
	}))
	t.Cleanup(ts.Close)
	f.URL = ts.URL
	return f
}

// take sends every request to the attacker at u from now on ("": to the
// honest server again).
func (f *front) take(u string) {
	if u == "" {
		f.attacker.Store(nil)
		return
	}
	f.attacker.Store(&u)
}
