package remote

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/server"
)

// gitPush pushes r's main to the server with the plain git client, as a
// user of a clone does, and returns what git printed.
func gitPush(t *testing.T, r *index.Repo, url string) (string, error) {
	t.Helper()
	out, err := indextest.Git(t, r, "push", url+"/index.git", index.MainRef+":"+index.MainRef)
	if err != nil {
		return err.Error(), err
	}
	return string(out), nil
}

// commitTime returns the committer time of commit in r.
func commitTime(t *testing.T, r *index.Repo, commit string) time.Time {
	t.Helper()
	out, err := indextest.Git(t, r, "show", "-s", "--format=%ct", commit)
	if err != nil {
		t.Fatal(err)
	}
	var unix int64
	for _, c := range strings.TrimSpace(string(out)) {
		unix = unix*10 + int64(c-'0')
	}
	return time.Unix(unix, 0)
}

// Attack (issue 12, item 6): a key whose grant expired signs by
// backdating. A commit dated before the grant's expiry, pushed after it,
// is refused: the server judges the grant when it receives the push (and
// bounds commit times to within its skew of its clock, in the past as in
// the future: TestPushRedatesStaleCommits).
func TestAttackExpiredGrantBackdates(t *testing.T) {
	t.Setenv(server.SkewEnv, "3s")
	w := newWorld(t)
	alice := newSigner(t)
	expires := time.Now().Add(6 * time.Second)
	if _, err := author.Grant(w.ctx, w.repo, author.KeyGrant{Key: alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}, Expires: &expires}, w.root); err != nil {
		t.Fatal(err)
	}
	c := w.client("c", w.url)
	// Signed and committed while the grant held...
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/late", "1.0.0"), alice); err != nil {
		t.Fatalf("publishing before the grant expires (this machine took more than 6 s): %v", err)
	}
	// ...pushed after it expired, and later than the skew allows.
	time.Sleep(time.Until(expires) + 4*time.Second)
	before, _ := w.repo.Head(w.ctx, index.MainRef)
	out, err := gitPush(t, c, w.url)
	if err == nil {
		t.Fatalf("a commit backdated under an expired grant was accepted:\n%s", out)
	}
	for _, want := range []string{
		"remote: cairn: refused: rule key-expired broken in commit",
		"(holder alice) had expired at",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("git push output lacks %q:\n%s", want, out)
		}
	}
	if after, _ := w.repo.Head(w.ctx, index.MainRef); after != before {
		t.Fatalf("main moved to %s on a refused push", after)
	}
	// cairn push gets no further: the server takes no upload from a key
	// whose grant expired, and a re-dated commit is judged at its true
	// time, after the expiry.
	_, err = Push(w.ctx, c, "origin", alice, Options{})
	var re *index.RuleError
	if !errors.Is(err, blob.ErrRefused) && !(errors.As(err, &re) && re.Rule == index.RuleKeyExpired) {
		t.Fatalf("cairn push of a version signed under an expired grant: err = %v, want an upload refused or rule %s", err, index.RuleKeyExpired)
	}
	if after, _ := w.repo.Head(w.ctx, index.MainRef); after != before {
		t.Fatalf("main moved to %s", after)
	}
}

// An honest user's commit made before a pause longer than the skew
// (offline, say) is re-dated by cairn push and lands.
func TestPushRedatesStaleCommits(t *testing.T) {
	t.Setenv(server.SkewEnv, "4s")
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/offline", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	made, _ := c.Head(w.ctx, index.MainRef)
	time.Sleep(5 * time.Second)
	// git pushes it as it is: refused for its date.
	out, err := gitPush(t, c, w.url)
	if err == nil {
		t.Fatalf("a commit dated before the skew was accepted:\n%s", out)
	}
	for _, want := range []string{
		"remote: cairn: refused: rule time-order broken in commit",
		"before this server's clock",
		"a pushed commit must be dated within 4s of it",
		"remote: cairn: hint: push with 'cairn push', which re-dates main's unpushed commits",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("git push output lacks %q:\n%s", want, out)
		}
	}
	start := time.Now().Truncate(time.Second)
	p, err := Push(w.ctx, c, "origin", alice, Options{})
	if err != nil {
		t.Fatalf("cairn push of a commit older than the skew: %v", err)
	}
	if p.Commits != 1 || p.Head == made {
		t.Fatalf("pushed %d commit(s), head %.12s (made %.12s): want one re-dated commit", p.Commits, p.Head, made)
	}
	if got := commitTime(t, w.repo, p.Head); got.Before(start) {
		t.Fatalf("the landed commit is dated %s, before the push began (%s)", got, start)
	}
	if _, err := w.repo.Verify(w.ctx, true); err != nil {
		t.Fatal(err)
	}
}

// Attack (issue 12, item 7): a version whose blobs the server lacks
// (published with no upload in a clone, pushed with git) would never
// install from it. The push is refused, naming the blobs and the command
// that uploads them; that command, then the same push, succeed.
func TestAttackPushWithoutBlobs(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	pub, err := author.Publish(w.ctx, c, pkgDir(t, "acme/noblob", "1.0.0"), alice)
	if err != nil {
		t.Fatal(err)
	}
	d := pub.Descriptor
	before, _ := w.repo.Head(w.ctx, index.MainRef)
	out, err := gitPush(t, c, w.url)
	if err == nil {
		t.Fatalf("a version whose blobs the server lacks was accepted:\n%s", out)
	}
	for _, want := range []string{
		"remote: cairn: refused: acme/noblob@1.0.0: this server does not hold",
		"sha256:" + pub.Ref.SHA256,
		"sha256:" + d.Artifacts[0].Ref.SHA256,
		"remote: cairn: hint: upload them from the repository you pushed: cairn upload --repo DIR REMOTE",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("git push output lacks %q:\n%s", want, out)
		}
	}
	if after, _ := w.repo.Head(w.ctx, index.MainRef); after != before {
		t.Fatalf("main moved to %s on a refused push", after)
	}
	up, err := UploadMissing(w.ctx, c, "origin", alice, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if up.Uploaded != 2 {
		t.Fatalf("uploaded %d blob(s), want 2 (descriptor and artifact)", up.Uploaded)
	}
	if out, err := gitPush(t, c, w.url); err != nil {
		t.Fatalf("push after the upload: %v\n%s", err, out)
	}
	for _, ref := range []blob.Ref{pub.Ref, d.Artifacts[0].Ref} {
		if ok, _ := w.repo.Blobs.Stat(w.ctx, ref); !ok {
			t.Errorf("the server lacks %s", ref)
		}
	}
	// Nothing more to send.
	if up, err := UploadMissing(w.ctx, c, "origin", alice, []string{"acme/noblob@1.0.0"}, Options{}); err != nil || up.Uploaded != 0 || up.Named != 2 {
		t.Fatalf("a second upload: %+v, %v; want nothing sent", up, err)
	}
}

// Attack (issue 12, item 11): a push that loses the race for main (the
// server's ref is locked by another writer) is retried, not reported as
// a refusal of the records.
func TestPushLostRaceRetried(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/race", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	// Another writer holds main's lock for a while.
	lock := filepath.Join(indextest.GitDir(t, w.repo), "refs", "heads", "main.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(1500 * time.Millisecond)
		os.Remove(lock)
	}()
	defer func() { <-released }()
	p, err := Push(w.ctx, c, "origin", alice, Options{})
	if err != nil {
		t.Fatalf("a push that lost the race for main's lock: %v", err)
	}
	if p.Commits != 1 {
		t.Fatalf("pushed %d commit(s), want 1", p.Commits)
	}
}

// A lock held longer than the retries last is a lost race, not a refusal.
func TestPushLostRaceIsNotRefusal(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	if _, err := author.Publish(w.ctx, c, pkgDir(t, "acme/race", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	defer func(n int) { maxPushAttempts = n }(maxPushAttempts)
	maxPushAttempts = 2
	lock := filepath.Join(indextest.GitDir(t, w.repo), "refs", "heads", "main.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(lock)
	_, err := Push(w.ctx, c, "origin", alice, Options{})
	var pe *PushError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("a push that kept losing the race: err = %v, want an error that is no *PushError", err)
	}
	if !errors.Is(err, ErrRaceLost) || !strings.Contains(err.Error(), "cannot lock ref") {
		t.Fatalf("err = %v, want ErrRaceLost with git's reason", err)
	}
}

// A rule refusal carries its rule to the client, and git's remote: lines
// show the error and the hint (issue 12, item 12).
func TestPushErrorCarriesRule(t *testing.T) {
	w := newWorld(t)
	alice := newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	c := w.client("c", w.url)
	pub, err := author.Publish(w.ctx, c, pkgDir(t, "acme/x", "1.0.0"), alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Push(w.ctx, c, "origin", alice, Options{}); err != nil {
		t.Fatal(err)
	}
	// The owner deletes the authored record with git plumbing.
	gitDir := indextest.GitDir(t, c)
	idx := filepath.Join(t.TempDir(), "index")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_INDEX_FILE="+idx)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("read-tree", index.MainRef)
	var path string
	for _, p := range pub.Paths {
		if !strings.HasSuffix(p, "/"+layout.DescriptorFile) {
			path = p
		}
	}
	git("rm", "-q", "--cached", path)
	commit := git("commit-tree", git("write-tree"), "-p", index.MainRef, "-m", "drop a record")
	git("update-ref", index.MainRef, commit)

	out, err := gitPush(t, c, w.url)
	if err == nil {
		t.Fatalf("accepted:\n%s", out)
	}
	for _, want := range []string{
		"remote: cairn: refused: rule append-only broken in commit",
		"remote: cairn: hint: the index only grows",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("git push output lacks %q:\n%s", want, out)
		}
	}
	rm, err := Get(c, "origin")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = pushTo(w.ctx, c, rm, commit)
	var pe *PushError
	if !errors.As(err, &pe) || pe.Rule != index.RuleAppendOnly {
		t.Fatalf("pushTo: err = %v, want a *PushError for rule %s", err, index.RuleAppendOnly)
	}
	if want := (&index.RuleError{Rule: index.RuleAppendOnly}).Hint(); pe.Hint() != want || want == "" {
		t.Fatalf("PushError.Hint() = %q, want %q", pe.Hint(), want)
	}
}
