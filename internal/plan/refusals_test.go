package plan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
)

// A light source whose server enforces a policy offers only the versions
// the server serves: a range takes the highest of those (1.0.0, not the
// refused 1.1.0), a range only refused versions meet is a
// *ServerRefusedError in the server's words (the rule, the record's
// reason), offline the refusals read online are honoured again, and a
// lock that pins a refused version is named by CheckServed rather than
// left to a 403 at the blob's fetch. The same index served without a
// policy resolves to 1.1.0.
func TestLightServerRefusals(t *testing.T) {
	w := newWorld(t)
	vuln := w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Vulnerable, VulnID: "GHSA-srv-1", Severity: "high"}).Records[0]
	pol, err := policy.Parse("server-policy.yaml", []byte("forbid:\n  - name: no-high\n    property: vulnerable\n    severity: high\n"))
	if err != nil {
		t.Fatal(err)
	}
	open := servertest.Serve(w.World)
	gated := servertest.ServeWith(w.World, server.Options{Policy: pol})
	project := func(url, packages string) string {
		return fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\npackages:\n%splatforms: [linux-amd64]\n", url, w.Intro, packages)
	}

	w.write("cairn.yaml", project(open, "  acme/log: ^1.0\n"))
	_, _, unrefused, err := w.lock(Options{Cache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(unrefused); got != "acme/log@1.1.0" {
		t.Fatalf("without a server policy: %s, want acme/log@1.1.0", got)
	}

	cache := t.TempDir()
	w.write("cairn.yaml", project(gated, "  acme/log: ^1.0\n"))
	p, srcs, l, err := w.lock(Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/log@1.0.0" || !slices.Equal(l.Packages[0].Withheld, []string{"1.1.0"}) {
		t.Fatalf("1.1.0 refused by the server: %s withholding %q, want acme/log@1.0.0 withholding 1.1.0", got, l.Packages[0].Withheld)
	}
	if srcs[0].View.Policy() != "server-policy.yaml" {
		t.Fatalf("the view names policy %q", srcs[0].View.Policy())
	}
	if err := Check(w.Ctx, p, l, nil, srcs); err != nil {
		t.Fatalf("the lock made under the server's refusals does not check: %v", err)
	}
	if err := CheckServed(w.Ctx, l, srcs); err != nil {
		t.Fatalf("CheckServed of a lock the server serves: %v", err)
	}

	// A lock pinning the refused version (made where it was served).
	var sr *ServerRefusedError
	err = CheckServed(w.Ctx, unrefused, srcs)
	if !errors.As(err, &sr) || sr.Pinned != LockFile || !errors.Is(err, ErrServerRefused) ||
		!strings.Contains(err.Error(), `acme/log@1.1.0: refused by the server's policy server-policy.yaml: rule "no-high" (forbid), the server says: `) ||
		!strings.Contains(err.Error(), "GHSA-srv-1") || !strings.Contains(sr.Hint(), gated) {
		t.Fatalf("CheckServed of a lock pinning a refused version: %v", err)
	}
	if len(sr.Refused[0].Records) != 1 || sr.Refused[0].Records[0] != vuln {
		t.Fatalf("the refusal names records %v, want %s", sr.Refused[0].Records, vuln)
	}

	// Offline, the refusals read online at the checkpoint are honoured,
	// and the lock checks (by what it withholds, not the server's word).
	p, offSrcs, off, err := w.lock(Options{Cache: cache, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(off); got != "acme/log@1.0.0" {
		t.Fatalf("offline: %s, want acme/log@1.0.0", got)
	}
	if err := Check(w.Ctx, p, l, nil, offSrcs); err != nil {
		t.Fatalf("offline, Check of the lock made under the server's refusals: %v", err)
	}
	// A lock that does not say what it withheld does not check: it is
	// not what cairn.yaml resolves to at its heads.
	bare := *l
	bare.Packages = []Locked{l.Packages[0]}
	bare.Packages[0].Withheld = nil
	var le *LockError
	if err := Check(w.Ctx, p, &bare, nil, offSrcs); !errors.As(err, &le) || !strings.Contains(err.Error(), "resolves 1.1.0 at the pinned heads, cairn.lock says 1.0.0") {
		t.Fatalf("Check of a lock that hides what it withheld: %v", err)
	}

	// Only refused versions in range: the error names them, the rule and
	// the reason.
	w.write("cairn.yaml", project(gated, "  acme/log: ~1.1\n"))
	_, _, _, err = w.lock(Options{Cache: t.TempDir()})
	if !errors.As(err, &sr) || sr.Pinned != "" || len(sr.Refused) != 1 || sr.Refused[0].Version != "1.1.0" ||
		!strings.Contains(err.Error(), "every version of acme/log in repository acme that satisfies ~1.1 (from cairn.yaml:") ||
		!strings.Contains(err.Error(), `rule "no-high" (forbid), the server says: `) || !strings.Contains(err.Error(), "GHSA-srv-1") {
		t.Fatalf("a range only refused versions meet: %v", err)
	}

	// A version cairn.yaml pins by digest that the server refuses.
	ref := unrefused.Packages[0].Descriptor
	w.write("cairn.yaml", project(gated, fmt.Sprintf("  acme/log: {version: 1.1.0, sha256: %s, size: %d}\n", ref.SHA256, ref.Size)))
	_, _, _, err = w.lock(Options{Cache: t.TempDir()})
	if !errors.As(err, &sr) || !strings.HasPrefix(sr.Pinned, "cairn.yaml:") || !strings.Contains(err.Error(), "pins acme/log@1.1.0, which the server's policy server-policy.yaml") {
		t.Fatalf("a pin the server refuses: %v", err)
	}
}

// The refusals of an upstream's version are the server's that follows
// the upstream (the line's Via): an organisation's server whose policy
// refuses the upstream's acme/log@1.1.0 has its light clients resolve
// ^1.0 from the line to 1.0.0.
func TestLightUpstreamServerRefusals(t *testing.T) {
	up := newWorld(t)
	up.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: record.Vulnerable, VulnID: "GHSA-up-1", Severity: "high"})
	upURL := servertest.Serve(up.World)
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
	pol, err := policy.Parse("org.yaml", []byte("forbid:\n  - {name: no-high, property: vulnerable, severity: high}\n"))
	if err != nil {
		t.Fatal(err)
	}
	orgURL := servertest.ServeWith(org, server.Options{Policy: pol, UpstreamCheckpoint: func(ctx context.Context, u *index.Upstream) ([]byte, string, error) {
		return remote.UpstreamCheckpoint(ctx, org.Repo, u)
	}})
	w := &world{World: org, project: t.TempDir()}
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - {name: corp, url: %s, introduction: %s}\npackages:\n  acme/log: ^1.0\nplatforms: [linux-amd64]\n", orgURL, org.Intro))
	_, srcs, l, err := w.lock(Options{Cache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(l); got != "acme/log@1.0.0" || l.Packages[0].Repository != "corp/public" {
		t.Fatalf("plan %s from %s, want acme/log@1.0.0 from corp/public", got, l.Packages[0].Repository)
	}
	rf, err := srcs[1].Refusals(w.Ctx, "acme/log")
	if err != nil || rf.Of("1.1.0") == nil || rf.Source != "public" {
		t.Fatalf("the line's refusals: %+v, %v", rf, err)
	}
	if rf, err := srcs[0].Refusals(w.Ctx, "acme/log"); err != nil || rf != nil {
		t.Fatalf("the server's own line has refusals of a name it takes from an upstream: %+v, %v", rf, err)
	}
}
