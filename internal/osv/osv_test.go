package osv

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/osv/osvtest"
	"cairn.dev/cairn/internal/record"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The OSV records the tests read are valid by OSV's own schema, and so
// is every vulnerability of the osv-scanner report; the schema check is
// a real one (a record without modified, or with an unknown range type,
// fails it).
func TestInputsAreValidOSV(t *testing.T) {
	for _, name := range []string{"GHSA-4v7x-pqxf-cx7m.json", "GO-2026-4102.json"} {
		osvtest.Valid(t, name, read(t, name))
	}
	var rep struct {
		Results []struct {
			Packages []struct{ Vulnerabilities []json.RawMessage }
		}
	}
	if err := json.Unmarshal(read(t, "osv-scanner.json"), &rep); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rep.Results {
		for _, p := range r.Packages {
			for _, v := range p.Vulnerabilities {
				osvtest.Valid(t, "osv-scanner.json's vulnerability", v)
				n++
			}
		}
	}
	if n != 3 {
		t.Fatalf("osv-scanner.json holds %d vulnerabilities; want 3", n)
	}
	for what, doc := range map[string]string{
		"no modified":     `{"id": "GHSA-1"}`,
		"bad range type":  `{"id": "GHSA-1", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Go", "name": "x"}, "ranges": [{"type": "RANGE", "events": [{"introduced": "0"}]}]}]}`,
		"unknown prefix":  `{"id": "NOPE-1", "modified": "2026-01-01T00:00:00Z"}`,
		"bad CVSS vector": `{"id": "GHSA-1", "modified": "2026-01-01T00:00:00Z", "severity": [{"type": "CVSS_V3", "score": "9.8"}]}`,
	} {
		if err := osvtest.Check(t, []byte(doc)); err == nil {
			t.Errorf("%s: OSV's schema accepts %s", what, doc)
		}
	}
}

func entry(t *testing.T, name string) *Entry {
	t.Helper()
	e, err := Parse(read(t, name), name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A GHSA record becomes a result that keeps its id, aliases, summary,
// times, the package's ranges (not the versions they enumerate again),
// its CVSS vector and references; its severity is the vector's score's
// band (7.5: high), first, as cairn's; affects says the range.
func TestResultFromGHSA(t *testing.T) {
	res, err := entry(t, "GHSA-4v7x-pqxf-cx7m.json").Result(Target{Name: "acme/fastjson"})
	if err != nil {
		t.Fatal(err)
	}
	want := []record.VulnSeverity{{Method: "cairn", Score: "high"}, {Method: record.MethodCVSSv3, Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}
	if res.ID != "GHSA-4v7x-pqxf-cx7m" || !slices.Equal(res.Severity, want) {
		t.Errorf("result %s, severities %+v; want %+v", res.ID, res.Severity, want)
	}
	o := res.OSV
	if !slices.Equal(o.Aliases, []string{"CVE-2026-41234"}) || !strings.HasPrefix(o.Summary, "fastjson: unbounded recursion") ||
		o.Modified != "2026-10-02T14:21:09Z" || o.Published != "2026-09-30T18:30:37Z" || len(o.References) != 3 || o.References[1].Type != "FIX" {
		t.Errorf("OSV data: %+v", o)
	}
	if len(o.Affected) != 1 || o.Affected[0].Package.Name != "github.com/acme/fastjson" || o.Affected[0].Package.PURL == "" ||
		o.Affected[0].Ranges[0].Events[1].Fixed != "1.2.4" || o.Affected[0].Versions != nil {
		t.Errorf("affected: %+v", o.Affected)
	}
	if a := res.Annotation("affects"); a != "<1.2.4" {
		t.Errorf("affects %q; want <1.2.4", a)
	}
	if sev, _, _ := res.Worst(); sev != record.SeverityHigh {
		t.Errorf("ranked %v; want high", sev)
	}
	// --severity and --affects, given, win.
	res, err = entry(t, "GHSA-4v7x-pqxf-cx7m.json").Result(Target{Name: "acme/fastjson", Severity: "low", Affects: "<=1.2.3", Note: "ours"})
	if err != nil || res.Severity[0] != (record.VulnSeverity{Method: "cairn", Score: "low"}) || res.Annotation("affects") != "<=1.2.3" || res.Annotation("note") != "ours" {
		t.Errorf("given severity: %+v, %v", res, err)
	}
	if sev, _, _ := res.Worst(); sev != record.SeverityLow {
		t.Errorf("a given severity is not the one ranked: %v", sev)
	}
}

// A record that affects several packages keeps the entries of the one
// named, scored by that entry's own vector; naming none of them is
// refused with the names and the flag to choose.
func TestResultChoosesThePackage(t *testing.T) {
	e := entry(t, "GO-2026-4102.json")
	for name, want := range map[string]struct{ sev, affects string }{
		"github.com/acme/httpkit":  {"critical", "<0.9.2 || >=1.0.0, <1.0.5"},
		"github.com/acme/proxykit": {"medium", ">=0.3.0, <=0.4.1"},
	} {
		res, err := e.Result(Target{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if res.Severity[0].Score != want.sev || res.Annotation("affects") != want.affects || len(res.OSV.Affected) != 1 ||
			res.OSV.Affected[0].Package.Name != name || len(res.Severity) != 2 {
			t.Errorf("%s: %+v, affects %q; want %s, %s", name, res, res.Annotation("affects"), want.sev, want.affects)
		}
		if !slices.Equal(res.OSV.Aliases, []string{"CVE-2026-48810", "GHSA-m2q8-9f3h-wj6c"}) {
			t.Errorf("aliases %v", res.OSV.Aliases)
		}
	}
	_, err := e.Result(Target{Name: "acme/httpkit"})
	if err == nil || !strings.Contains(err.Error(), "github.com/acme/httpkit (Go), github.com/acme/proxykit (Go)") || !strings.Contains(err.Error(), "--osv-package") {
		t.Errorf("no package named: err = %v", err)
	}
}

// Malformed OSV is refused, saying what is wrong and in which file; a
// record with nothing to rank it by asks for a severity; a withdrawn one
// is not a vulnerability.
func TestMalformed(t *testing.T) {
	base := string(read(t, "GHSA-4v7x-pqxf-cx7m.json"))
	edit := func(old, new string) []byte {
		if !strings.Contains(base, old) {
			t.Fatalf("testdata has no %q", old)
		}
		return []byte(strings.Replace(base, old, new, 1))
	}
	bad := map[string][]byte{
		"not an OSV record":        []byte(`<html>`),
		"more than one JSON value": append([]byte(base), '{', '}'),
		`id ""`:                    edit(`"id": "GHSA-4v7x-pqxf-cx7m"`, `"id": ""`),
		"no modified time":         edit(`"modified": "2026-10-02T14:21:09Z",`, ``),
		"invalid metric value":     edit(`AV:N/AC:L`, `AV:Q/AC:L`),
		`is not a CVSS:4.0/… vector, as CVSS_V4 says`: edit(`"type": "CVSS_V3"`, `"type": "CVSS_V4"`),
		`CVSS v2 vector "AV:N/AC:Q`: edit(`"type": "CVSS_V3",
      "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"`, `"type": "CVSS_V2", "score": "AV:N/AC:Q/Au:N/C:P/I:P/A:P"`),
		"no introduced event":       edit(`"introduced": "0"`, `"limit": "0"`),
		`type "RANGE"`:              edit(`"type": "SEMVER"`, `"type": "RANGE"`),
		`url "ftp://example.com/x"`: edit(`https://github.com/acme/fastjson"`, `ftp://example.com/x"`),
		`modified "yesterday"`:      edit(`"modified": "2026-10-02T14:21:09Z"`, `"modified": "yesterday"`),
		"affected[0] (github.com/acme/fastjson)": edit(`{
              "fixed": "1.2.4"
            }`, `{"fixed": "1.2.4", "last_affected": "1.2.3"}`),
	}
	for want, data := range bad {
		_, err := Parse(data, "advisory.json")
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "advisory.json") {
			t.Errorf("%s: err = %v; want ErrMalformed naming advisory.json and %q", want, err, want)
		}
	}
	e, err := Parse(edit(`"type": "CVSS_V3"`, `"type": "Ubuntu"`), "x.json")
	if err != nil {
		t.Fatal(err)
	}
	e.DatabaseSpecific = nil
	if _, err := e.Result(Target{Name: "x"}); err == nil || !strings.Contains(err.Error(), "give its severity") {
		t.Errorf("nothing to rank by: err = %v", err)
	}
	e.DatabaseSpecific = &DatabaseSpecific{Severity: "MODERATE"}
	if res, err := e.Result(Target{Name: "x"}); err != nil || res.Severity[0].Score != "medium" {
		t.Errorf("GHSA's word: %+v, %v; want medium", res, err)
	}
	e.Withdrawn = "2026-10-03T00:00:00Z"
	if _, err := e.Result(Target{Name: "x"}); err == nil || !strings.Contains(err.Error(), "withdrawn") {
		t.Errorf("withdrawn: err = %v", err)
	}
}

// osv-scanner's report: each vulnerability of each package found is a
// result keeping that package's entries, ranked by its highest CVSS
// vector or, with none, its group's max_severity; the note says where it
// was found. A clean scan is no findings.
func TestParseReport(t *testing.T) {
	res, err := ParseReport(read(t, "osv-scanner.json"), "osv-scanner.json")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]record.VulnResult{}
	var ids []string
	for _, r := range res {
		got[r.ID] = r
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"GO-2026-4102", "GHSA-m2q8-9f3h-wj6c", "GHSA-r7c2-f5qm-9p4h"}) {
		t.Fatalf("results %v", ids)
	}
	for id, sev := range map[string]string{"GO-2026-4102": "critical", "GHSA-m2q8-9f3h-wj6c": "critical", "GHSA-r7c2-f5qm-9p4h": "medium"} {
		if got[id].Severity[0] != (record.VulnSeverity{Method: "cairn", Score: sev}) {
			t.Errorf("%s: severities %+v; want cairn %s", id, got[id].Severity, sev)
		}
	}
	g := got["GO-2026-4102"]
	if len(g.OSV.Affected) != 1 || g.OSV.Affected[0].Package.Name != "github.com/acme/httpkit" ||
		g.Annotation("note") != "found in github.com/acme/httpkit@1.0.3 (Go) in /tmp/cairn-certifier-41822/src/go.mod" {
		t.Errorf("GO-2026-4102: %+v, note %q", g.OSV.Affected, g.Annotation("note"))
	}
	if a := got["GHSA-r7c2-f5qm-9p4h"].Aliases(); !slices.Equal(a, []string{"CVE-2026-30117"}) {
		t.Errorf("aliases %v", a)
	}
	if res, err := ParseReport(read(t, "osv-scanner-clean.json"), "clean"); err != nil || len(res) != 0 {
		t.Errorf("clean scan: %v, %v", res, err)
	}
	if _, err := ParseReport([]byte(strings.Replace(string(read(t, "osv-scanner.json")), "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H", "CVSS:4.0/AV:N/AC:Z/AT:N/PR:N/UI:N/VC:H", 1)), "scan.json"); err == nil ||
		!strings.Contains(err.Error(), "scan.json: results[0].packages[0].vulnerabilities[0]") {
		t.Errorf("a broken vector in a report: err = %v; want the path to it", err)
	}
	if !IsReport(read(t, "osv-scanner.json")) || IsReport(read(t, "GO-2026-4102.json")) || !IsEntry(read(t, "GO-2026-4102.json")) || IsEntry(read(t, "osv-scanner.json")) {
		t.Error("IsReport/IsEntry confuse a report and a record")
	}
}

// What cairn writes of a result as OSV is a valid OSV record, made from
// an OSV record or not, and keeps what it was made from.
func TestExportIsValidOSV(t *testing.T) {
	issued := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var results []record.VulnResult
	r, err := entry(t, "GHSA-4v7x-pqxf-cx7m.json").Result(Target{Name: "acme/fastjson"})
	if err != nil {
		t.Fatal(err)
	}
	results = append(results, r)
	rep, err := ParseReport(read(t, "osv-scanner.json"), "osv-scanner.json")
	if err != nil {
		t.Fatal(err)
	}
	results = append(results, rep...)
	results = append(results, record.VulnResult{ID: "CVE-2026-1111", Severity: []record.VulnSeverity{{Method: "cairn", Score: "high"},
		{Method: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:P/I:P/A:P"}, {Method: record.MethodCVSSv3, Score: "CVSS:4.0/AV:N"}, {Method: record.MethodCVSSv4, Score: "garbage"}},
		Annotations: []map[string]string{{"note": "found by our audit"}}})
	for _, res := range results {
		e := Export(res, issued)
		b, err := json.MarshalIndent(e, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		osvtest.Valid(t, "the export of "+res.ID, b)
		back, err := Parse(b, "export")
		if err != nil {
			t.Fatalf("%s: cairn cannot read back its export: %v", res.ID, err)
		}
		if back.ID != res.ID || !slices.Equal(back.Aliases, res.Aliases()) {
			t.Errorf("%s: read back as %+v", res.ID, back)
		}
	}
	if e := Export(results[len(results)-1], issued); e.Modified != "2026-11-30T10:00:00Z" || e.Summary != "found by our audit" ||
		len(e.Severity) != 1 || e.Severity[0].Type != "CVSS_V2" {
		t.Errorf("a result not from OSV: %+v", e)
	}
}

// FuzzParse: whatever the input, Parse returns an error or an entry
// whose result (when it has one) a vulnerable record can carry.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"GHSA-4v7x-pqxf-cx7m.json", "GO-2026-4102.json"} {
		b, _ := os.ReadFile(filepath.Join("testdata", name))
		f.Add(b)
	}
	f.Add([]byte(`{"id": "X", "modified": "2026-01-01T00:00:00Z", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}]}`))
	f.Add([]byte(`{"results": [{"packages": [{"package": {"name": "github.com/acme/httpkit", "ecosystem": "Go"}, "groups": [{"ids": ["GO-1"], "max_severity": "7.5"}], "vulnerabilities": [{"id": "GO-1", "modified": "2026-01-01T00:00:00Z"}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if rs, err := ParseReport(data, "fuzz"); err == nil {
			for _, res := range rs {
				if err := res.CheckSeverity(); err != nil {
					t.Fatalf("report result refused by the severity rule: %v", err)
				}
				if err := res.OSV.Check(); err != nil {
					t.Fatalf("report result's OSV data refused by the record: %v", err)
				}
			}
		}
		e, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		res, err := e.Result(Target{Name: "github.com/acme/httpkit"})
		if err != nil {
			return
		}
		if err := res.CheckSeverity(); err != nil {
			t.Fatalf("result refused by the severity rule: %v", err)
		}
		if err := res.OSV.Check(); err != nil {
			t.Fatalf("result's OSV data refused by the record: %v", err)
		}
	})
}
