package policy

import (
	"testing"
	"time"

	"cairn.dev/cairn/internal/record"
)

// TestAttackFutureDatedRecordStaysFresh: a certifier whose record claims
// to have been made after the judgment time (its clock a year ahead, or
// a scan that wants to stay "fresh") does not count for max_age: with
// max_age 7d, a scan appended 30 days ago but dated a year ahead would
// otherwise allow the version for as long as the future lasts. Found by
// the outside review of issue 16 (TestReview16MaxAgeFutureRecordStaysFresh).
func TestAttackFutureDatedRecordStaysFresh(t *testing.T) {
	p := mustParse(t, "require:\n  - {name: fresh-scan, property: scanned, max_age: 7d}\n")
	v := newVersion("acme/a", "1.0.0")
	future := judged.Add(365 * 24 * time.Hour)
	id := v.add(record.Scanned, record.CertificationPredicate{Issued: future, Note: "scanner ran"})
	later := judged.Add(30 * 24 * time.Hour)
	got := p.Evaluate(v.subject(), later)
	if got.Allowed {
		t.Fatalf("a scan dated a year ahead is fresh under max_age 7d: %+v", rule(t, got, "fresh-scan"))
	}
	wantRule(t, got, "fresh-scan", false, "record "+id[:16]+" by acme-security ["+securityKey+"] is issued in the future (made "+future.Format(time.RFC3339)+", after the judgment time "+later.Format(time.RFC3339)+" and its 5m0s of clock skew)")

	// Within the clock skew a record counts: a certifier's clock a
	// little ahead of the judge's is not an attack.
	skewed := newVersion("acme/a", "1.0.0")
	skewed.add(record.Scanned, record.CertificationPredicate{Issued: later.Add(MaxClockSkew), Note: "scanner ran"})
	wantRule(t, p.Evaluate(skewed.subject(), later), "fresh-scan", true, "")
	ahead := newVersion("acme/a", "1.0.0")
	ahead.add(record.Scanned, record.CertificationPredicate{Issued: later.Add(MaxClockSkew + time.Second), Note: "scanner ran"})
	wantRule(t, p.Evaluate(ahead.subject(), later), "fresh-scan", false, "is issued in the future")
}
