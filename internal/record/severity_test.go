package record

import (
	"encoding/json"
	"strings"
	"testing"
)

// One parser: the words the severity field uses (GHSA's moderate is
// medium's rank) and CVSS scores by their bands; nothing above 10,
// below 0, NaN or otherwise unreadable.
func TestParseSeverity(t *testing.T) {
	good := map[string]Severity{
		"none": SeverityNone, "low": SeverityLow, "medium": SeverityMedium, "moderate": SeverityMedium,
		"MODERATE": SeverityMedium, " High ": SeverityHigh, "CRITICAL": SeverityCritical,
		"0": SeverityNone, "0.0": SeverityNone, "0.1": SeverityLow, "3.9": SeverityLow, "4": SeverityMedium,
		"4.0": SeverityMedium, "6.9": SeverityMedium, "7.0": SeverityHigh, "8.9": SeverityHigh,
		"9.0": SeverityCritical, "9.8": SeverityCritical, "10": SeverityCritical, "10.0": SeverityCritical, ".5": SeverityLow,
	}
	for in, want := range good {
		got, err := ParseSeverity(in)
		if err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"10.1": "0.0 to 10.0", "11": "0.0 to 10.0", "99": "0.0 to 10.0", "-1": "0.0 to 10.0", "-0.1": "0.0 to 10.0",
		"NaN": "want none, low", "nan": "want none, low", "Inf": "want none, low", "1e1": "want none, low", "0x1p1": "want none, low",
		"": "want none, low", "severe": "want none, low", "important": "want none, low",
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": "want none, low",
	}
	for in, want := range bad {
		if got, err := ParseSeverity(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSeverity(%q) = %v, %v; want an error containing %q", in, got, err, want)
		}
	}
}

// The order is the scale's; names round-trip through text (JSON, YAML);
// moderate is written back as medium.
func TestSeverityOrderAndText(t *testing.T) {
	for i := 1; i < len(Severities); i++ {
		lo, hi := Severities[i-1], Severities[i]
		if !(lo < hi) || lo.Compare(hi) != -1 || hi.Compare(lo) != 1 || hi.Compare(hi) != 0 || !hi.AtLeast(lo) || lo.AtLeast(hi) || hi.Rank() != i {
			t.Errorf("order broken between %v and %v", lo, hi)
		}
	}
	var got []Severity
	if err := json.Unmarshal([]byte(`["moderate", "9.8", "none", "LOW"]`), &got); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(got)
	if string(out) != `["medium","critical","none","low"]` {
		t.Errorf("round trip: %s", out)
	}
	if err := json.Unmarshal([]byte(`["11"]`), &got); err == nil {
		t.Error("a CVSS score of 11 unmarshalled")
	}
	if _, err := json.Marshal(Severity(7)); err == nil {
		t.Error("an off-scale severity marshalled")
	}
}

// Worst ranks a result by its highest readable score and ignores
// vocabularies cairn does not rank.
func TestVulnResultWorst(t *testing.T) {
	r := VulnResult{ID: "CVE-1", Severity: []VulnSeverity{
		{Method: "cvss_v3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
		{Method: "ghsa", Score: "MODERATE"}, {Method: "nvd", Score: "7.5"}, {Method: "x", Score: "high"},
	}}
	if sev, score, ok := r.Worst(); !ok || sev != SeverityHigh || score != "7.5" {
		t.Errorf("Worst = %v %q %v; want high from the first score of that rank, 7.5", sev, score, ok)
	}
	if _, _, ok := (VulnResult{Severity: []VulnSeverity{{Method: "v", Score: "CVSS:3.1/AV:N"}}}).Worst(); ok {
		t.Error("a vector alone was ranked")
	}
}

// Attack: a vulnerable record whose severity cairn cannot rank, or whose
// score is out of CVSS's range, would read as the worst of all to one
// reader and as nothing to another. CheckSeverity (the index's rule
// severity) refuses it; scores of other vocabularies beside a ranked one
// are kept. Decoding keeps it, so that a history from before the rule
// still reads.
func TestVulnerableSeverityStrict(t *testing.T) {
	vuln := func(sevs ...VulnSeverity) []byte {
		p := samples(t)[Vulnerable].(VulnsPredicate)
		p.Scanner.Result = []VulnResult{{ID: "GHSA-x", Severity: sevs}}
		payload, err := Build(Vulnerable, []Subject{desc}, p)
		if err != nil {
			t.Fatal(err)
		}
		return envelope(PayloadType, payload, 1)
	}
	refused := map[string][]VulnSeverity{
		"cvss above 10":         {{Method: "cairn", Score: "11"}},
		"cvss above 10 (other)": {{Method: "cairn", Score: "high"}, {Method: "nvd", Score: "99"}},
		"negative":              {{Method: "nvd", Score: "-1"}},
		"nan":                   {{Method: "nvd", Score: "NaN"}},
		"cairn word unknown":    {{Method: "cairn", Score: "severe"}},
		"nothing rankable":      {{Method: "cvss_v3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
	}
	check := func(sevs []VulnSeverity) error {
		rec, err := Parse(vuln(sevs...))
		if err != nil {
			t.Fatalf("%+v: decoding: %v", sevs, err)
		}
		return rec.Predicate.(VulnsPredicate).Scanner.Result[0].CheckSeverity()
	}
	for name, sevs := range refused {
		if err := check(sevs); err == nil || !strings.Contains(err.Error(), "GHSA-x") {
			t.Errorf("%s: err = %v; want an error naming the result", name, err)
		}
	}
	kept := [][]VulnSeverity{
		{{Method: "cairn", Score: "moderate"}},
		{{Method: "cairn", Score: "9.8"}},
		{{Method: "cairn", Score: "high"}, {Method: "cvss_v3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, {Method: "redhat", Score: "important"}},
	}
	for _, sevs := range kept {
		if err := check(sevs); err != nil {
			t.Errorf("%+v: %v", sevs, err)
		}
	}
}
