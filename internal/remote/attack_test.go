package remote

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
)

// gitIn runs git in dir (a work tree made for an attack), failing the test
// if git fails.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=mallory", "-c", "user.email=mallory@example.com"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// checkpointOf fetches the server's signed checkpoint as it is now.
func checkpointOf(t *testing.T, serverURL string) []byte {
	t.Helper()
	resp, err := http.Get(serverURL + "/api/v1/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("checkpoint: %s %s (%v)", resp.Status, body, err)
	}
	return body
}

// mitm stands between a client and a server: it answers the checkpoint
// endpoint with the bytes it holds (a genuine checkpoint replayed) and
// sends everything else to target.
func mitm(t *testing.T, target string, replay []byte) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	next := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/checkpoint" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(replay)
			return
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// setURL points a client's remote at another URL.
func setURL(t *testing.T, r *index.Repo, name, u string) {
	t.Helper()
	rm, err := Get(r, name)
	if err != nil {
		t.Fatal(err)
	}
	rm.URL = u
	if err := Set(r, *rm); err != nil {
		t.Fatal(err)
	}
}

// versions lists a package's versions at a repository's main, and whether
// any of them is declared vulnerable.
func versions(t *testing.T, r *index.Repo, name string) (vs []string, vulnerable bool) {
	t.Helper()
	views, err := r.Show(t.Context(), name, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		vs = append(vs, v.Version)
		for _, rec := range v.Records {
			if rec.Kind == string(record.Vulnerable) {
				vulnerable = true
			}
		}
	}
	return vs, vulnerable
}

// rebuild serves a history an attacker made from genuine records: base,
// then one commit adding the files that the commits from..to added, none
// of those before from. It returns the server's URL and the rebuilt head.
func (w *world) rebuild(base, from, to string) (string, string) {
	t := w.t
	t.Helper()
	work := filepath.Join(w.dir, "mallory")
	gitIn(t, w.dir, "clone", "-q", indextest.GitDir(t, w.repo), work)
	gitIn(t, work, "checkout", "-q", "--detach", base)
	added := strings.Fields(gitIn(t, work, "diff-tree", "--no-commit-id", "--name-only", "-r", "--diff-filter=A", from, to))
	gitIn(t, work, append([]string{"checkout", to, "--"}, added...)...)
	gitIn(t, work, "commit", "-q", "-m", "rebuilt")
	rebuilt := gitIn(t, work, "rev-parse", "HEAD")
	evil, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "evil"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
	if _, err := indextest.Git(t, evil, "fetch", "-q", work, "HEAD:"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	// The rebuilt history is made of genuine records: it verifies on its own.
	if _, err := evil.Verify(w.ctx, true); err != nil {
		t.Fatalf("the rebuilt history does not verify, the attack is not what it claims: %v", err)
	}
	return w.serve(evil), rebuilt
}

// Attack (issue 12, item 4): with no key at all, a man in the middle
// replays a still-fresh checkpoint of an older head and serves a history
// rebuilt from genuine records: the new version is delivered, the
// `vulnerable` record published before it is left out. The client must
// move to exactly the head the checkpoint names, never past it, say that
// the server's head and its checkpoint disagree, and stay on the genuine
// history, so that the honest server's next pull shows the record.
func TestReplayedCheckpointHidesRecord(t *testing.T) {
	w := newWorld(t)
	alice, sec := newSigner(t), newSigner(t)
	w.grant(alice, "alice", "publish:acme/*")
	w.grant(sec, "acme-security", "certify:vulnerable")
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h1, _ := w.repo.Head(w.ctx, index.MainRef)
	old := checkpointOf(t, w.url) // genuine, of h1; the attacker keeps it
	c := w.client("c", w.url)     // a client that verified h1

	if _, err := author.Certify(w.ctx, w.repo, author.Certification{Name: "acme/x", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-aaaa-bbbb-cccc", Severity: "critical"}, sec); err != nil {
		t.Fatal(err)
	}
	h2, _ := w.repo.Head(w.ctx, index.MainRef)
	if _, err := author.Publish(w.ctx, w.repo, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h3, _ := w.repo.Head(w.ctx, index.MainRef)

	// The attacker rebuilds a history on h1 from genuine records: those of
	// 2.0.0, not the vulnerable one.
	evilURL, rebuilt := w.rebuild(h1, h2, h3)
	proxy := mitm(t, evilURL, old)

	// A client that verified h1, and a new one, both behind the attacker.
	fresh, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "fresh"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	if err := Add(fresh, Remote{Name: "origin", URL: proxy, Introduction: w.intro}); err != nil {
		t.Fatal(err)
	}
	setURL(t, c, "origin", proxy)
	for name, r := range map[string]*index.Repo{"known": c, "fresh": fresh} {
		p, err := Pull(w.ctx, r, "origin", Options{})
		if err != nil {
			t.Fatalf("%s client: pull through the attacker: %v", name, err)
		}
		if main, _ := r.Head(w.ctx, index.MainRef); main != h1 || p.Head != h1 {
			t.Errorf("%s client: main at %s, pull reports %s; want the checkpointed head %s (the rebuilt head is %s)", name, main, p.Head, h1, rebuilt)
		}
		if got, _ := r.Head(w.ctx, Ref("origin")); got != h1 {
			t.Errorf("%s client: the remote's verified ref is at %s, want %s", name, got, h1)
		}
		if vs, _ := versions(t, r, "acme/x"); len(vs) != 1 {
			t.Errorf("%s client: sees versions %v past the checkpoint", name, vs)
		}
		if p.ServerHead != rebuilt || p.Pending != 1 {
			t.Errorf("%s client: the pull reports server head %q, %d commit(s) waiting; want %s, 1", name, p.ServerHead, p.Pending, rebuilt)
		}
	}

	// The honest server again: the client was never forked, and sees the
	// vulnerable record before the new version.
	setURL(t, c, "origin", w.url)
	if _, err := Pull(w.ctx, c, "origin", Options{}); err != nil {
		t.Fatalf("pull from the honest server after the attack: %v", err)
	}
	if main, _ := c.Head(w.ctx, index.MainRef); main != h3 {
		t.Fatalf("main at %s after the honest pull, want %s", main, h3)
	}
	if vs, vulnerable := versions(t, c, "acme/x"); len(vs) != 2 || !vulnerable {
		t.Fatalf("after the honest pull: versions %v, vulnerable %v; want both versions and the vulnerable record", vs, vulnerable)
	}
}

// The same attack on an organisation's upstream: sync follows the
// upstream only as far as its checkpoint, so the vulnerable record it
// hides is seen at the next honest sync, with no fork in between.
func TestReplayedCheckpointHidesRecordFromSync(t *testing.T) {
	pub := newWorld(t)
	alice, sec := newSigner(t), newSigner(t)
	pub.grant(alice, "alice", "publish:acme/*")
	pub.grant(sec, "acme-security", "certify:vulnerable")
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h1, _ := pub.repo.Head(pub.ctx, index.MainRef)
	old := checkpointOf(t, pub.url)

	// The upstream's URL as the organisation declares it: honest until
	// the attacker takes the path.
	front := newFront(t, pub.url)

	org := newWorld(t)
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", front.URL, pub.intro, org.root); err != nil {
		t.Fatal(err)
	}
	if _, err := Sync(org.ctx, org.repo, Options{}); err != nil {
		t.Fatal(err)
	}
	line := index.UpstreamRef("public")
	if got, _ := org.repo.Head(org.ctx, line); got != h1 {
		t.Fatalf("the upstream's line is at %s after the first sync, want %s", got, h1)
	}

	if _, err := author.Certify(pub.ctx, pub.repo, author.Certification{Name: "acme/x", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-aaaa-bbbb-cccc", Severity: "critical"}, sec); err != nil {
		t.Fatal(err)
	}
	h2, _ := pub.repo.Head(pub.ctx, index.MainRef)
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h3, _ := pub.repo.Head(pub.ctx, index.MainRef)
	evilURL, rebuilt := pub.rebuild(h1, h2, h3)
	a := mitm(t, evilURL, old)
	front.take(a)

	res, err := Sync(org.ctx, org.repo, Options{})
	if err != nil {
		t.Fatalf("sync through the attacker: %v", err)
	}
	if got, _ := org.repo.Head(org.ctx, line); got != h1 {
		t.Errorf("the upstream's line moved to %s through the attacker, want %s (rebuilt: %s)", got, h1, rebuilt)
	}
	if p := res[0].Pulled; p == nil || p.Head != h1 || p.ServerHead != rebuilt || p.Pending != 1 {
		t.Errorf("sync reports %+v, want head %s, server head %s, 1 pending", p, h1, rebuilt)
	}

	front.take("")
	if _, err := Sync(org.ctx, org.repo, Options{}); err != nil {
		t.Fatalf("sync from the honest upstream after the attack: %v", err)
	}
	if got, _ := org.repo.Head(org.ctx, line); got != h3 {
		t.Fatalf("the upstream's line is at %s after the honest sync, want %s", got, h3)
	}
}
