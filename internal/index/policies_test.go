package index_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
)

const (
	policyV1 = "forbid:\n  - {name: no-withdrawn, property: withdrawn}\n"
	policyV2 = "forbid:\n  - {name: no-withdrawn, property: withdrawn}\n  - {name: no-deprecated, property: deprecated}\n"
	// A policy that parses as YAML but does not compile: its CEL reads a
	// field a package does not have.
	policyBroken = "require:\n  - {name: typo, expr: 'pkg.licence == \"MIT\"'}\n"
)

// policyVersion is a version of policy name with text after previous,
// signed by signers, as an index file.
func (f *fixture) policyVersion(name, text, previous string, signers ...keys.Signer) *index.File {
	rc := f.sign(record.Policy, []record.Subject{{Name: name, Digest: map[string]string{"sha256": record.PolicyDigest(text)}}},
		record.PolicyPredicate{Name: name, Policy: text, Previous: previous, Issued: time.Now()}, signers...)
	return at(layout.PolicyDir(name), rc)
}

// The rules of policy-chain: a version compiles, follows the latest, and
// is signed by the root or a key granted policy:PATTERN for its name.
// The attacks: a key without the scope, a fork of the history (two
// versions naming the same previous), a text that does not compile.
func TestPolicyRules(t *testing.T) {
	f := newFixture(t)
	officer, teamBot := newSigner(), newSigner()
	f.grant(officer, "policy-officers", "policy:org-*")
	f.grant(teamBot, "team-a", "policy:team-a")
	first, err := author.PublishPolicy(f.ctx, f.repo, "org-default", []byte(policyV1), officer)
	if err != nil {
		t.Fatal(err)
	}
	if first.Previous != "" || first.SHA256 != record.PolicyDigest(policyV1) || len(first.Paths) != 1 || first.Paths[0] != layout.RecordPath("policies/org-default", first.Record) {
		t.Fatalf("first version = %+v", first)
	}
	root2 := newSigner()
	now := time.Now()
	// Two versions in one commit that both follow the first: a fork.
	forkA := f.policyVersion("org-default", policyV2, first.Record, officer)
	forkB := f.policyVersion("org-default", policyV1+"# b\n", first.Record, officer)
	misplaced := f.policyVersion("org-default", policyV2, first.Record, officer)
	misplaced.Path = layout.RecordPath(layout.PolicyDir("org-other"), strings.TrimSuffix(misplaced.Path[strings.LastIndexByte(misplaced.Path, '/')+1:], ".json"))
	// A subject whose digest is not the text's.
	wrongDigest := f.sign(record.Policy, []record.Subject{{Name: "org-default", Digest: map[string]string{"sha256": record.PolicyDigest(policyV1)}}},
		record.PolicyPredicate{Name: "org-default", Policy: policyV2, Previous: first.Record, Issued: now}, officer)
	for _, tc := range []struct {
		name  string
		files []*index.File
		rule  string
		want  string
	}{
		{"the next version by a policy:org-* key", []*index.File{f.policyVersion("org-default", policyV2, first.Record, officer)}, "", ""},
		{"the next version by the root", []*index.File{f.policyVersion("org-default", policyV2, first.Record, f.root)}, "", ""},
		{"a first version of another policy in the key's pattern", []*index.File{f.policyVersion("org-strict", policyV2, "", officer)}, "", ""},
		{"a key without the scope (a publisher)", []*index.File{f.policyVersion("org-default", policyV2, first.Record, f.alice)}, index.RuleScope, "need policy:org-default"},
		{"a key whose policy scope is for another name", []*index.File{f.policyVersion("org-default", policyV2, first.Record, teamBot)}, index.RuleScope, "need policy:org-default"},
		{"a key not granted at all", []*index.File{f.policyVersion("org-default", policyV2, first.Record, newSigner())}, index.RuleSignature, "not granted"},
		{"two signatures, neither a root threshold", []*index.File{f.policyVersion("org-default", policyV2, first.Record, officer, root2)}, index.RuleThreshold, "below the root threshold"},
		{"a fork: two versions after the same previous", []*index.File{forkA, forkB}, index.RulePolicy, "latest version is"},
		{"a version that forgets the one before", []*index.File{f.policyVersion("org-default", policyV2, "", officer)}, index.RulePolicy, "latest version is"},
		{"a first version that claims a previous", []*index.File{f.policyVersion("org-new", policyV2, first.Record, officer)}, index.RulePolicy, "no version yet"},
		{"a text that does not compile", []*index.File{f.policyVersion("org-default", policyBroken, first.Record, officer)}, index.RulePolicy, "does not compile"},
		{"a text with no rules", []*index.File{f.policyVersion("org-default", "issuers: {}\n", first.Record, officer)}, index.RulePolicy, "no rules"},
		{"a version under another policy's directory", []*index.File{misplaced}, index.RuleSubject, "sits at policies/org-default/"},
		{"a subject that is not the text's digest", []*index.File{at(layout.PolicyDir("org-default"), wrongDigest)}, index.RuleSubject, "text's sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOutcome(t, f.try(1, now, tc.files...), tc.rule, tc.want)
		})
	}

	// The broken text's refusal carries the policy's own error.
	err = f.try(1, now, f.policyVersion("org-default", policyBroken, first.Record, officer))
	if !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), "licence") {
		t.Errorf("a broken policy's refusal: %v; want policy.ErrInvalid naming the field", err)
	}

	// Through the operations: the author names the latest as previous,
	// the history is one chain, the catalog reads what was in force when.
	if _, err := author.PublishPolicy(f.ctx, f.repo, "org-default", []byte(policyBroken), officer); !errors.Is(err, index.ErrRule) {
		t.Fatalf("publishing a broken policy: %v", err)
	}
	if _, err := author.PublishPolicy(f.ctx, f.repo, "org-default", []byte(policyV2), f.alice); !errors.Is(err, index.ErrRule) {
		t.Fatalf("publishing without the scope: %v", err)
	}
	second, err := author.PublishPolicy(f.ctx, f.repo, "org-default", []byte(policyV2), f.root)
	if err != nil {
		t.Fatal(err)
	}
	if second.Previous != first.Record {
		t.Fatalf("second version follows %q, want %q", second.Previous, first.Record)
	}
	hist, err := f.repo.PolicyHistory(f.ctx, "org-default")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Record != first.Record || hist[1].Record != second.Record || hist[1].Previous != first.Record ||
		hist[0].Holder != "policy-officers" || hist[0].Issuer != keys.ID(officer.Public()) || hist[1].Issuer != "root" ||
		hist[0].Policy != policyV1 || hist[1].SHA256 != record.PolicyDigest(policyV2) {
		t.Fatalf("history = %+v", hist)
	}
	c, err := f.repo.Catalog(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	text, v, err := c.PolicyText("org-default")
	if err != nil || string(text) != policyV2 || v.RecordID != second.Record || v.Digest != second.SHA256 {
		t.Fatalf("latest = %q %+v %v", text, v, err)
	}
	then, err := c.PolicyAt(f.ctx, "org-default", hist[0].Time)
	if err != nil || then.Record != hist[0].Record && hist[1].Time.After(hist[0].Time) {
		t.Fatalf("in force at the first's time: %+v %v", then, err)
	}
	if at, err := c.PolicyAt(f.ctx, "org-default", hist[1].Time); err != nil || at.Record != second.Record {
		t.Fatalf("in force at the second's time: %+v %v", at, err)
	}
	if _, err := c.PolicyAt(f.ctx, "org-default", hist[0].Time.Add(-time.Hour)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("before the first version: %v", err)
	}
	if _, err := c.Policy("org-none"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a policy never published: %v", err)
	}
	if err := f.verifyFull(); err != nil {
		t.Fatal(err)
	}
}

// A policy's files are one subject of the log's map, so a light client
// reads them with a completeness proof.
func TestPolicySubject(t *testing.T) {
	id := strings.Repeat("a", 64)
	for path, want := range map[string]string{
		"policies/org-default":                        "policy org-default",
		layout.RecordPath("policies/org-default", id): "policy org-default",
	} {
		if got, ok := index.SubjectOf(path); !ok || got != want {
			t.Errorf("SubjectOf(%s) = %q, %v; want %q", path, got, ok, want)
		}
	}
	if _, ok := index.SubjectOf("policies"); ok {
		t.Error("policies/ spans every policy, yet has a subject")
	}
	if got := index.SubjectsOf(layout.RecordPath("policies/org-default", id)); len(got) != 1 || got[0] != "policy org-default" {
		t.Errorf("SubjectsOf = %v", got)
	}
}

// A text that is not UTF-8 would not survive the record's JSON: it is
// refused before it is signed, saying so.
func TestPolicyTextNotUTF8(t *testing.T) {
	f := newFixture(t)
	_, err := author.PublishPolicy(f.ctx, f.repo, "org", []byte("forbid:\n  - {name: \xff, property: withdrawn}\n"), f.root)
	if err == nil || !strings.Contains(err.Error(), "not UTF-8") {
		t.Fatalf("a text that is not UTF-8: %v", err)
	}
}
