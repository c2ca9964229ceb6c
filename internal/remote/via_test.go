package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
)

// serveOrg serves an organisation's repository as cairn serve does: with
// the upstream lines' checkpoints that its syncs kept.
func (w *world) serveOrg(r *index.Repo) string {
	return w.serve(r, server.Options{UpstreamCheckpoint: func(ctx context.Context, u *index.Upstream) ([]byte, string, error) {
		return UpstreamCheckpoint(ctx, r, u)
	}})
}

// lineProxy stands in front of an organisation's server: it answers the
// upstream line's checkpoint with replay (nil: 404, as a server that
// keeps none) and sends everything else to target.
func lineProxy(t *testing.T, target, up string, replay []byte) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	next := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upstreams/"+up+"/log/checkpoint" {
			if replay == nil {
				http.NotFound(w, r)
				return
			}
			w.Write(replay)
			return
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// Attack: an organisation's server feeds its full replicas an upstream
// line rebuilt from the upstream's genuine records minus a `vulnerable`
// one. A replica reads an upstream line through the organisation as it
// reads main: only as far as the upstream's own signed checkpoint (the
// one the organisation's sync checked), which must be of the tree the
// replica computes, fresh, and cosigned as the replica's witness policy
// for that upstream asks. With no checkpoint the line is refused; with a
// genuine old one replayed the replica stays at its head; a frozen one is
// refused; an honest line passes, the vulnerable record with it.
func TestAttackOrgFeedsRebuiltUpstreamLine(t *testing.T) {
	pub := newWorld(t)
	alice, sec := newSigner(t), newSigner(t)
	pub.grant(alice, "alice", "publish:acme/*")
	pub.grant(sec, "acme-security", "certify:vulnerable")
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "acme/x", "1.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h1, _ := pub.repo.Head(pub.ctx, index.MainRef)
	old := checkpointOf(t, pub.url) // genuine, of h1

	org := newWorld(t)
	if _, err := author.DeclareUpstream(org.ctx, org.repo, "public", pub.url, pub.intro, org.root); err != nil {
		t.Fatal(err)
	}
	if _, err := Sync(org.ctx, org.repo, Options{}); err != nil {
		t.Fatal(err)
	}
	orgURL := org.serveOrg(org.repo)
	laptop := org.client("laptop", orgURL) // verified the line at h1
	line := index.UpstreamRef("public")
	if got, _ := laptop.Head(org.ctx, line); got != h1 {
		t.Fatalf("the replica's upstream line is at %s, want %s", got, h1)
	}
	upLine := laptop.UpstreamLine(&index.Upstream{Name: "public", Introduction: pub.intro})
	if note, err := upstreamRemote(&index.Upstream{Name: "public", Introduction: pub.intro}).LastCheckpoint(laptop); err != nil || !strings.Contains(string(note), h1) {
		t.Fatalf("the replica kept no checkpoint of the line at %s: %v\n%s", h1, err, note)
	}

	if _, err := author.Certify(pub.ctx, pub.repo, author.Certification{Name: "acme/x", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-aaaa-bbbb-cccc", Severity: "critical"}, sec); err != nil {
		t.Fatal(err)
	}
	h2, _ := pub.repo.Head(pub.ctx, index.MainRef)
	if _, err := author.Publish(pub.ctx, pub.repo, pkgDir(t, "acme/x", "2.0.0"), alice); err != nil {
		t.Fatal(err)
	}
	h3, _ := pub.repo.Head(pub.ctx, index.MainRef)
	_, rebuilt := pub.rebuild(h1, h2, h3)

	// The organisation's operator serves its genuine main, and as the
	// upstream's line the rebuilt history.
	evil, err := index.InitReplica(org.ctx, filepath.Join(org.dir, "evil-org"), org.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
	if _, err := indextest.Git(t, evil, "fetch", "-q", indextest.GitDir(t, org.repo), index.MainRef+":"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	if _, err := indextest.Git(t, evil, "fetch", "-q", filepath.Join(pub.dir, "mallory"), "HEAD:"+line); err != nil {
		t.Fatal(err)
	}
	if _, err := evil.Verify(org.ctx, true); err != nil {
		t.Fatal(err)
	}
	evilURL := org.serve(evil) // keeps no checkpoint of the line: 404

	unmoved := func(what string) {
		t.Helper()
		if got, _ := laptop.Head(org.ctx, line); got != h1 {
			t.Fatalf("%s: the replica's upstream line moved to %s (rebuilt: %s), want it at %s", what, got, rebuilt, h1)
		}
		if h, _, _ := upLine.VerifiedHead(); h != h1 {
			t.Fatalf("%s: the line is verified at %s, want %s", what, h, h1)
		}
	}

	// The line gone from the server (its ref no longer served): refused,
	// the line kept where it was verified.
	gone, err := index.InitReplica(org.ctx, filepath.Join(org.dir, "gone-org"), org.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gone.Close() })
	if _, err := indextest.Git(t, gone, "fetch", "-q", indextest.GitDir(t, org.repo), index.MainRef+":"+index.MainRef); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Verify(org.ctx, true); err != nil {
		t.Fatal(err)
	}
	setURL(t, laptop, "origin", org.serve(gone))
	_, err = Pull(org.ctx, laptop, "origin", Options{})
	var ce *CheckpointError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no longer serves the line") {
		t.Fatalf("pull from a server that dropped the line: %v, want a security error", err)
	}
	unmoved("line gone")

	// A replica that never verified the line (a CI job) is refused too:
	// left out, the line would change which upstream a name is taken
	// from. Main is still pulled.
	ci, err := index.InitReplica(org.ctx, filepath.Join(org.dir, "ci"), org.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ci.Close() })
	if err := Add(ci, Remote{Name: "origin", URL: org.serve(gone), Introduction: org.intro}); err != nil {
		t.Fatal(err)
	}
	p, err := Pull(org.ctx, ci, "origin", Options{})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "SECURITY ERROR: upstream public: ") || !strings.Contains(err.Error(), "run `cairn sync` on the server") {
		t.Fatalf("a new replica, the line not served: %v, want a security error naming upstream public", err)
	}
	if h, _ := ci.Head(org.ctx, Ref("origin")); p == nil || h == "" {
		t.Fatalf("a new replica, the line not served: main not pulled (%v, %q)", p, h)
	}
	if h, _ := ci.Head(org.ctx, line); h != "" {
		t.Fatalf("a new replica holds the line at %s, never served", h)
	}

	// No checkpoint of the line: refused, as main with none would be.
	setURL(t, laptop, "origin", evilURL)
	_, err = Pull(org.ctx, laptop, "origin", Options{})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "upstream public") {
		t.Fatalf("pull of a line with no checkpoint: %v, want a security error naming upstream public", err)
	}
	unmoved("no checkpoint")

	// The upstream's genuine checkpoint of h1 replayed: the replica goes
	// no further than h1, and says the server holds more.
	setURL(t, laptop, "origin", lineProxy(t, evilURL, "public", old))
	p, err = Pull(org.ctx, laptop, "origin", Options{})
	if err != nil {
		t.Fatalf("pull with the old checkpoint replayed: %v", err)
	}
	unmoved("old checkpoint replayed")
	if len(p.Upstreams) != 1 || p.Upstreams[0].Head != h1 || p.Upstreams[0].ServerHead != rebuilt || p.Upstreams[0].Pending != 1 {
		t.Fatalf("the pull reports upstreams %+v, want head %s, server head %s, 1 pending", p.Upstreams, h1, rebuilt)
	}

	// A day later the same checkpoint is stale: a frozen line is noticed
	// (main's own checkpoint is let age longer, to be sure which refuses).
	rm, err := Get(laptop, "origin")
	if err != nil {
		t.Fatal(err)
	}
	rm.MaxAge = 72 * time.Hour
	if err := Set(laptop, *rm); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(org.ctx, laptop, "origin", Options{Now: func() time.Time { return time.Now().Add(25 * time.Hour) }})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "upstream public") || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("pull of a day-old line checkpoint: %v, want refused as frozen", err)
	}
	unmoved("stale checkpoint")

	// The replica's witness policy for the upstream holds for the line:
	// one witness required, none cosigned.
	if err := SetUpstreamWitnesses(org.ctx, laptop, "public", UpstreamWitnesses{Witnesses: []string{org.witnessOf("w1").VKey}, Quorum: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err = Pull(org.ctx, laptop, "origin", Options{}); !errors.As(err, &ce) || !strings.Contains(err.Error(), "upstream public") {
		t.Fatalf("pull of a line checkpoint below the quorum: %v, want refused", err)
	}
	if err := SetUpstreamWitnesses(org.ctx, laptop, "public", UpstreamWitnesses{}); err != nil {
		t.Fatal(err)
	}

	// The honest organisation, synced: the line reaches h3, the
	// vulnerable record with it.
	if _, err := Sync(org.ctx, org.repo, Options{}); err != nil {
		t.Fatal(err)
	}
	setURL(t, laptop, "origin", orgURL)
	p, err = Pull(org.ctx, laptop, "origin", Options{})
	if err != nil {
		t.Fatalf("pull from the honest organisation: %v", err)
	}
	if got, _ := laptop.Head(org.ctx, line); got != h3 || len(p.Upstreams) != 1 || p.Upstreams[0].Checkpoint == nil || p.Upstreams[0].Checkpoint.Head != h3 {
		t.Fatalf("the honest line: at %s, reported %+v; want %s with its checkpoint", got, p.Upstreams, h3)
	}
	if ok, _ := laptop.IsAncestor(org.ctx, h2, h3); !ok {
		t.Fatalf("the honest line at %s does not hold the vulnerable record's commit %s", h3, h2)
	}
}
