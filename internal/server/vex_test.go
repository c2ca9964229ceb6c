package server

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	govex "github.com/openvex/go-vex/pkg/vex"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/record"
)

// GET /api/v1/vex/NS/NAME serves the package's OpenVEX document from
// the records at the verified head: valid against the official schema,
// parsed back by go-vex, the product named by the purl of the URL the
// server was asked at; ?version= narrows it; a package, a version or a
// vulnerability that is not there is 404, a bad name 400.
func TestVEX(t *testing.T) {
	f := newFixture(t)
	sec := signer(t)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: sec.Public(), Holder: "acme-security", Scopes: []string{"certify:vulnerable", "certify:fixed"}}, f.root); err != nil {
		t.Fatal(err)
	}
	publishAs(t, f, "acme/log", "1.0.0")
	publishAs(t, f, "acme/log", "2.0.0")
	publishAs(t, f, "acme/db", "1.0.0")
	certify := func(version string, kind record.Kind, terms author.VEXTerms) string {
		a, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/log", Version: version, Kind: kind, VulnID: "GHSA-1", Severity: "high", VEX: terms}, sec)
		if err != nil {
			t.Fatal(err)
		}
		return a.Records[0]
	}
	vuln1 := certify("1.0.0", record.Vulnerable, author.VEXTerms{})
	vuln2 := certify("2.0.0", record.Vulnerable, author.VEXTerms{})
	fix2 := certify("2.0.0", record.Fixed, author.VEXTerms{Status: "not_affected", Justification: "component_not_present"})

	resp, body := f.do("GET", "/api/v1/vex/acme/log", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/vex/acme/log: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	validateVEX(t, body)
	doc, err := govex.Parse(body)
	if err != nil {
		t.Fatalf("go-vex: %v\n%s", err, body)
	}
	want := map[string]struct {
		status  govex.Status
		records []string
	}{
		"pkg:generic/acme/log@1.0.0?repository_url=" + f.url: {govex.StatusAffected, []string{vuln1}},
		"pkg:generic/acme/log@2.0.0?repository_url=" + f.url: {govex.StatusNotAffected, []string{vuln2, fix2}},
	}
	if len(doc.Statements) != len(want) {
		t.Fatalf("%d statements, want %d:\n%s", len(doc.Statements), len(want), body)
	}
	for _, s := range doc.Statements {
		w, ok := want[s.Products[0].ID]
		if !ok || s.Status != w.status || s.Vulnerability.Name != "GHSA-1" {
			t.Errorf("statement about %s of %s: %s", s.Vulnerability.Name, s.Products[0].ID, s.Status)
			continue
		}
		for _, id := range w.records {
			if !strings.Contains(s.StatusNotes, id) {
				t.Errorf("%s: notes %q do not name record %s", s.Products[0].ID, s.StatusNotes, id)
			}
		}
	}
	// The same records, the same bytes.
	if _, again := f.do("GET", "/api/v1/vex/acme/log", nil, nil); !bytes.Equal(again, body) {
		t.Errorf("a second GET gives another document:\n%s\n%s", body, again)
	}

	resp, body = f.do("GET", "/api/v1/vex/acme/log?version=2.0.0", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("?version=2.0.0: %d %s", resp.StatusCode, body)
	}
	validateVEX(t, body)
	if doc, _ := govex.Parse(body); len(doc.Statements) != 1 || doc.Statements[0].Status != govex.StatusNotAffected || doc.Statements[0].Justification != govex.ComponentNotPresent {
		t.Fatalf("?version=2.0.0: %s", body)
	}
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/vex/acme/db", http.StatusNotFound, "no vulnerability is recorded"},
		{"/api/v1/vex/acme/log?version=9.9.9", http.StatusNotFound, "acme/log@9.9.9 is not published"},
		{"/api/v1/vex/acme/nothing", http.StatusNotFound, ""},
		{"/api/v1/vex/acme/BAD", http.StatusBadRequest, ""},
		// Attack: a version that names 1.0.0's directory to git ("1.0.0/",
		// "1.0.0\x00…") was answered with 1.0.0's statements under a
		// version never published; a NUL alone read a tree as a record (500).
		{"/api/v1/vex/acme/log?version=1.0.0/", http.StatusBadRequest, `version "1.0.0/"`},
		{"/api/v1/vex/acme/log?version=1.0.0%00anything", http.StatusBadRequest, "version"},
		{"/api/v1/vex/acme/log?version=%00", http.StatusBadRequest, "version"},
		{"/api/v1/vex/acme/log?version=1.0.0%0a", http.StatusBadRequest, "version"},
	} {
		resp, body := f.do("GET", c.path, nil, nil)
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("GET %s: %d %s, want %d saying %q", c.path, resp.StatusCode, body, c.code, c.want)
		}
	}
}

// validateVEX checks a document against the official OpenVEX schema,
// kept in internal/vex/testdata.
func validateVEX(t *testing.T, data []byte) {
	t.Helper()
	raw, err := os.ReadFile("../vex/testdata/openvex_json_schema.json")
	if err != nil {
		t.Fatal(err)
	}
	sch, _ := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("openvex.json", sch); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("openvex.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	if err := s.Validate(v); err != nil {
		t.Fatalf("the document fails the OpenVEX schema: %v\n%s", err, data)
	}
}
