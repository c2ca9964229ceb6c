package index_test

import (
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// Internal names are the published ones and those inside a live publish
// grant; an expired grant or a revoked key claims nothing more. The rules
// refuse this repository's records about an upstream's version of an
// internal name, published here or not.
func TestInternalNames(t *testing.T) {
	f := newFixture(t) // alice: publish:acme/*, bob: publish:bob/*
	f.publish(f.alice, "acme/fastjson", "1.2.3")
	carol := newSigner()
	past := time.Now().Add(-time.Hour)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: carol.Public(), Holder: "carol", Scopes: []string{"publish:old/*"}, Expires: &past}, f.root); err != nil {
		t.Fatal(err)
	}
	if _, err := author.RevokeKey(f.ctx, f.repo, keys.ID(f.bob.Public()), "left", f.root); err != nil {
		t.Fatal(err)
	}
	names, err := f.repo.Names(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		why  string // "" for not internal
	}{
		{"acme/fastjson", "acme/fastjson is published in this index"},
		{"acme/newthing", "acme/newthing is inside publish:acme/*, granted to key " + keys.ID(f.alice.Public()) + " (holder alice)"},
		{"bob/lib", ""}, // bob's key is revoked
		{"old/lib", ""}, // carol's grant expired
		{"libs/json", ""},
	} {
		why, err := names.Why(c.name)
		if err != nil || why != c.why {
			t.Errorf("Why(%s) = %q, %v; want %q", c.name, why, err, c.why)
		}
		if in, _ := names.Internal(c.name); in != (c.why != "") {
			t.Errorf("Internal(%s) = %v", c.name, in)
		}
	}

	// The rules: an audit of the upstream's acme/newthing is refused, of
	// libs/json accepted.
	now := time.Now()
	intro := strings.Repeat("1", 64)
	up := f.sign(record.Upstream, []record.Subject{{Name: "public", Digest: map[string]string{"sha256": intro}}},
		record.UpstreamPredicate{Name: "public", URL: "https://public.example", Introduction: intro, Issued: now}, f.root)
	cert := func(name string) *index.File {
		rec := f.sign(record.Audited, []record.Subject{{Name: name + "@2.0.0", Digest: map[string]string{"sha256": strings.Repeat("2", 64)}}}, record.CertificationPredicate{Issued: now}, f.audit)
		return at(layout.UpstreamVersionDir("public", name, "2.0.0"), rec)
	}
	wantOutcome(t, f.try(1, now, at(layout.UpstreamDir("public"), up), cert("acme/newthing")), index.RuleUpstream, "acme/newthing is inside publish:acme/*")
	wantOutcome(t, f.try(1, now, at(layout.UpstreamDir("public"), up), cert("libs/json")), "", "")
	wantOutcome(t, f.try(1, now, at(layout.UpstreamDir("public"), up), cert("bob/lib")), "", "")
}
