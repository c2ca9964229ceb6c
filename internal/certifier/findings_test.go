package certifier

import (
	"slices"
	"testing"

	"cairn.dev/cairn/internal/index"
)

// FuzzParseFindings: whatever a scanner prints, ParseFindings returns an
// error or findings that a vulnerable record can carry: each with an id
// and cairn's own severity first.
func FuzzParseFindings(f *testing.F) {
	for _, s := range []string{
		``, `[]`, `[{"id": "GHSA-1", "severity": "high"}]`,
		`{"findings": [{"id": "CVE-1", "severity": 9.8, "affects": "<1.2", "note": "x"}]}`,
		`{"scanner": {"uri": "x", "result": [{"id": "CVE-3", "severity": [{"method": "nvd", "score": "7.0"}]}]}}`,
		`{"predicate": {"scanner": {"uri": "x", "result": [{"id": "CVE-4", "severity": [{"method": "a", "score": "moderate"}]}]}}}`,
		`{"results": []}`, `[{"id": "", "severity": "low"}]`, `null`, `[null]`, `{"scanner": null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := ParseFindings(data)
		if err != nil {
			return
		}
		for _, r := range fs.Results {
			if r.ID == "" || len(r.ID) > 128 {
				t.Fatalf("finding id %q", r.ID)
			}
			if len(r.Severity) == 0 || r.Severity[0].Method != "cairn" || !slices.Contains(index.Severities, r.Severity[0].Score) {
				t.Fatalf("finding %s: severities %+v, want cairn's first", r.ID, r.Severity)
			}
		}
	})
}
