package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
)

// syncBuffer is a log sink read while the follower writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// replica is a read replica of a writer, as cairn serve --follow runs
// it: its repository (pinned by the writer's introduction), the server
// that serves it, and the follower that pulls into it.
type replica struct {
	repo *index.Repo
	url  string
	srv  *server.Server
	f    *Follower
	log  *syncBuffer
}

// newReplica makes a replica of the writer at writerURL and starts it
// following, until the test ends.
func (w *world) newReplica(name, writerURL string) *replica {
	return w.replicaOf(name, writerURL, true)
}

// replicaOf makes a replica of the writer at writerURL; one that does not
// run its follower moves only when the test calls rep.f.Once.
func (w *world) replicaOf(name, writerURL string, run bool) *replica {
	t := w.t
	t.Helper()
	r, err := index.InitReplica(w.ctx, filepath.Join(w.dir, name), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := Add(r, Remote{Name: "writer", URL: writerURL, Introduction: w.intro, MaxAge: DefaultMaxAge}); err != nil {
		t.Fatal(err)
	}
	own, err := index.Open(w.ctx, r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Close() })
	rep := &replica{repo: r, log: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(rep.log, nil))
	rep.f = &Follower{Repo: own, Remote: "writer", Every: time.Minute, Log: log}
	writer, err := url.Parse(writerURL)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	rep.srv, err = server.New(r, server.Options{Exe: exe, Logger: log,
		Replica:  &server.Replica{Writer: writer, Nudge: rep.f.Nudge, Refusing: rep.f.Refusing, Stalled: rep.f.Stalled, LastVerified: rep.f.LastVerified},
		Fallback: (&WriterBlobs{Repo: r, Remote: "writer"}).Fetch})
	if err != nil {
		t.Fatal(err)
	}
	rep.f.Verified = rep.srv.Followed
	ts := httptest.NewServer(rep.srv.Handler())
	rep.url = ts.URL
	ctx, stop := context.WithCancel(w.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if run {
			rep.f.Run(ctx)
		}
	}()
	t.Cleanup(func() { stop(); <-done; ts.Close(); rep.srv.Close() })
	return rep
}

// served returns the head of the checkpoint the replica serves ("" for
// none yet).
func (rep *replica) served(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(rep.url + "/api/v1/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	c, err := checkpoint.Claimed(body)
	if err != nil {
		t.Fatalf("the replica's checkpoint: %v\n%s", err, body)
	}
	return c.Head
}

// get asks the replica for path: its status and body.
func (rep *replica) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(rep.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// await waits until the replica serves the checkpoint of head (a
// bound on a wait, not a measure: the follower pulls as soon as the
// writer's head moves).
func (rep *replica) await(t *testing.T, head string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for rep.served(t) != head {
		if time.Now().After(deadline) {
			t.Fatalf("the replica serves the checkpoint of %q, not of %s, after 30 s; its log:\n%s", rep.served(t), head, rep.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A replica follows its writer: it serves the writer's checkpoint of the
// head it verified, a push made through it (cairn push, its uploads
// included) lands on the writer and comes back verified, the blobs are
// served from it, and a push the writer refuses shows the client the
// writer's own words through the replica.
func TestReplicaFollowsWriter(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h1, _ := w.repo.Head(w.ctx, index.MainRef)
	rep := w.newReplica("replica", w.url)
	rep.await(t, h1)

	// A client of the replica publishes and pushes through it.
	c := w.client("laptop", rep.url)
	if main, _ := c.Head(w.ctx, index.MainRef); main != h1 {
		t.Fatalf("a client of the replica is at %s, want %s", main, h1)
	}
	pub, err := author.Publish(w.ctx, c, pkgDir(t, "acme/x", "2.0.0"), alice)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Push(w.ctx, c, "origin", alice, Options{})
	if err != nil {
		t.Fatalf("push through the replica: %v", err)
	}
	if got, _ := w.repo.Head(w.ctx, index.MainRef); got != p.Head {
		t.Fatalf("the writer is at %s after a push through the replica reported %s", got, p.Head)
	}
	rep.await(t, p.Head)
	if main, _ := rep.repo.Head(w.ctx, index.MainRef); main != p.Head {
		t.Errorf("the replica's main is at %s, want %s", main, p.Head)
	}

	// Another client reads it all from the replica, verified.
	d := w.client("desktop", rep.url)
	if vs, _ := versions(t, d, "acme/x"); len(vs) != 2 {
		t.Errorf("a client of the replica sees versions %v, want both", vs)
	}
	// The replica keeps the blobs of what it verified (fetched from the
	// writer as it follows), so it serves them without its writer.
	art := pub.Descriptor.Artifacts[0]
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ok, _ := rep.repo.Blobs.Stat(w.ctx, art.Ref); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not fetch the new version's artifact from its writer in 30 s; its log:\n%s", rep.log.String())
		}
	}
	mirror := &blob.HTTP{URL: rep.url}
	got, err := blob.ReadAll(w.ctx, mirror, blob.Ref{SHA256: art.SHA256, Size: art.Size})
	if err != nil || string(got) != "source of acme/x@2.0.0" {
		t.Errorf("the artifact pushed through the replica, read from it: %q, %v", got, err)
	}

	// A push the writer refuses, with stock git through the replica: the
	// writer's refusal reaches the client unchanged.
	work := filepath.Join(w.dir, "work")
	gitIn(t, w.dir, "clone", "-q", rep.url+"/index.git", work)
	files := strings.Fields(gitIn(t, work, "ls-files", "packages"))
	gitIn(t, work, "rm", "-q", files[0])
	gitIn(t, work, "commit", "-q", "-m", "drop a record")
	cmd := exec.Command("git", "-C", work, "push", "origin", "main")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a push deleting a record went through the replica:\n%s", out)
	}
	for _, want := range []string{"remote: cairn: error:", "append-only", "[remote rejected] main -> main"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("git push through the replica says:\n%s\nwant %q in it (the writer's refusal)", out, want)
		}
	}
	if got, _ := w.repo.Head(w.ctx, index.MainRef); got != p.Head {
		t.Errorf("the writer moved to %s after a refused push", got)
	}
}

// Attack: the writer turns malicious (or something takes its address)
// and serves a history rebuilt from genuine records that hides a
// vulnerable record, signed with the writer's own checkpoint key. The
// replica refuses to move, keeps serving the head it verified, and says
// why in its log, loudly; once the honest writer is back it follows
// again.
func TestReplicaRefusesMaliciousWriter(t *testing.T) {
	w := newWorld(t)
	alice, sec := newSigner(t), newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	w.grant(sec, "acme-security", "certify:vulnerable")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h1, _ := w.repo.Head(w.ctx, index.MainRef)
	if _, err := author.Certify(w.ctx, w.repo, author.Certification{Name: "acme/x", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-aaaa-bbbb-cccc", Severity: "critical"}, sec); err != nil {
		t.Fatal(err)
	}
	h2, _ := w.repo.Head(w.ctx, index.MainRef)

	// The writer's address, honest until the attacker takes it.
	front := newFront(t, w.url)
	rep := w.newReplica("replica", front.URL)
	rep.await(t, h2)

	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h3, _ := w.repo.Head(w.ctx, index.MainRef)
	evilURL, rebuilt := w.rebuild(h1, h2, h3) // served with the writer's checkpoint key
	front.take(evilURL)
	rep.f.Nudge()

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(rep.log.String(), "replica: not following the writer") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged after 30 s; the replica's log:\n%s", rep.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	logged := rep.log.String()
	for _, want := range []string{`"level":"ERROR"`, "SECURITY ERROR", "serves another history", h2, rebuilt} {
		if !strings.Contains(logged, want) {
			t.Errorf("the replica's log does not say %q:\n%s", want, logged)
		}
	}
	// The replica may have verified h3 from the honest writer before the
	// attacker took its address: either honest head, never the rebuilt one.
	got := rep.served(t)
	if got != h2 && got != h3 {
		t.Errorf("the replica serves the checkpoint of %s after the attack, want its verified %s or %s (rebuilt: %s)", got, h2, h3, rebuilt)
	}
	if main, _ := rep.repo.Head(w.ctx, index.MainRef); main != got {
		t.Errorf("the replica's main is at %s, and it serves the checkpoint of %s", main, got)
	}
	c := w.client("laptop", rep.url)
	if _, vulnerable := versions(t, c, "acme/x"); !vulnerable {
		t.Error("a client of the replica does not see the vulnerable record")
	}
	// Its health and metrics say it refuses its writer (they said ok).
	health := func() (int, string) { return rep.get(t, "/healthz") }
	if code, body := health(); code != http.StatusServiceUnavailable || !strings.Contains(body, "refusing its writer: ") || !strings.Contains(body, "SECURITY ERROR") {
		t.Errorf("/healthz of a replica refusing its writer: %d %q, want 503 saying why", code, body)
	}
	if _, metrics := rep.get(t, "/metrics"); !strings.Contains(metrics, "cairn_replica_refusing_writer 1") {
		t.Errorf("/metrics lacks cairn_replica_refusing_writer 1")
	}

	// The honest writer back: the replica follows it again.
	front.take("")
	rep.f.Nudge()
	rep.await(t, h3)
	// (It may have served h3 before the attack: its health is ok once a
	// pull from the honest writer has verified.)
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, body := health()
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz of a replica following its writer again: %d %q after 30 s", code, body)
		}
		rep.f.Nudge()
		time.Sleep(50 * time.Millisecond)
	}
}

// A replica whose own files fail it (a full disk, here its remotes
// directory turned into a file) cannot follow its writer: its health is
// 503 saying so, cairn_replica_stalled is 1 and its log says the pull
// failed here, on this machine — not "refused", which sent the operator
// to the writer. healthz said 200 ok with an ever older head. Once the
// fault is mended it follows again by itself.
func TestReplicaStalledByItsOwnFiles(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h1, _ := w.repo.Head(w.ctx, index.MainRef)
	rep := w.newReplica("replica", w.url)
	rep.await(t, h1)
	get := func(path string) (int, string) { return rep.get(t, path) }
	if _, m := get("/metrics"); !strings.Contains(m, "cairn_replica_stalled 0") || strings.Contains(m, "cairn_replica_last_verified_timestamp_seconds 0\n") || !strings.Contains(m, "cairn_replica_last_verified_timestamp_seconds ") {
		t.Fatalf("/metrics of a replica following its writer: want stalled 0 and the time it last verified:\n%s", m)
	}

	remotes := filepath.Join(rep.repo.Dir, "remotes")
	if err := os.Rename(remotes, remotes+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(remotes, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h2, _ := w.repo.Head(w.ctx, index.MainRef)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := get("/healthz"); code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz of a replica that cannot write its own files: still not 503 after 30 s; its log:\n%s", rep.log.String())
		}
		rep.f.Nudge()
	}
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot follow its writer for a fault of this machine's") || !strings.Contains(body, "remotes") {
		t.Errorf("/healthz: %d %q, want 503 naming the fault", code, body)
	}
	if _, m := get("/metrics"); !strings.Contains(m, "cairn_replica_stalled 1") || !strings.Contains(m, "cairn_replica_refusing_writer 0") {
		t.Errorf("/metrics of a stalled replica: want stalled 1, refusing_writer 0")
	}
	if logged := rep.log.String(); !strings.Contains(logged, "the pull failed here, on this machine's files") || strings.Contains(logged, "the pull was refused") {
		t.Errorf("the replica's log does not say the fault is its own:\n%s", logged)
	}
	if got := rep.served(t); got != h1 {
		t.Errorf("a stalled replica serves the checkpoint of %s, want the one it verified, %s", got, h1)
	}

	if err := os.Remove(remotes); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(remotes+".away", remotes); err != nil {
		t.Fatal(err)
	}
	rep.f.Nudge()
	rep.await(t, h2)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := get("/healthz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz once the fault is mended: %d %q after 30 s", code, body)
		}
		rep.f.Nudge()
	}
	if _, m := get("/metrics"); !strings.Contains(m, "cairn_replica_stalled 0") {
		t.Errorf("/metrics once the fault is mended: want stalled 0")
	}
}

// Behind a load balancer, a client's next request may reach a replica
// that is a pull behind the one it read before (after a push, say): a
// pull and a light client that stored the newer tree ask again for a
// moment rather than call the older one a rollback, and follow once the
// replica has caught up. A replica that stays behind is still refused as
// a rollback.
func TestReadersThroughLaggingReplica(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	// Five replicas at the writer's first head; only the first follows it
	// to the second.
	var reps []*replica
	for i := range 5 {
		rep := w.replicaOf(fmt.Sprintf("replica%d", i), w.url, false)
		if _, err := rep.f.Once(w.ctx); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h2, _ := w.repo.Head(w.ctx, index.MainRef)
	ahead, frozen, late := reps[0], reps[1], reps[2:]
	if _, err := ahead.f.Once(w.ctx); err != nil {
		t.Fatal(err)
	}

	// The balancer sends everything to one replica, then to another.
	var to atomic.Pointer[string]
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		u, _ := url.Parse(*to.Load())
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(rw, r)
	}))
	t.Cleanup(front.Close)
	to.Store(&ahead.url)
	c := w.client("laptop", front.URL)
	lc := &light.Client{BaseURL: front.URL, Introduction: w.intro, StateDir: t.TempDir()}
	if v, err := lc.Open(w.ctx); err != nil || v.Checkpoint.Head != h2 {
		t.Fatalf("light open through the replica ahead: %v", err)
	}

	// Frozen behind: refused as a rollback, by both.
	to.Store(&frozen.url)
	if _, err := Pull(w.ctx, c, "origin", Options{}); !errors.Is(err, ErrRollback) {
		t.Fatalf("a pull from a replica that stays behind: %v, want a rollback", err)
	}
	var ie *light.InconsistentError
	if _, err := lc.Open(w.ctx); !errors.As(err, &ie) || ie.Problem != "rollback" {
		t.Fatalf("a light open of a replica that stays behind: %v, want a rollback", err)
	}

	// Behind for a moment: both wait for it.
	reads := []func() (string, error){
		func() (string, error) {
			p, err := Pull(w.ctx, c, "origin", Options{})
			if err != nil {
				return "", err
			}
			return p.Head, nil
		},
		func() (string, error) {
			v, err := lc.Open(w.ctx)
			if err != nil {
				return "", err
			}
			return v.Checkpoint.Head, nil
		},
	}
	// A light read of the newer tree (its checkpoint read from another
	// replica) held by a replica behind until its follower brings it.
	reads = append(reads, func() (string, error) {
		v, err := lc.Open(w.ctx)
		if err != nil {
			return "", err
		}
		resp, err := http.Get(fmt.Sprintf("%s/api/v1/log/subject?s=%s&size=%d", late[2].url, url.QueryEscape("package acme/x"), v.Checkpoint.Size))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", resp.Status, body)
		}
		return v.Checkpoint.Head, nil
	})
	for i, read := range reads {
		if i == 2 {
			to.Store(&ahead.url) // the checkpoint from the replica ahead
			go func() {
				time.Sleep(300 * time.Millisecond)
				late[i].f.Once(w.ctx)
			}()
			if head, err := read(); err != nil || head != h2 {
				t.Fatalf("a light read of the newer tree from a replica a moment behind: %s, %v", head, err)
			}
			continue
		}
		to.Store(&late[i].url)
		caught := make(chan error, 1)
		go func() {
			time.Sleep(300 * time.Millisecond)
			_, err := late[i].f.Once(w.ctx)
			caught <- err
		}()
		head, err := read()
		if err := <-caught; err != nil {
			t.Fatal(err)
		}
		if err != nil || head != h2 {
			t.Fatalf("read %d through a replica a moment behind: head %s, %v; want %s", i, head, err, h2)
		}
	}
}
