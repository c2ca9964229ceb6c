package index_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// Attack: a package whose name differs from a published one only in case
// ("corp.example/Greet" beside "corp.example/greet") would be a second
// package that people, case-insensitive file systems and the go command's
// escaped paths confuse with the first. The index refuses it, naming both.
func TestFoldedNameRefused(t *testing.T) {
	f := newFixture(t)
	f.grant(f.bob, "bob", "publish:corp.example/*")
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	f.publish(f.bob, "corp.example/greet", "1.0.0")

	for _, name := range []string{"corp.example/Greet", "corp.example/GREET"} {
		_, err := author.Publish(f.ctx, f.repo, f.pkgDir(name, "2.0.0", "evil"), f.bob)
		wantRule(t, err, index.RuleFoldedName)
		var re *index.RuleError
		if errors.As(err, &re) && !strings.Contains(re.Hint(), "differ only in case") {
			t.Errorf("hint %q", re.Hint())
		}
		for _, want := range []string{name, "corp.example/greet"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal of %s does not name %s: %v", name, want, err)
			}
		}
	}
	// The name as written publishes on; so does another name.
	f.publish(f.bob, "corp.example/greet", "1.1.0")
	f.publish(f.bob, "corp.example/greeter", "1.0.0")

	// A full replay judges by the same rule: the history verifies.
	if _, err := f.repo.Verify(f.ctx, true); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// A name and a longer one in the same shard: the package directory of
// the shorter holds the first element of the longer beside its versions,
// and neither reads as the other's version.
func TestLongerNameInSameShard(t *testing.T) {
	const short, long = "corp.example/greet", "corp.example/greet/x82602"
	if layout.ShardDir(short) != layout.ShardDir(long) {
		t.Fatalf("%s and %s in shards %s and %s: pick another suffix", short, long, layout.ShardDir(short), layout.ShardDir(long))
	}
	f := newFixture(t)
	f.grant(f.bob, "bob", "publish:corp.example/*")
	f.publish(f.bob, short, "1.0.0")
	f.publish(f.bob, long, "2.0.0")
	f.publish(f.bob, short, "1.1.0")

	cat, err := f.repo.Catalog(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{short: "1.0.0 1.1.0", long: "2.0.0"} {
		vs, err := cat.Versions(name)
		if err != nil || strings.Join(vs, " ") != want {
			t.Errorf("Versions(%s) = %v, %v; want %s", name, vs, err, want)
		}
	}
	names, err := f.repo.PackageNames(f.ctx, index.MainRef)
	if err != nil || !names[short] || !names[long] || len(names) != 2 {
		t.Errorf("PackageNames = %v, %v", names, err)
	}
	if _, err := f.repo.Verify(f.ctx, true); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// Internal names win case-folded: an upstream's corp.example/Greet is
// internal when corp.example/greet is published here (even once no live
// grant covers it), and so is corp.example/greet/sub beneath it, or when a live grant's pattern covers it in any case;
// the rules refuse this repository's records about it.
func TestInternalNamesFolded(t *testing.T) {
	f := newFixture(t)
	dave, erin := newSigner(), newSigner()
	f.grant(dave, "dave", "publish:corp.example/*")
	f.grant(erin, "erin", "publish:Other.example/Tools/*")
	f.publish(dave, "corp.example/greet", "1.0.0")
	if _, err := author.RevokeKey(f.ctx, f.repo, keys.ID(dave.Public()), "left", f.root); err != nil {
		t.Fatal(err)
	}
	names, err := f.repo.Names(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, why string }{
		{"corp.example/greet", "corp.example/greet is published in this index"},
		{"corp.example/Greet", "corp.example/Greet differs only in case from corp.example/greet, published in this index"},
		{"corp.example/GREET", "corp.example/GREET differs only in case from corp.example/greet, published in this index"},
		{"corp.example/other", ""}, // dave's key is revoked
		// Beneath a published name: a nested module of it.
		{"corp.example/greet/sub", "corp.example/greet/sub lies beneath corp.example/greet, published in this index"},
		{"Corp.example/Greet/sub/v2", "Corp.example/Greet/sub/v2 lies beneath corp.example/greet, published in this index"},
		{"corp.example/greeting/sub", ""},
		{"other.example/tools/x/v2", "other.example/tools/x/v2 is inside publish:Other.example/Tools/*, granted to key " + keys.ID(erin.Public()) + " (holder erin)"},
	} {
		if why, err := names.Why(c.name); err != nil || why != c.why {
			t.Errorf("Why(%s) = %q, %v; want %q", c.name, why, err, c.why)
		}
	}
	now := time.Now()
	intro := strings.Repeat("1", 64)
	up := f.sign(record.Upstream, []record.Subject{{Name: "public", Digest: map[string]string{"sha256": intro}}},
		record.UpstreamPredicate{Name: "public", URL: "https://public.example", Introduction: intro, Issued: now}, f.root)
	cert := func(name string) *index.File {
		rec := f.sign(record.Audited, []record.Subject{{Name: name + "@2.0.0", Digest: map[string]string{"sha256": strings.Repeat("2", 64)}}}, record.CertificationPredicate{Issued: now}, f.audit)
		return at(layout.UpstreamVersionDir("public", name, "2.0.0"), rec)
	}
	wantOutcome(t, f.try(1, now, at(layout.UpstreamDir("public"), up), cert("corp.example/Greet")), index.RuleUpstream, "differs only in case from corp.example/greet")
	wantOutcome(t, f.try(1, now, at(layout.UpstreamDir("public"), up), cert("corp.example/greet/sub")), index.RuleUpstream, "lies beneath corp.example/greet")
	wantOutcome(t, f.try(1, now, at(layout.UpstreamDir("public"), up), cert("corp.example/other")), "", "")
}
