package remote

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
)

// plainHost is an index hosted where no cairn code runs: a bare git
// repository served by git's own http-backend (a real CGI process behind
// Go's net/http/cgi), the log published as static files served by a
// plain file server, and the blobs as static files on another.
type plainHost struct {
	t         *testing.T
	root      string // the git host's project root
	bare      string // the index's bare repository in it
	gitURL    string
	logDir    string
	logURL    string
	logs      *requests // what the static log server was asked
	bucket    *gcblob.Bucket
	mirrorDir string
	mirrorURL string
}

// requests counts the paths a server was asked for.
type requests struct{ paths chan string }

func counting(h http.Handler) (http.Handler, *requests) {
	rq := &requests{paths: make(chan string, 10000)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq.paths <- r.URL.Path
		h.ServeHTTP(w, r)
	}), rq
}

func newPlainHost(t *testing.T) *plainHost {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	h := &plainHost{t: t, root: t.TempDir(), logDir: t.TempDir(), mirrorDir: t.TempDir()}
	h.bare = filepath.Join(h.root, "index.git")
	gitIn(t, h.root, "init", "-q", "--bare", "-b", "main", h.bare)
	// Anyone may push: nothing on this host checks what is pushed.
	gitIn(t, h.bare, "config", "http.receivepack", "true")
	gitSrv := httptest.NewServer(&cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + h.root, "GIT_HTTP_EXPORT_ALL=1"}})
	t.Cleanup(gitSrv.Close)
	h.gitURL = gitSrv.URL + "/index.git"
	logs, rq := counting(http.FileServer(http.Dir(h.logDir)))
	logSrv := httptest.NewServer(logs)
	t.Cleanup(logSrv.Close)
	h.logURL, h.logs = logSrv.URL, rq
	h.bucket, err = fileblob.OpenBucket(h.logDir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.bucket.Close() })
	mirror := httptest.NewServer(http.FileServer(http.Dir(h.mirrorDir)))
	t.Cleanup(mirror.Close)
	h.mirrorURL = mirror.URL
	return h
}

// push pushes the author's main to the host over HTTP, as any git
// client with write access would.
func (h *plainHost) push(w *world) {
	h.t.Helper()
	if out, err := indextest.Git(h.t, w.repo, "push", "-q", h.gitURL, index.MainRef+":"+index.MainRef); err != nil {
		h.t.Fatalf("pushing to the plain host: %v %s", err, out)
	}
	// The blobs go to the static mirror, at the paths a blob mirror
	// serves (/blobs/sha256/HEX).
	src := filepath.Join(w.repo.LocalDir(), "blobs", "sha256")
	dst := filepath.Join(h.mirrorDir, "blobs", "sha256")
	os.MkdirAll(dst, 0o755)
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, d.Name()), data, 0o644)
	})
}

// publish publishes the author's log to the host's static store.
func (h *plainHost) publish(w *world) *Published {
	h.t.Helper()
	p, err := PublishLog(w.ctx, w.repo, h.bucket, h.logDir, PublishOptions{Key: w.ckpt})
	if err != nil {
		h.t.Fatalf("publishing the log: %v", err)
	}
	return p
}

// client makes a replica following the plain host as origin, and pulls.
func (h *plainHost) client(w *world, name string) *index.Repo {
	h.t.Helper()
	r, err := index.InitReplica(w.ctx, filepath.Join(w.dir, name), w.intro)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { r.Close() })
	if err := Add(r, Remote{Name: "origin", URL: h.gitURL, Log: h.logURL, Mirrors: []string{h.mirrorURL}, Introduction: w.intro}); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// mallory clones the host into a work tree of her own.
func (h *plainHost) mallory(w *world) string {
	h.t.Helper()
	work := filepath.Join(h.t.TempDir(), "mallory")
	gitIn(h.t, w.dir, "clone", "-q", "-b", "main", h.gitURL, work)
	return work
}

// tree returns the tree a published checkpoint signs.
func publishedTree(t *testing.T, note []byte) tlog.Tree {
	t.Helper()
	c, err := checkpoint.Claimed(note)
	if err != nil {
		t.Fatal(err)
	}
	return c.Tree()
}

// files returns every file of dir with its bytes.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = string(data)
		}
		return nil
	})
	return out
}

// publishLib grants alice publish:acme/* and publishes acme/lib@1.0.0
// with her key: the index the plain-host tests start from. It returns
// alice's key.
func (w *world) publishLib() keys.Signer {
	w.t.Helper()
	alice := newSigner(w.t)
	w.grant(alice, "alice", "publish:acme/*")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(w.t, "acme/lib", "1.0.0"), alice); err != nil {
		w.t.Fatal(err)
	}
	return alice
}

// The index on a git host that runs no cairn code (git http-backend),
// the log on a static file server, the blobs on another: a full replica
// clones, pulls and fetches blobs, all verified; the published log is
// read by a tlog client written elsewhere (torchwood's, over
// golang.org/x/mod/sumdb/tlog), which checks every entry's inclusion
// and the consistency of two published checkpoints; and a second
// publish writes only new tiles, leaving those published untouched.
func TestPlainGitHost(t *testing.T) {
	w := newWorld(t)
	h := newPlainHost(t)
	alice := w.publishLib()
	h.push(w)
	first := h.publish(w)
	if first.From != 0 || first.Size == 0 || first.Tiles == 0 {
		t.Fatalf("first publish: %+v", first)
	}
	before := files(t, h.logDir)
	if before["checkpoint"] == "" || before["tile/0/000.p/"+strconv.Itoa(int(first.Size))] == "" || before["tile/entries/000.p/"+strconv.Itoa(int(first.Size))] == "" {
		t.Fatalf("the published log lacks the C2SP paths: %v", keysOf(before))
	}

	c := h.client(w, "client")
	p, err := Pull(w.ctx, c, "origin", Options{})
	if err != nil {
		t.Fatalf("pull from the plain host: %v", err)
	}
	authorHead, _ := w.repo.Head(w.ctx, index.MainRef)
	if p.Head != authorHead || p.Main != "created" || p.Checkpoint == nil || p.Checkpoint.Head != authorHead {
		t.Fatalf("pulled %+v, want head %s with its checkpoint, main created", p, authorHead)
	}
	if vs, _ := versions(t, c, "acme/lib"); len(vs) != 1 || vs[0] != "1.0.0" {
		t.Fatalf("the client sees versions %v", vs)
	}
	// The blobs come from the mirror, verified.
	rm, _ := Get(c, "origin")
	d, _, err := c.Descriptor(w.ctx, "acme/lib", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rm.Blobs(c, nil).Open(w.ctx, d.Artifacts[0].Ref)
	if err != nil {
		t.Fatalf("the artifact from the static mirror: %v", err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(data) != "source of acme/lib@1.0.0" {
		t.Fatalf("the artifact read %q (%v)", data, err)
	}

	// A tlog client written elsewhere reads the published log.
	tree1 := publishedTree(t, first.Checkpoint)
	fetcher, err := torchwood.NewTileFetcher(h.logURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := torchwood.NewClient(fetcher)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	for i, e := range tc.Entries(w.ctx, tree1, 0) {
		if i != n {
			t.Fatalf("entry %d came as %d", n, i)
		}
		n++
		_ = e
	}
	if err := tc.Err(); err != nil || n != tree1.N {
		t.Fatalf("torchwood read %d of %d entries: %v", n, tree1.N, err)
	}
	last := tree1.N - 1
	entry, proof, err := tc.Entry(w.ctx, tree1, last)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckRecord(proof, tree1.N, tree1.Hash, last, tlog.RecordHash(entry)); err != nil {
		t.Fatalf("inclusion of entry %d: %v", last, err)
	}

	// More is published: only new tiles are written.
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/lib", "1.1.0"), alice); err != nil {
		t.Fatal(err)
	}
	h.push(w)
	second := h.publish(w)
	if second.From != first.Size || second.Size <= first.Size {
		t.Fatalf("second publish: %+v, after %+v", second, first)
	}
	after := files(t, h.logDir)
	for path, data := range before {
		if path != "checkpoint" && after[path] != data {
			t.Errorf("%s changed on the second publish: tiles are immutable", path)
		}
	}
	tree2 := publishedTree(t, second.Checkpoint)
	hr := torchwood.TileHashReaderWithContext(w.ctx, tree2, fetcher)
	tp, err := tlog.ProveTree(tree2.N, tree1.N, hr)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(tp, tree2.N, tree2.Hash, tree1.N, tree1.Hash); err != nil {
		t.Fatalf("the two published checkpoints are not consistent: %v", err)
	}
	if p, err := Pull(w.ctx, c, "origin", Options{}); err != nil || p.Main != "fast-forwarded" {
		t.Fatalf("second pull: %+v, %v", p, err)
	}
	if vs, _ := versions(t, c, "acme/lib"); len(vs) != 2 {
		t.Fatalf("the client sees versions %v after the second pull", vs)
	}
	// Publishing again with nothing new rewrites only the checkpoint.
	if again := h.publish(w); again.From != second.Size || again.Tiles != 0 {
		t.Fatalf("a publish with nothing new: %+v", again)
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The same index on git daemon (git://): clone and pull as from any host.
func TestPlainGitDaemon(t *testing.T) {
	w := newWorld(t)
	h := newPlainHost(t)
	w.publishLib()
	h.push(w)
	h.publish(w)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	daemon := exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1", "--port="+port, "--base-path="+h.root, h.root)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill(); daemon.Wait() })
	for i := 0; ; i++ {
		conn, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			conn.Close()
			break
		}
		if i == 100 {
			t.Fatalf("git daemon did not listen: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "daemon-client"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := Add(c, Remote{Name: "origin", URL: "git://127.0.0.1:" + port + "/index.git", Log: h.logURL, Mirrors: []string{h.mirrorURL}, Introduction: w.intro}); err != nil {
		t.Fatal(err)
	}
	p, err := Pull(w.ctx, c, "origin", Options{})
	if err != nil {
		t.Fatalf("pull over git://: %v", err)
	}
	if head, _ := w.repo.Head(w.ctx, index.MainRef); p.Head != head {
		t.Fatalf("pulled %s, want %s", p.Head, head)
	}
}

// Attacks on a plain git host, where nothing refuses a push: each bad
// push is refused by the client, naming the commit and the rule, and
// the client's copy stays at the head it verified; a frozen host and a
// rolled-back one are caught by the published checkpoint.
func TestPlainHostBadPushes(t *testing.T) {
	w := newWorld(t)
	h := newPlainHost(t)
	alice := w.publishLib()
	h.push(w)
	older := h.publish(w)
	olderHead, _ := w.repo.Head(w.ctx, index.MainRef)
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/lib", "1.1.0"), alice); err != nil {
		t.Fatal(err)
	}
	h.push(w)
	h.publish(w)
	good, _ := w.repo.Head(w.ctx, index.MainRef)
	c := h.client(w, "client")
	if _, err := Pull(w.ctx, c, "origin", Options{}); err != nil {
		t.Fatal(err)
	}
	stays := func(t *testing.T) {
		t.Helper()
		if head, _ := c.Head(w.ctx, Ref("origin")); head != good {
			t.Errorf("the client's copy of origin moved to %s, want it to stay at %s", head, good)
		}
		if head, _, _ := (&Remote{Name: "origin", Introduction: w.intro}).Line(c).VerifiedHead(); head != good {
			t.Errorf("the client's verified head is %s, want %s", head, good)
		}
		if head, _ := c.Head(w.ctx, index.MainRef); head != good {
			t.Errorf("the client's main moved to %s", head)
		}
	}
	// restore puts the genuine history back on the host.
	restore := func() {
		gitIn(t, w.dir, "--git-dir", indextest.GitDir(t, w.repo), "push", "-q", "-f", h.gitURL, index.MainRef+":"+index.MainRef)
	}
	badPush := func(t *testing.T, rule string, change func(work string)) {
		t.Helper()
		defer restore()
		work := h.mallory(w)
		change(work)
		gitIn(t, work, "commit", "-q", "-m", "mallory's change")
		bad := gitIn(t, work, "rev-parse", "HEAD")
		gitIn(t, work, "push", "-q", "origin", "HEAD:main")
		_, err := Pull(w.ctx, c, "origin", Options{})
		var bp *BadPushError
		var re *index.RuleError
		if !errors.As(err, &bp) || !errors.As(err, &re) {
			t.Fatalf("pull after a bad push: %v, want a *BadPushError with the rule broken", err)
		}
		if re.Rule != rule || !strings.HasPrefix(bad, re.Commit) && !strings.HasPrefix(re.Commit, bad[:12]) {
			t.Errorf("the rule broken is %s in commit %s, want %s in %s", re.Rule, re.Commit, rule, bad)
		}
		msg := err.Error()
		t.Logf("refused: %s", msg)
		for _, want := range []string{"SECURITY ERROR", "rule " + rule + " broken in commit " + bad[:12], "this copy stays at " + good, h.gitURL} {
			if !strings.Contains(msg, want) {
				t.Errorf("the error does not say %q:\n%s", want, msg)
			}
		}
		stays(t)
	}

	t.Run("deleted record", func(t *testing.T) {
		badPush(t, index.RuleAppendOnly, func(work string) {
			path := strings.Fields(gitIn(t, work, "diff-tree", "--no-commit-id", "--name-only", "-r", "--diff-filter=A", olderHead, good))[0]
			gitIn(t, work, "rm", "-q", path)
		})
	})
	t.Run("record by an unknown key", func(t *testing.T) {
		// Mallory's key is granted on a copy of her own; the records it
		// signed there are added on the host, where it is granted nothing.
		mallory := newSigner(t)
		scratch, err := index.InitReplica(w.ctx, filepath.Join(t.TempDir(), "scratch"), w.intro)
		if err != nil {
			t.Fatal(err)
		}
		defer scratch.Close()
		if _, err := indextest.Git(t, scratch, "fetch", "-q", h.bare, "main:"+index.MainRef); err != nil {
			t.Fatal(err)
		}
		if _, err := author.Grant(w.ctx, scratch, author.KeyGrant{Key: mallory.Public(), Holder: "mallory", Scopes: []string{"publish:evil/*"}}, w.root); err != nil {
			t.Fatal(err)
		}
		granted, _ := scratch.Head(w.ctx, index.MainRef)
		if _, err := author.Publish(w.ctx, scratch, pkgDir(t, "evil/lib", "1.0.0"), mallory); err != nil {
			t.Fatal(err)
		}
		signed, _ := scratch.Head(w.ctx, index.MainRef)
		badPush(t, index.RuleSignature, func(work string) {
			gitIn(t, work, "fetch", "-q", indextest.GitDir(t, scratch), index.MainRef)
			added := strings.Fields(gitIn(t, work, "diff-tree", "--no-commit-id", "--name-only", "-r", "--diff-filter=A", granted, signed))
			gitIn(t, work, append([]string{"checkout", signed, "--"}, added...)...)
		})
	})

	t.Run("rewritten history", func(t *testing.T) {
		defer restore()
		work := h.mallory(w)
		gitIn(t, work, "commit", "-q", "--amend", "-m", "the same files, another history")
		gitIn(t, work, "push", "-q", "-f", "origin", "HEAD:main")
		_, err := Pull(w.ctx, c, "origin", Options{})
		var fe *ForkError
		if !errors.As(err, &fe) || fe.Verified != good {
			t.Fatalf("pull of a rewritten history: %v, want a *ForkError from %s", err, good)
		}
		stays(t)
		// A client that never pulled before catches it by the checkpoint,
		// which signs a head the rewritten history lacks.
		fresh := h.client(w, "fresh")
		_, err = Pull(w.ctx, fresh, "origin", Options{})
		var ce *CheckpointError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "different histories") {
			t.Fatalf("a new client's pull of a rewritten history: %v", err)
		}
		if head, _ := fresh.Head(w.ctx, index.MainRef); head != "" {
			t.Fatalf("the new client's main is at %s", head)
		}
	})

	t.Run("frozen host", func(t *testing.T) {
		_, err := Pull(w.ctx, c, "origin", Options{Now: func() time.Time { return time.Now().Add(DefaultMaxAge + time.Hour) }})
		var ce *CheckpointError
		if !errors.As(err, &ce) || !errors.Is(err, checkpoint.ErrStale) && !strings.Contains(err.Error(), "frozen") {
			t.Fatalf("pull from a frozen host: %v", err)
		}
		stays(t)
	})

	t.Run("rolled back host", func(t *testing.T) {
		// The host's git and its log put back as they were a publish ago:
		// every byte genuine, signed, and still fresh.
		defer restore()
		kept, err := os.ReadFile(filepath.Join(h.logDir, "checkpoint"))
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(filepath.Join(h.logDir, "checkpoint"), kept, 0o644)
		gitIn(t, w.dir, "--git-dir", indextest.GitDir(t, w.repo), "push", "-q", "-f", h.gitURL, olderHead+":"+index.MainRef)
		if err := os.WriteFile(filepath.Join(h.logDir, "checkpoint"), older.Checkpoint, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Pull(w.ctx, c, "origin", Options{})
		var rb *RollbackError
		if !errors.As(err, &rb) || rb.Head != olderHead || rb.Verified != good {
			t.Fatalf("pull from a rolled-back host: %v", err)
		}
		stays(t)
	})

	// The genuine host is followed again.
	if _, err := Pull(w.ctx, c, "origin", Options{}); err != nil {
		t.Fatalf("pull from the restored host: %v", err)
	}
	stays(t)
}

// Publishing refuses a store that holds another log, and a checkpoint
// not of this history; the checkpoint is written last and whole.
func TestPublishRefusals(t *testing.T) {
	w := newWorld(t)
	h := newPlainHost(t)
	h.publish(w)
	// A checkpoint of a larger tree: publishing would roll readers back.
	kept, _ := os.ReadFile(filepath.Join(h.logDir, "checkpoint"))
	big, err := checkpoint.Claimed(kept)
	if err != nil {
		t.Fatal(err)
	}
	big.Size += 10
	note, err := checkpoint.Sign(big, w.ckpt)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(h.logDir, "checkpoint"), note, 0o644)
	if _, err := PublishLog(w.ctx, w.repo, h.bucket, "the store", PublishOptions{Key: w.ckpt}); err == nil || !strings.Contains(err.Error(), "roll its readers back") {
		t.Fatalf("publish over a larger tree: %v", err)
	}
	// Another index's log.
	other := big
	other.Origin = checkpoint.Origin(strings.Repeat("a", 64))
	other.Size = 1
	note, _ = checkpoint.Sign(other, w.ckpt)
	os.WriteFile(filepath.Join(h.logDir, "checkpoint"), note, 0o644)
	if _, err := PublishLog(w.ctx, w.repo, h.bucket, "the store", PublishOptions{Key: w.ckpt}); err == nil || !strings.Contains(err.Error(), "another index") {
		t.Fatalf("publish over another index's log: %v", err)
	}
	// A key the root did not grant the checkpoint scope signs nothing
	// that gets published.
	os.WriteFile(filepath.Join(h.logDir, "checkpoint"), kept, 0o644)
	if _, err := PublishLog(w.ctx, w.repo, h.bucket, "the store", PublishOptions{Key: newSigner(t)}); err == nil {
		t.Fatal("published a checkpoint signed by a key granted nothing")
	}
	if got, _ := os.ReadFile(filepath.Join(h.logDir, "checkpoint")); !bytes.Equal(got, kept) {
		t.Fatal("a refused publish changed the published checkpoint")
	}
	var _ keys.Signer = w.ckpt
}

// Two publishers of one store: one that read the store before the other
// wrote a larger tree leaves that tree's checkpoint in place, rather than
// roll its readers back.
func TestPublishKeepsAConcurrentLargerTree(t *testing.T) {
	w := newWorld(t)
	h := newPlainHost(t)
	small := h.publish(w)
	w.publishLib()
	// The other publisher, with the newer tree, writes while this one,
	// holding the smaller tree's checkpoint (cairn serve's last), is
	// about to write its own.
	var larger *Published
	testHookBeforeCheckpoint = func() {
		testHookBeforeCheckpoint = nil
		larger = h.publish(w)
	}
	defer func() { testHookBeforeCheckpoint = nil }()
	if err := os.WriteFile(filepath.Join(w.repo.LocalDir(), "checkpoint"), small.Checkpoint, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := PublishLog(w.ctx, w.repo, h.bucket, "the store", PublishOptions{})
	if err == nil || !strings.Contains(err.Error(), "another publisher") {
		t.Fatalf("publish racing a larger tree: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(h.logDir, "checkpoint")); larger == nil || !bytes.Equal(got, larger.Checkpoint) {
		t.Fatal("the larger tree's checkpoint was written over")
	}
}
