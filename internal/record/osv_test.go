package record

import (
	"errors"
	"strings"
	"testing"
)

// CVSS vectors score as CVSS's calculators score them (FIRST's v3.1 and
// v4.0 examples, NVD's figures) and land in the bands ParseSeverity
// maps scores to; vectors go-cvss refuses, and v2 vectors, are errors
// that quote the vector.
func TestCVSS(t *testing.T) {
	good := []struct {
		vector string
		score  float64
		sev    Severity
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, SeverityCritical},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, SeverityHigh},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N", 9.1, SeverityCritical},
		{"CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.8, SeverityLow},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0, SeverityNone},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3, SeverityCritical},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", 6.9, SeverityMedium},
	}
	for _, g := range good {
		score, sev, err := CVSS(g.vector)
		if err != nil || score != g.score || sev != g.sev {
			t.Errorf("CVSS(%s) = %v, %v, %v; want %v, %v", g.vector, score, sev, err, g.score, g.sev)
		}
		if want, _ := ParseSeverity(FormatScore(score)); want != sev {
			t.Errorf("CVSS(%s): severity %v, but its score %s reads as %v: two rules", g.vector, sev, FormatScore(score), want)
		}
	}
	bad := map[string]string{
		"CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": "invalid metric value",
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H":     "not defined",
		"AV:N/AC:L/Au:N/C:P/I:P/A:P":                   "CVSS v2 vectors are kept, not scored",
		"CVSS:4.0/AV:N":                                "CVSS:4.0/AV:N",
		"9.8":                                          "want CVSS:3.0/",
	}
	for in, want := range bad {
		if _, _, err := CVSS(in); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), in) {
			t.Errorf("CVSS(%q) = %v; want an error quoting it and containing %q", in, err, want)
		}
	}
}

// A result's CVSS score is its highest vector's; a vector under a CVSS
// method that does not score is an error, naming the result.
func TestCVSSScore(t *testing.T) {
	r := VulnResult{ID: "GO-1", Severity: []VulnSeverity{
		{Method: "cairn", Score: "low"},
		{Method: MethodCVSSv3, Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"},
		{Method: MethodCVSSv4, Score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
		{Method: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:P/I:P/A:P"},
	}}
	score, vector, ok, err := r.CVSSScore()
	if err != nil || !ok || score != 9.3 || !strings.HasPrefix(vector, "CVSS:4.0/") {
		t.Errorf("CVSSScore = %v, %q, %v, %v; want 9.3 from the v4 vector", score, vector, ok, err)
	}
	if _, _, ok, err := (VulnResult{ID: "X", Severity: []VulnSeverity{{Method: "cairn", Score: "high"}}}).CVSSScore(); ok || err != nil {
		t.Errorf("no vector: ok %v, err %v", ok, err)
	}
	r.Severity = append(r.Severity, VulnSeverity{Method: MethodCVSSv3, Score: "CVSS:3.1/AV:N"})
	if _, _, _, err := r.CVSSScore(); err == nil || !strings.Contains(err.Error(), "GO-1") {
		t.Errorf("a broken vector: err = %v; want an error naming GO-1", err)
	}
}

// One rule: a fixed record's ids answer a vulnerability that is one of
// them or whose OSV aliases are.
func TestAnsweredBy(t *testing.T) {
	r := VulnResult{ID: "GHSA-4v7x-pqxf-cx7m", OSV: &VulnOSV{Aliases: []string{"CVE-2026-41234", "GHSA-4v7x-pqxf-cx7m"}}}
	for ids, want := range map[string]string{
		"CVE-2026-41234":          "CVE-2026-41234",
		"GHSA-4v7x-pqxf-cx7m":     "GHSA-4v7x-pqxf-cx7m",
		"CVE-1,CVE-2026-41234":    "CVE-2026-41234",
		"CVE-2026-4123":           "",
		"cve-2026-41234":          "",
		"GO-2026-1,GHSA-4v7x-pqx": "",
	} {
		got, ok := r.AnsweredBy(strings.Split(ids, ","))
		if got != want || ok != (want != "") {
			t.Errorf("AnsweredBy(%s) = %q, %v; want %q", ids, got, ok, want)
		}
	}
	if got := r.Aliases(); len(got) != 1 || got[0] != "CVE-2026-41234" {
		t.Errorf("Aliases = %v; want the CVE only (not its own id)", got)
	}
	if _, ok := (VulnResult{ID: "GHSA-1"}).AnsweredBy([]string{"CVE-1"}); ok {
		t.Error("a result with no OSV data is answered by another id")
	}
}

func osvRecord(t *testing.T, o *VulnOSV) []byte {
	t.Helper()
	p := samples(t)[Vulnerable].(VulnsPredicate)
	p.Scanner.Result[0].OSV = o
	payload, err := Build(Vulnerable, []Subject{desc}, p)
	if err != nil {
		t.Fatal(err)
	}
	return envelope(PayloadType, payload, 1)
}

func goodOSV() *VulnOSV {
	return &VulnOSV{
		Aliases: []string{"CVE-2026-41234"}, Summary: "unbounded recursion", Modified: "2026-10-02T14:21:09Z",
		Affected: []OSVAffected{{Package: OSVPackage{Ecosystem: "Go", Name: "github.com/acme/fastjson"},
			Ranges: []OSVRange{{Type: "SEMVER", Events: []OSVEvent{{Introduced: "0"}, {Fixed: "1.2.4"}}}}}},
		References: []OSVReference{{Type: "ADVISORY", URL: "https://nvd.nist.gov/vuln/detail/CVE-2026-41234"}},
	}
}

// A vulnerable record with OSV data parses and keeps it; one without
// (every record made before) parses as before; OSV data that OSV's
// schema would refuse, or that overflows a record, is a malformed record
// that says where; an unknown member inside it is refused like any.
func TestVulnerableOSV(t *testing.T) {
	rec, err := Parse(osvRecord(t, goodOSV()))
	if err != nil {
		t.Fatal(err)
	}
	got := rec.Predicate.(VulnsPredicate).Scanner.Result[0]
	if got.OSV == nil || got.OSV.Aliases[0] != "CVE-2026-41234" || got.OSV.Affected[0].Ranges[0].Events[1].Fixed != "1.2.4" {
		t.Errorf("OSV data not kept: %+v", got.OSV)
	}
	if rec, err := Parse(osvRecord(t, nil)); err != nil || rec.Predicate.(VulnsPredicate).Scanner.Result[0].OSV != nil {
		t.Errorf("a record without OSV data: %v", err)
	}
	bad := map[string]func(o *VulnOSV){
		"events[1] sets 2":    func(o *VulnOSV) { o.Affected[0].Ranges[0].Events[1].LastAffected = "1.2.3" },
		"no introduced event": func(o *VulnOSV) { o.Affected[0].Ranges[0].Events = []OSVEvent{{Fixed: "1"}} },
		"both fixed and last": func(o *VulnOSV) {
			o.Affected[0].Ranges[0].Events = append(o.Affected[0].Ranges[0].Events, OSVEvent{LastAffected: "2"})
		},
		`type "RANGE"`:              func(o *VulnOSV) { o.Affected[0].Ranges[0].Type = "RANGE" },
		"GIT range":                 func(o *VulnOSV) { o.Affected[0].Ranges[0].Type = "GIT" },
		`url "javascript:alert(1)"`: func(o *VulnOSV) { o.References[0].URL = "javascript:alert(1)" },
		`type "BLOG"`:               func(o *VulnOSV) { o.References[0].Type = "BLOG" },
		"modified":                  func(o *VulnOSV) { o.Modified = "2026-10-02" },
		"alias":                     func(o *VulnOSV) { o.Aliases = []string{""} },
		"package name":              func(o *VulnOSV) { o.Affected[0].Package.Name = "" },
		"over 1024":                 func(o *VulnOSV) { o.Summary = strings.Repeat("x", 1025) },
		"references, over":          func(o *VulnOSV) { o.References = make([]OSVReference, MaxOSVReferences+1) },
	}
	for want, edit := range bad {
		o := goodOSV()
		edit(o)
		_, err := Parse(osvRecord(t, o))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "result GHSA-1: osv") {
			t.Errorf("%s: err = %v; want ErrMalformed naming the result and %q", want, err, want)
		}
	}
	st := jsonMap(t, mustJSON(t, mustStatement(t, osvRecord(t, goodOSV()))))
	st["predicate"].(map[string]any)["scanner"].(map[string]any)["result"].([]any)[0].(map[string]any)["osv"].(map[string]any)["details"] = "smuggled"
	_, err = Parse(envelope(PayloadType, mustJSON(t, st), 1))
	wantUnknownMember(t, "osv", err, "details")
}

func mustStatement(t *testing.T, env []byte) Statement {
	t.Helper()
	rec, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Statement
}

// Affects writes OSV ranges as people read version ranges.
func TestOSVAffects(t *testing.T) {
	ev := func(kv ...string) []OSVEvent {
		var out []OSVEvent
		for i := 0; i < len(kv); i += 2 {
			switch kv[i] {
			case "i":
				out = append(out, OSVEvent{Introduced: kv[i+1]})
			case "f":
				out = append(out, OSVEvent{Fixed: kv[i+1]})
			case "l":
				out = append(out, OSVEvent{LastAffected: kv[i+1]})
			case "x":
				out = append(out, OSVEvent{Limit: kv[i+1]})
			}
		}
		return out
	}
	for want, a := range map[string]OSVAffected{
		"<1.2.4":                     {Ranges: []OSVRange{{Type: "SEMVER", Events: ev("i", "0", "f", "1.2.4")}}},
		">=1.0.0, <1.0.5":            {Ranges: []OSVRange{{Type: "SEMVER", Events: ev("i", "1.0.0", "f", "1.0.5")}}},
		"<0.9.2 || >=1.0.0, <1.0.5":  {Ranges: []OSVRange{{Type: "SEMVER", Events: ev("i", "0", "f", "0.9.2", "i", "1.0.0", "f", "1.0.5")}}},
		">=0.3.0, <=0.4.1":           {Ranges: []OSVRange{{Type: "ECOSYSTEM", Events: ev("i", "0.3.0", "l", "0.4.1")}}},
		"*":                          {Ranges: []OSVRange{{Type: "SEMVER", Events: ev("i", "0")}}},
		">=2.0.0":                    {Ranges: []OSVRange{{Type: "SEMVER", Events: ev("i", "2.0.0")}}},
		"":                           {Ranges: []OSVRange{{Type: "GIT", Repo: "https://x", Events: ev("i", "0")}}},
		"1.0.0 || 1.0.1":             {Versions: []string{"1.0.0", "1.0.1"}},
		">=1.0.0, <2.0.0 || >=3.0.0": {Ranges: []OSVRange{{Type: "SEMVER", Events: ev("i", "1.0.0", "x", "2.0.0")}, {Type: "SEMVER", Events: ev("i", "3.0.0")}}},
	} {
		if got := a.Affects(); got != want {
			t.Errorf("Affects(%+v) = %q; want %q", a, got, want)
		}
	}
}
