package server

import (
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
)

// A server policy's verdict that changes with time alone (an audit
// older than max_age, the heads unmoved) reaches the package document
// once the judgments are made again (judgmentLife), not only when a push
// moves the heads or the memory cache forgets the document.
func TestPackageDocVerdictAges(t *testing.T) {
	defer func(old time.Duration) { judgmentLife = old }(judgmentLife)
	judgmentLife = 200 * time.Millisecond
	pol, err := policy.Parse("policy.yaml", []byte("require:\n  - {name: fresh-audit, property: audited, max_age: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Policy = pol })
	auditor := signer(t)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: auditor.Public(), Holder: "auditor", Scopes: []string{"certify:audited"}}, f.root); err != nil {
		t.Fatal(err)
	}
	f.publishX("1.0.0")
	if _, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/x", Version: "1.0.0", Kind: record.Audited}, auditor); err != nil {
		t.Fatal(err)
	}
	refusals := func() []Refusal {
		t.Helper()
		doc, _, _ := f.packageDoc("acme/x")
		return doc.Refusals
	}
	if r := refusals(); len(r) != 0 {
		t.Fatalf("a fresh audit: refusals %+v", r)
	}
	time.Sleep(2500 * time.Millisecond) // the audit is past max_age; nothing was pushed
	if r := refusals(); len(r) != 1 || r[0].Version != "1.0.0" || r[0].Rule != "fresh-audit" {
		t.Fatalf("an audit past max_age: refusals %+v, want 1.0.0 refused by fresh-audit", r)
	}
}
