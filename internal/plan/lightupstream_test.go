package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/translog"
)

// TestLightUpstreamLines: a light client of an organisation's server
// resolves the packages of the upstream lines the server follows, read
// under /upstreams/UP/ and proved against the upstream's own signed
// checkpoint, pinned by the introduction the organisation declared; the
// plan, the heads and the policy's verdicts are the replica's (light:
// false). A name internal to the organisation (inside a publish grant)
// is never taken from the upstream; a revoked line is not required;
// offline, what was proved last.
func TestLightUpstreamLines(t *testing.T) {
	up := newWorld(t)
	upURL := servertest.Serve(up.World)
	up.Publish(indextest.Package{Name: "acme/secret", Version: "1.0.0"})
	org := indextest.New(t)
	org.Publish(indextest.Package{Name: "acme/internal", Version: "1.0.0", Deps: map[string]string{"acme/log": "^1.0"}})
	org.Audit("acme/internal", "1.0.0")
	// Only acme/internal (published) and acme/secret (granted) are
	// internal: the publisher of acme/* is revoked.
	if _, err := author.RevokeKey(org.Ctx, org.Repo, keys.ID(org.Publisher.Public()), "acme/ is the upstream's", org.Root); err != nil {
		t.Fatal(err)
	}
	org.Grant(indextest.NewSigner(), "secret-team", "publish:acme/secret")
	public, err := author.DeclareUpstream(org.Ctx, org.Repo, "public", upURL, up.Intro, org.Root)
	if err != nil {
		t.Fatal(err)
	}
	// A second upstream, declared, never synced, then revoked: a revoked
	// line is not required, and its server is never asked. (A declared
	// line the server does not serve is refused: TestLightUpstreamLineGone.)
	other := indextest.New(t)
	var decl *author.Added
	decl, err = author.DeclareUpstream(org.Ctx, org.Repo, "other", "http://127.0.0.1:1", other.Intro, org.Root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Sync(org.Ctx, org.Repo, remote.Options{}); err == nil {
		t.Fatal("synced an upstream whose server does not answer")
	}
	if _, err := author.Revoke(org.Ctx, org.Repo, decl.Records[0], "never synced", org.Root); err != nil {
		t.Fatal(err)
	}
	org.Audit("acme/log", "1.1.0") // the organisation's audit of the upstream's version
	orgURL := servertest.ServeWith(org, server.Options{UpstreamCheckpoint: func(ctx context.Context, u *index.Upstream) ([]byte, string, error) {
		return remote.UpstreamCheckpoint(ctx, org.Repo, u)
	}})

	w := &world{World: org, project: t.TempDir()}
	w.write("policy.yaml", "require:\n  - {name: audited, property: audited, by: acme-security@corp}\n")
	project := func(light, extra string) {
		w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, url: %s, introduction: %s%s}\npackages:\n  acme/internal: ^1\n%spolicy: policy.yaml\nplatforms: [linux-amd64]\n", orgURL, org.Intro, light, extra))
	}
	lock := func(o Options) (Sources, *Lock) {
		t.Helper()
		p, srcs, l, err := w.lock(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := srcs.Names(); !slices.Equal(got, []string{"corp", "corp/public"}) {
			t.Fatalf("sources %v", got)
		}
		if err := Check(w.Ctx, p, l, nil, srcs); err != nil {
			t.Fatalf("Check: %v", err)
		}
		pol, err := LoadPolicy(p, "", srcs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Evaluate(l, srcs, pol, time.Now()); err != nil {
			t.Fatalf("Evaluate: %v", err)
		}
		return srcs, l
	}

	project(", light: false", "")
	_, replica := lock(Options{Cache: t.TempDir()})
	project("", "")
	cache := t.TempDir()
	srcs, l := lock(Options{Cache: cache})
	if srcs[1].View == nil || srcs[1].Repo != nil || srcs[1].Via != srcs[0] {
		t.Fatalf("the upstream line is not read by the light client: %+v", srcs[1])
	}
	if _, err := os.Stat(filepath.Join(cache, "indexes")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a light source cloned into the cache: %v", err)
	}
	if versions(l) != versions(replica) || l.Package("acme/log").Repository != "corp/public" {
		t.Fatalf("light plan %s (acme/log from %s); the replica's %s", versions(l), l.Package("acme/log").Repository, versions(replica))
	}
	for i := range l.Repositories {
		lr, rr := l.Repositories[i], replica.Repositories[i]
		if lr.Name != rr.Name || lr.Head != rr.Head || lr.Introduction != rr.Introduction {
			t.Fatalf("light repository %+v; the replica's %+v", lr, rr)
		}
	}
	if l.Repositories[1].Introduction != up.Intro || !strings.HasPrefix(l.Repositories[1].Checkpoint, "cairn.dev/index/"+up.Intro+"\n") {
		t.Fatalf("the upstream line's pin: %+v", l.Repositories[1])
	}
	e, err := Why(w.Ctx, l, srcs, nil, "acme/log", time.Now())
	if err != nil || e.Via != "corp" || len(e.Certifications) != 1 {
		t.Fatalf("why acme/log: %+v, %v", e, err)
	}

	// The line's log as a tlog-tiles client written elsewhere (torchwood)
	// reads it: under the upstream's own checkpoint, the same leaves and
	// inclusion paths as the upstream's server serves.
	resp, err := http.Get(orgURL + "/upstreams/public/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	note, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cp, err := checkpoint.Claimed(note)
	if err != nil || cp.Origin != checkpoint.Origin(up.Intro) || resp.Header.Get(server.CheckpointKeyHeader) != keys.ID(up.Checkpointer.Public()) {
		t.Fatalf("the line's checkpoint %q (key %s): %v", note, resp.Header.Get(server.CheckpointKeyHeader), err)
	}
	read := func(base string, i int64) ([]byte, tlog.RecordProof) {
		t.Helper()
		tf, err := torchwood.NewTileFetcher(base + "/log/")
		if err != nil {
			t.Fatal(err)
		}
		tc, err := torchwood.NewClient(tf)
		if err != nil {
			t.Fatal(err)
		}
		entry, proof, err := tc.Entry(w.Ctx, cp.Tree(), i)
		if err != nil {
			t.Fatalf("%s: leaf %d: %v", base, i, err)
		}
		return entry, proof
	}
	for _, i := range []int64{0, cp.Size / 2, cp.Size - 1} {
		e1, p1 := read(orgURL+"/upstreams/public", i)
		e2, p2 := read(upURL, i)
		if !bytes.Equal(e1, e2) || !slices.Equal(p1, p2) || tlog.CheckRecord(p1, cp.Size, cp.Root, i, translog.LeafHash(e1)) != nil {
			t.Fatalf("leaf %d: the line serves %q, the upstream %q", i, e1, e2)
		}
	}

	// An internal name wins over the upstream's, light as replica.
	for _, light := range []string{", light: false", ""} {
		project(light, "  acme/secret: \"*\"\n")
		_, _, _, err := w.lock(Options{Cache: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "acme/secret is published in none of the repositories: it is an internal name of corp") {
			t.Fatalf("%q: an internal name taken from upstream: %v", light, err)
		}
	}

	// Offline: what was proved last.
	project("", "")
	_, l2 := lock(Options{Cache: cache, Offline: true})
	if versions(l2) != versions(l) {
		t.Fatalf("offline plan %s, online %s", versions(l2), versions(l))
	}

	// A lock written before the organisation followed the upstream (no
	// line of it, nothing from it) is stale, not edited or untrue: it
	// said "do not trust this lock: restore it from version control".
	{
		before := *l
		before.Repositories = slices.DeleteFunc(slices.Clone(l.Repositories), func(r LockedRepo) bool { return r.Name == "corp/public" })
		before.Packages = slices.DeleteFunc(slices.Clone(l.Packages), func(p Locked) bool { return p.Repository == "corp/public" })
		p, err := ReadProject(w.project)
		if err != nil {
			t.Fatal(err)
		}
		srcs, err := Open(w.Ctx, p, Options{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		var le *LockError
		err = Check(w.Ctx, p, &before, nil, srcs)
		srcs.Close()
		if !errors.As(err, &le) || !le.OnlyStale() || !strings.Contains(err.Error(), "repository corp/public: corp follows the upstream public since the lock was written (its operator added it): run cairn lock") {
			t.Fatalf("a lock from before the organisation followed the upstream: %v (only stale: %v), want it stale alone", err, le != nil && le.OnlyStale())
		}
	}

	// The organisation stops following the upstream: the lock is stale
	// (its upstream line is gone), not edited or untrue.
	if _, err := author.Revoke(org.Ctx, org.Repo, public.Records[0], "no longer followed", org.Root); err != nil {
		t.Fatal(err)
	}
	p, err := ReadProject(w.project)
	if err != nil {
		t.Fatal(err)
	}
	now, err := Open(w.Ctx, p, Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer now.Close()
	var le *LockError
	if err := Check(w.Ctx, p, l, nil, now); !errors.As(err, &le) || !le.OnlyStale() || !strings.Contains(err.Error(), "repository corp/public: corp no longer follows the upstream public") {
		t.Fatalf("a lock of an upstream line the organisation no longer follows: %v (only stale: %v), want it stale alone", err, le != nil && le.OnlyStale())
	}
}

// TestLightUpstreamLineAttacks: an organisation's server that lies about
// an upstream line is refused, naming the line: serving another index's
// log there (the introduction the organisation declared is pinned), or,
// after the client verified the line, a fork of the upstream (a tree of
// the same origin that the one verified does not extend, signed by a
// key the fork's own history grants), caught against the line's
// checkpoint kept. (A fork that extends the tree verified is caught only
// by witnesses, as for any server.)
func TestLightUpstreamLineAttacks(t *testing.T) {
	up := newWorld(t)
	upURL := servertest.Serve(up.World)
	fork := forkWorld(t, up.World)
	fork.Publish(indextest.Package{Name: "acme/log", Version: "9.0.0"})
	forkURL := servertest.Serve(fork)
	// The real upstream moves on past the fork's tree.
	up.Publish(indextest.Package{Name: "acme/log", Version: "1.2.0"})
	up.Publish(indextest.Package{Name: "acme/log", Version: "1.3.0"})
	another := newWorld(t)
	anotherURL := servertest.Serve(another.World)
	org := indextest.New(t)
	if _, err := author.RevokeKey(org.Ctx, org.Repo, keys.ID(org.Publisher.Public()), "acme/ is the upstream's", org.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := author.DeclareUpstream(org.Ctx, org.Repo, "public", upURL, up.Intro, org.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Sync(org.Ctx, org.Repo, remote.Options{}); err != nil {
		t.Fatal(err)
	}
	orgURL := servertest.ServeWith(org, server.Options{UpstreamCheckpoint: func(ctx context.Context, u *index.Upstream) ([]byte, string, error) {
		return remote.UpstreamCheckpoint(ctx, org.Repo, u)
	}})
	// The organisation's server, its line of public answered by line.
	var line atomic.Value
	line.Store(orgURL + "/upstreams/public")
	mux := http.NewServeMux()
	var batches atomic.Int64 // batch reads of the line answered
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		target := orgURL + r.URL.Path
		if rest, ok := strings.CutPrefix(r.URL.Path, "/upstreams/public/"); ok {
			target = line.Load().(string) + "/" + rest
		}
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if r.Method == http.MethodPost && r.URL.Path == "/upstreams/public/api/v1/log/subjects" && resp.StatusCode == http.StatusOK {
			batches.Add(1)
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	proxy := httptest.NewServer(mux)
	t.Cleanup(proxy.Close)

	w := &world{World: org, project: t.TempDir()}
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, url: %s, introduction: %s}\npackages:\n  acme/log: ^1\nplatforms: [linux-amd64]\n", proxy.URL, org.Intro))

	line.Store(anotherURL)
	_, _, _, err := w.lock(Options{Cache: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "repository corp: upstream public: ") || !strings.Contains(err.Error(), "not of cairn.dev/index/"+up.Intro) {
		t.Fatalf("another index's log served as the line: %v", err)
	}

	cache := t.TempDir()
	line.Store(orgURL + "/upstreams/public")
	_, srcs, l, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/log@1.3.0" || srcs.Get("corp/public") == nil {
		t.Fatalf("plan %s from %v", got, srcs.Names())
	}
	if batches.Load() == 0 {
		t.Fatal("the line's subjects were not read in batches")
	}
	line.Store(forkURL)
	_, _, _, err = w.lock(Options{Cache: cache})
	var ie *light.InconsistentError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "repository corp: upstream public: ") {
		t.Fatalf("a fork of the upstream served as the line after the real one: %v", err)
	}
}
