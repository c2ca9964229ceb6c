package certifier

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/osv"
	"cairn.dev/cairn/internal/osv/osvtest"
	"cairn.dev/cairn/internal/record"
)

// The certifier runs osv-scanner (here, what it prints, shaped as
// osv-scanner --format json writes it, and its exit status 1 when it
// finds something): every vulnerability it reports becomes a result of
// one vulnerable record, signed beside the scanned one, keeping its OSV
// data: aliases, the package's ranges, CVSS vectors and where it was
// found; the record names osv-scanner as its scanner.
func TestCertifyOSVScanner(t *testing.T) {
	report, err := filepath.Abs("../osv/testdata/osv-scanner.json")
	if err != nil {
		t.Fatal(err)
	}
	g := newRig(t)
	scan := indextest.NewSigner()
	g.Grant(scan, "acme-scanner", "certify:scanned", "certify:vulnerable")
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	g.run(g.certifier(Options{Command: "cat '" + report + "'; exit 1", Signer: scan, Property: record.Scanned, Findings: true}, ""))
	if got := g.records("acme/log", "1.0.0", record.Scanned); len(got) != 1 ||
		!strings.Contains(got[0].Record.Predicate.(record.CertificationPredicate).Note, "3 finding(s): GO-2026-4102, GHSA-m2q8-9f3h-wj6c, GHSA-r7c2-f5qm-9p4h") {
		t.Fatalf("scanned records %+v", got)
	}
	got := g.records("acme/log", "1.0.0", record.Vulnerable)
	if len(got) != 1 {
		t.Fatalf("vulnerable records %+v", got)
	}
	p := got[0].Record.Predicate.(record.VulnsPredicate)
	if p.Scanner.URI != osv.ScannerURI || len(p.Scanner.Result) != 3 {
		t.Fatalf("scanner %s, %d results", p.Scanner.URI, len(p.Scanner.Result))
	}
	r := p.Scanner.Result[0]
	if r.ID != "GO-2026-4102" || r.Severity[0] != (record.VulnSeverity{Method: "cairn", Score: "critical"}) || r.Severity[1].Method != record.MethodCVSSv4 ||
		!slices.Equal(r.Aliases(), []string{"CVE-2026-48810", "GHSA-m2q8-9f3h-wj6c"}) || r.OSV.Affected[0].Package.Name != "github.com/acme/httpkit" ||
		!strings.HasPrefix(r.Annotation("note"), "found in github.com/acme/httpkit@1.0.3 (Go)") {
		t.Errorf("first result %+v", r)
	}
	if _, ok := p.Scanner.Result[2].AnsweredBy([]string{"CVE-2026-30117"}); !ok || p.Scanner.Result[2].Severity[0].Score != "medium" {
		t.Errorf("third result %+v", p.Scanner.Result[2])
	}
}

// A report of more findings than one record holds (each keeping its OSV
// data) is signed as several vulnerable records in one commit: every
// finding lands, none is cut.
func TestCertifyManyOSVFindings(t *testing.T) {
	var vulns []json.RawMessage
	for i := range 60 {
		e := map[string]any{
			"id": fmt.Sprintf("GHSA-%04d-xxxx-xxxx", i), "modified": "2026-10-02T14:21:09Z",
			"aliases":  []string{fmt.Sprintf("CVE-2026-%05d", 10000+i)},
			"summary":  strings.Repeat("a long summary of what goes wrong ", 30),
			"severity": []map[string]string{{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}},
			"affected": []map[string]any{{"package": map[string]string{"ecosystem": "Go", "name": "github.com/acme/dep"},
				"ranges": []map[string]any{{"type": "SEMVER", "events": []map[string]string{{"introduced": "0"}, {"fixed": fmt.Sprintf("1.%d.0", i)}}}}}},
			"references": []map[string]string{{"type": "ADVISORY", "url": fmt.Sprintf("https://github.com/advisories/GHSA-%04d-xxxx-xxxx", i)},
				{"type": "WEB", "url": "https://example.com/a/rather/long/path/to/an/article/about/the/vulnerability"}},
		}
		b, _ := json.Marshal(e)
		osvtest.Valid(t, "generated vulnerability", b)
		vulns = append(vulns, b)
	}
	rep, _ := json.Marshal(map[string]any{"results": []any{map[string]any{
		"source":   map[string]string{"path": "/src/go.mod", "type": "lockfile"},
		"packages": []any{map[string]any{"package": map[string]string{"name": "github.com/acme/dep", "version": "1.0.0", "ecosystem": "Go"}, "vulnerabilities": vulns}},
	}}})
	file := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(file, rep, 0o644); err != nil {
		t.Fatal(err)
	}
	g := newRig(t)
	scan := indextest.NewSigner()
	g.Grant(scan, "acme-scanner", "certify:scanned", "certify:vulnerable")
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	g.run(g.certifier(Options{Command: "cat '" + file + "'; exit 1", Signer: scan, Property: record.Scanned, Findings: true}, ""))
	got := g.records("acme/log", "1.0.0", record.Vulnerable)
	var ids []string
	for _, rv := range got {
		if len(rv.Record.Raw) > record.MaxSize {
			t.Errorf("record %s is %d bytes", rv.ID, len(rv.Record.Raw))
		}
		for _, r := range rv.Record.Predicate.(record.VulnsPredicate).Scanner.Result {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	if len(got) < 2 || len(slices.Compact(ids)) != 60 || ids[0] != "GHSA-0000-xxxx-xxxx" || ids[59] != "GHSA-0059-xxxx-xxxx" {
		t.Fatalf("%d vulnerable records holding %d findings; want several holding all 60", len(got), len(ids))
	}
}
