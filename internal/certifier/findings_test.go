package certifier

import (
	"slices"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/record"
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
		`{"id": "GHSA-1", "modified": "2026-01-01T00:00:00Z", "aliases": ["CVE-1"], "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}`,
		`[{"id": "GHSA-2", "modified": "2026-01-01T00:00:00Z", "database_specific": {"severity": "MODERATE"}}]`,
		`{"results": [{"packages": [{"package": {"name": "p", "ecosystem": "Go"}, "groups": [{"ids": ["GO-1"], "max_severity": "7.5"}], "vulnerabilities": [{"id": "GO-1", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"name": "p", "ecosystem": "Go"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}]}]}]}]}]}`,
	} {
		f.Add([]byte(s))
	}
	var names []string
	for _, s := range record.Severities {
		names = append(names, s.String())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := ParseFindings(data, "github.com/acme/httpkit")
		if err != nil {
			return
		}
		for _, r := range fs.Results {
			if r.ID == "" || len(r.ID) > 128 {
				t.Fatalf("finding id %q", r.ID)
			}
			if len(r.Severity) == 0 || r.Severity[0].Method != "cairn" || !slices.Contains(names, r.Severity[0].Score) {
				t.Fatalf("finding %s: severities %+v, want cairn's first", r.ID, r.Severity)
			}
			if err := r.CheckSeverity(); err != nil {
				t.Fatalf("finding %s: a vulnerable record would refuse it: %v", r.ID, err)
			}
		}
	})
}

// The certifier ranks findings with record.ParseSeverity, the parser the
// vulnerable record and the policy use: GHSA's moderate is medium, CVSS
// scores by their bands, and a score above 10 refused here as the index
// would refuse the record.
func TestFindingSeverities(t *testing.T) {
	good := map[string]string{
		`[{"id": "GHSA-1", "severity": "MODERATE"}]`: "medium",
		`[{"id": "GHSA-1", "severity": 9.8}]`:        "critical",
		`[{"id": "GHSA-1", "severity": "4.0"}]`:      "medium",
		`{"scanner": {"uri": "x", "result": [{"id": "CVE-3", "severity": [{"method": "cvss_v3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, {"method": "ghsa", "score": "high"}]}]}}`: "high",
	}
	for in, want := range good {
		fs, err := ParseFindings([]byte(in), "acme/log")
		if err != nil || len(fs.Results) != 1 || fs.Results[0].Severity[0] != (record.VulnSeverity{Method: "cairn", Score: want}) {
			t.Errorf("%s: %+v, %v; want cairn's severity %s", in, fs, err, want)
		}
	}
	bad := map[string]string{
		`[{"id": "GHSA-1", "severity": 11}]`:       "0.0 to 10.0",
		`[{"id": "GHSA-1", "severity": "-1"}]`:     "0.0 to 10.0",
		`[{"id": "GHSA-1", "severity": "severe"}]`: "no severity cairn can rank",
		`{"scanner": {"uri": "x", "result": [{"id": "CVE-3", "severity": [{"method": "nvd", "score": "12"}, {"method": "ghsa", "score": "high"}]}]}}`: "0.0 to 10.0",
	}
	for in, want := range bad {
		if fs, err := ParseFindings([]byte(in), "acme/log"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %+v, %v; want an error containing %q", in, fs, err, want)
		}
	}
}
