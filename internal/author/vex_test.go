package author_test

import (
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
)

// OpenVEX terms that do not fit the record are refused before anything
// is signed, saying which flag goes with what.
func TestCertifyRefusesMisplacedVEXTerms(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	for _, c := range []struct {
		kind  record.Kind
		terms author.VEXTerms
		want  string
	}{
		{record.Fixed, author.VEXTerms{Justification: "component_not_present"}, "give --status not_affected"},
		{record.Fixed, author.VEXTerms{Status: "not_affected"}, "--status not_affected says why"},
		{record.Fixed, author.VEXTerms{Status: "not_affected", Justification: "nope"}, `--justification "nope": want one of component_not_present`},
		{record.Fixed, author.VEXTerms{Status: "affected"}, "a fixed record's status is fixed or not_affected"},
		{record.Fixed, author.VEXTerms{Action: "upgrade"}, "--action says what to do about an affected version"},
		{record.Vulnerable, author.VEXTerms{Status: "not_affected"}, "a vulnerable record's status is affected (the default) or under_investigation"},
		{record.Vulnerable, author.VEXTerms{Impact: "x"}, "they go with --property fixed --status not_affected"},
		{record.Vulnerable, author.VEXTerms{Status: "under_investigation", Action: "wait"}, "not one under investigation"},
		{record.Audited, author.VEXTerms{Status: "fixed"}, "go with --property fixed or vulnerable, not audited"},
	} {
		_, err := author.Certify(w.Ctx, w.Repo, author.Certification{Name: "acme/log", Version: "1.0.0", Kind: c.kind, VulnID: "GHSA-1", Severity: "high", VEX: c.terms}, w.Security)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: err %v, want one saying %q", c.kind, c.terms, err, c.want)
		}
	}
}
