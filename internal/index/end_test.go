package index_test

import (
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/record"
)

// Attack: a record is ended once. A second revoke of a revoked record, a
// supersede of a revoked or superseded one, or a supersede naming an
// ended record as its replacement would leave the record's standing to
// whichever end a reader happens to meet first. Refused, in one commit
// and across commits, with the end that came first as evidence.
func TestEndOnce(t *testing.T) {
	f := newFixture(t)
	p := f.publish(f.alice, "acme/fastjson", "1.2.3")
	vdir := layout.VersionDir("acme/fastjson", "1.2.3")
	desc := record.Subject{Name: "acme/fastjson@1.2.3", Digest: map[string]string{"sha256": p.Ref.SHA256}}
	n := 0
	audit := func() *record.Record {
		n++
		return f.sign(record.Audited, []record.Subject{desc}, record.CertificationPredicate{Issued: time.Now(), Note: strings.Repeat("x", n)}, f.audit)
	}
	end := func(kind record.Kind, target, replacement *record.Record, reason string) *record.Record {
		pred := record.EndPredicate{Reason: reason, Issued: time.Now()}
		if replacement != nil {
			pred.Replacement = replacement.ID
		}
		return f.sign(kind, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": target.ID}}}, pred, f.audit)
	}

	// Committed: a is revoked, b superseded by c.
	a, b, c := audit(), audit(), audit()
	revA, supB := end(record.Revoke, a, nil, "wrong"), end(record.Supersede, b, c, "newer")
	var files []gitx.File
	for _, r := range []*record.Record{a, b, c, revA, supB} {
		files = append(files, gitx.File{Path: layout.RecordPath(vdir, r.ID), Data: r.Raw})
	}
	if _, err := f.repo.Append(f.ctx, index.Change{Replayed: files}, "acme-security <sec@example.com>", "ends"); err != nil {
		t.Fatal(err)
	}
	d, e := audit(), audit()
	cases := []struct {
		name  string
		files []*index.File
		want  string
	}{
		{"revoke a revoked record", []*index.File{at(vdir, end(record.Revoke, a, nil, "again"))}, "already revoked by record " + revA.ID[:16]},
		{"supersede a revoked record", []*index.File{at(vdir, end(record.Supersede, a, c, "newer"))}, "already revoked by record " + revA.ID[:16]},
		{"revoke a superseded record", []*index.File{at(vdir, end(record.Revoke, b, nil, "wrong"))}, "already superseded by record " + supB.ID[:16]},
		{"supersede a superseded record", []*index.File{at(vdir, end(record.Supersede, b, c, "newer"))}, "already superseded by record " + supB.ID[:16]},
		{"supersede with a revoked replacement", []*index.File{at(vdir, end(record.Supersede, c, a, "back"))}, "replacement " + a.ID[:16] + " was already revoked"},
		{"two revokes in one commit", []*index.File{at(vdir, d), at(vdir, end(record.Revoke, d, nil, "one")), at(vdir, end(record.Revoke, d, nil, "two"))}, "already revoked by record"},
		{"supersede and revoke in one commit", []*index.File{at(vdir, d), at(vdir, e), at(vdir, end(record.Supersede, d, e, "newer")), at(vdir, end(record.Revoke, d, nil, "wrong"))}, "already superseded by record"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := f.try(1, time.Now(), tc.files...)
			wantOutcome(t, err, index.RuleEndOnce, tc.want)
			if !strings.Contains(err.Error(), "a record is ended once") {
				t.Errorf("no hint in %q", err)
			}
		})
	}
	// What is still allowed: ending an active record, once.
	wantOutcome(t, f.try(1, time.Now(), at(vdir, end(record.Revoke, c, nil, "wrong"))), "", "")
	wantOutcome(t, f.try(1, time.Now(), at(vdir, d), at(vdir, end(record.Supersede, c, d, "newer"))), "", "")
	if err := f.verifyFull(); err != nil {
		t.Fatal(err)
	}
}

// A history made before a rule began still verifies: the rules added
// since (end-once, severity) judge commits dated from their start, and a
// commit dated after it is held to them. Without ruleSince, pulling an
// index that an earlier cairn wrote (a record revoked twice, a scanner's
// "99" beside cairn's "high") would fail.
func TestRulesJudgeByTheirDay(t *testing.T) {
	f := newFixture(t)
	p := f.publish(f.alice, "acme/fastjson", "1.2.3")
	vdir := layout.VersionDir("acme/fastjson", "1.2.3")
	desc := record.Subject{Name: "acme/fastjson@1.2.3", Digest: map[string]string{"sha256": p.Ref.SHA256}}
	a := f.sign(record.Audited, []record.Subject{desc}, record.CertificationPredicate{Issued: time.Now()}, f.audit)
	revoke := func(reason string) *record.Record {
		return f.sign(record.Revoke, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": a.ID}}}, record.EndPredicate{Reason: reason, Issued: time.Now()}, f.audit)
	}
	vuln := f.sign(record.Vulnerable, []record.Subject{desc}, record.VulnsPredicate{
		Scanner: record.VulnScanner{URI: "https://scanner.example", Result: []record.VulnResult{{ID: "GHSA-x", Severity: []record.VulnSeverity{{Method: "cairn", Score: "high"}, {Method: "nvd", Score: "99"}}}}},
	}, f.audit)
	twice := []*index.File{at(vdir, a), at(vdir, revoke("one")), at(vdir, revoke("two"))}

	for _, rule := range []string{index.RuleEndOnce, index.RuleSeverity} {
		if index.RuleSince(rule).IsZero() {
			t.Fatalf("rule %s has no start", rule)
		}
	}
	before := index.RuleSince(index.RuleEndOnce).Add(-time.Hour)
	wantOutcome(t, f.try(1, before, twice...), "", "")
	wantOutcome(t, f.try(1, before, at(vdir, vuln)), "", "")

	since := index.RuleSince(index.RuleEndOnce)
	wantOutcome(t, f.try(1, since, twice...), index.RuleEndOnce, "already revoked")
	wantOutcome(t, f.try(1, time.Now(), at(vdir, vuln)), index.RuleSeverity, "GHSA-x")
}
