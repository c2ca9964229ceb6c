package index_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// The publish grants a state lists once are listed again when a key
// changes: along one replay (one Overlay, commit after commit) a grant
// makes a namespace internal for the next commit, a key revocation frees
// it, and an expiry frees it once commit time passes it, whatever the
// state listed for the commits before.
func TestInternalNamesFollowKeyChanges(t *testing.T) {
	f := newFixture(t) // alice: publish:acme/*
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.repo.State(f.ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	intro := strings.Repeat("1", 64)
	n := 0
	apply := func(when time.Time, files ...*index.File) error {
		t.Helper()
		n++
		c := &index.Commit{ID: fmt.Sprintf("commit%d", n), Parents: []string{head}, Time: when}
		for _, file := range files {
			file.Status, file.Mode = 'A', "100644"
			index.Prepare(file)
			c.Files = append(c.Files, file)
		}
		return index.Apply(st, c, f.intro)
	}
	version := 0
	cert := func(name string) *index.File {
		version++
		v := fmt.Sprintf("2.0.%d", version)
		rec := f.sign(record.Audited, []record.Subject{{Name: name + "@" + v, Digest: map[string]string{"sha256": strings.Repeat("2", 64)}}}, record.CertificationPredicate{Issued: now}, f.audit)
		return at(layout.UpstreamVersionDir("public", name, v), rec)
	}
	grant := func(s keys.Signer, holder, scope string, expires *time.Time) *index.File {
		rec := f.sign(record.Grant, []record.Subject{keySubjectOf(s.Public())},
			record.GrantPredicate{Key: keys.FormatPublic(s.Public()), Holder: holder, Scopes: []string{scope}, Expires: expires, Issued: now}, f.root)
		return at(layout.KeyDir(keys.IDHex(s.Public())), rec)
	}
	up := f.sign(record.Upstream, []record.Subject{{Name: "public", Digest: map[string]string{"sha256": intro}}},
		record.UpstreamPredicate{Name: "public", URL: "https://public.example", Introduction: intro, Issued: now}, f.root)

	// libs/ is nobody's: the state lists the grants, finds none for it.
	wantOutcome(t, apply(now, at(layout.UpstreamDir("public"), up), cert("libs/json")), "", "")
	wantOutcome(t, apply(now, cert("acme/newthing")), index.RuleUpstream, "acme/newthing is inside publish:acme/*")

	// A grant of libs/* makes it internal from the next commit on.
	carol := newSigner()
	wantOutcome(t, apply(now, grant(carol, "carol", "publish:libs/*", nil)), "", "")
	wantOutcome(t, apply(now, cert("libs/json")), index.RuleUpstream, "libs/json is inside publish:libs/*, granted to key "+keys.ID(carol.Public())+" (holder carol)")

	// Revoking carol's key frees it again.
	revoke := f.sign(record.RevokeKey, []record.Subject{keySubjectOf(carol.Public())}, record.RevokeKeyPredicate{Reason: "left", Issued: now}, f.root)
	wantOutcome(t, apply(now, at(layout.KeyDir(keys.IDHex(carol.Public())), revoke)), "", "")
	wantOutcome(t, apply(now, cert("libs/json")), "", "")

	// A grant that expires claims its namespace until it does: the same
	// listed grants judged at each commit's time.
	dave := newSigner()
	until := now.Add(time.Hour)
	wantOutcome(t, apply(now, grant(dave, "dave", "publish:tmp/*", &until)), "", "")
	wantOutcome(t, apply(now.Add(time.Minute), cert("tmp/x")), index.RuleUpstream, "tmp/x is inside publish:tmp/*")
	wantOutcome(t, apply(until.Add(time.Second), cert("tmp/x")), "", "")

	// publish:* is publish:*/*: every upstream package is shadowed, and
	// Names says so.
	erin := newSigner()
	wantOutcome(t, apply(until.Add(time.Second), grant(erin, "erin", "publish:*", nil)), "", "")
	wantOutcome(t, apply(until.Add(time.Second), cert("zzz/anything")), index.RuleUpstream, "zzz/anything is inside publish:*/*")
	names := index.NewNames(st, until.Add(time.Second))
	if every, err := names.Everything(); err != nil || !strings.Contains(every, "publish:*/*, granted to key "+keys.ID(erin.Public())+" (holder erin)") {
		t.Fatalf("Everything() = %q, %v; want erin's publish:*/*", every, err)
	}
	if every, err := index.NewNames(mustState(t, f), now).Everything(); err != nil || every != "" {
		t.Fatalf("Everything() before erin's grant = %q, %v; want none", every, err)
	}
}

func mustState(t *testing.T, f *fixture) *index.Overlay {
	t.Helper()
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.repo.State(f.ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// benchIndex is an index with many publish grants, the shape of an
// organisation with many teams, that follows an upstream; audit may
// certify audited.
type benchIndex struct {
	ctx   context.Context
	repo  *index.Repo
	intro string
	audit keys.Signer
}

func newBenchIndex(b *testing.B, grants int) *benchIndex {
	b.Helper()
	ctx := context.Background()
	root := newSigner()
	r, intro, err := index.Init(ctx, filepath.Join(b.TempDir(), "repo"), []keys.Signer{root}, nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	x := &benchIndex{ctx: ctx, repo: r, intro: intro.ID, audit: newSigner()}
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: x.audit.Public(), Holder: "security", Scopes: []string{"certify:audited"}}, root); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < grants; i++ {
		s := newSigner()
		if _, err := author.Grant(ctx, r, author.KeyGrant{Key: s.Public(), Holder: fmt.Sprintf("team%d", i), Scopes: []string{fmt.Sprintf("publish:team%d/*", i)}}, root); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := author.DeclareUpstream(ctx, r, "public", "https://public.example", strings.Repeat("1", 64), root); err != nil {
		b.Fatal(err)
	}
	return x
}

// BenchmarkInternal asks a catalog about upstream names, as resolution
// does for every package through an organisation: the catalog lists the
// granted keys once, not once per name.
func BenchmarkInternal(b *testing.B) {
	f := newBenchIndex(b, 100)
	cat, err := f.repo.Catalog(f.ctx, index.MainRef)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		in, err := cat.Internal(fmt.Sprintf("libs/p%d", i%1000))
		if err != nil || in {
			b.Fatalf("Internal = %v, %v", in, err)
		}
	}
}

// BenchmarkReplayUpstreamCertifications applies a commit of 50 audits of
// upstream versions, as a replay does: the state lists the granted keys
// once, not once per certification.
func BenchmarkReplayUpstreamCertifications(b *testing.B) {
	f := newBenchIndex(b, 100)
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		b.Fatal(err)
	}
	st, err := f.repo.State(f.ctx, head)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var files []*index.File
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("libs/p%d", i)
		payload, err := record.Build(record.Audited, []record.Subject{{Name: name + "@1.0.0", Digest: map[string]string{"sha256": strings.Repeat("2", 64)}}}, record.CertificationPredicate{Issued: now})
		if err != nil {
			b.Fatal(err)
		}
		rec, err := record.Sign(payload, f.audit)
		if err != nil {
			b.Fatal(err)
		}
		file := at(layout.UpstreamVersionDir("public", name, "1.0.0"), rec)
		file.Status, file.Mode = 'A', "100644"
		index.Prepare(file)
		files = append(files, file)
	}
	for b.Loop() {
		c := &index.Commit{ID: "bench", Parents: []string{head}, Time: now, Files: files}
		if err := index.Apply(index.NewOverlay(st), c, f.intro); err != nil {
			b.Fatal(err)
		}
	}
}
