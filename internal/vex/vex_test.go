package vex_test

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	govex "github.com/openvex/go-vex/pkg/vex"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/vex"
)

// schema is the official OpenVEX JSON schema (testdata/README.md), with
// formats (uri, date-time) asserted.
func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/openvex_json_schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("openvex_json_schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("openvex_json_schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate checks a document against the official schema.
func validate(t *testing.T, data []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the document is not JSON: %v\n%s", err, data)
	}
	if err := schema(t).Validate(v); err != nil {
		t.Fatalf("the document fails the OpenVEX schema: %v\n%s", err, data)
	}
}

// products reads the versions' records at the repository's head.
func products(t *testing.T, w *indextest.World, ids ...string) []vex.Product {
	t.Helper()
	head, err := w.Repo.Head(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Repo.Catalog(w.Ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	var out []vex.Product
	for _, id := range ids {
		name, version, _ := strings.Cut(id, "@")
		d, _, views, err := c.Version(name, version)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vex.Product{Name: name, Version: version, PURL: "pkg:generic/" + name + "@" + version, Descriptor: d, Records: vex.Records(views, "acme")})
	}
	return out
}

func statement(t *testing.T, doc *govex.VEX, purl, vuln string) *govex.Statement {
	t.Helper()
	for i := range doc.Statements {
		s := &doc.Statements[i]
		if string(s.Vulnerability.Name) == vuln && len(s.Products) == 1 && s.Products[0].ID == purl {
			return s
		}
	}
	t.Fatalf("no statement about %s of %s in %d statements", vuln, purl, len(doc.Statements))
	return nil
}

// Every OpenVEX status from real signed records in a real index: the
// document passes the official schema, go-vex parses it back to the
// statuses, justifications and records the records say, and the same
// records give the same bytes.
func TestDocumentFromRecords(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/db", Version: "2.0.0", Platforms: []string{"linux-amd64", "linux-arm64"}})
	certify := func(name, version string, kind record.Kind, id string, terms author.VEXTerms, artifacts ...string) string {
		c := author.Certification{Name: name, Version: version, Kind: kind, VulnID: id, Severity: "high", VEX: terms, Artifacts: artifacts}
		if kind == record.Fixed {
			c.Severity = ""
		}
		return w.Certify(c).Records[0]
	}
	affected := certify("acme/log", "1.0.0", record.Vulnerable, "GHSA-aff", author.VEXTerms{Action: "upgrade to 1.0.1"})
	bare := certify("acme/log", "1.0.0", record.Vulnerable, "GHSA-bare", author.VEXTerms{})
	fixedV := certify("acme/log", "1.0.0", record.Vulnerable, "GHSA-fix", author.VEXTerms{})
	fixed := certify("acme/log", "1.0.0", record.Fixed, "GHSA-fix", author.VEXTerms{})
	na := certify("acme/log", "1.0.0", record.Vulnerable, "CVE-2026-1", author.VEXTerms{})
	naFix := certify("acme/log", "1.0.0", record.Fixed, "CVE-2026-1", author.VEXTerms{Status: "not_affected", Justification: "vulnerable_code_not_in_execute_path", Impact: "never called"})
	inv := certify("acme/db", "2.0.0", record.Vulnerable, "GHSA-inv", author.VEXTerms{Status: "under_investigation"}, "linux-arm64")
	alone := certify("acme/db", "2.0.0", record.Fixed, "CVE-2026-2", author.VEXTerms{Status: "not_affected", Impact: "the parser is not built in"})

	doc, err := vex.Make(products(t, w, "acme/log@1.0.0", "acme/db@2.0.0"), vex.Options{Author: "acme", Tooling: "cairn test"})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc.JSON)
	parsed, err := govex.Parse(doc.JSON)
	if err != nil {
		t.Fatalf("go-vex does not parse what cairn wrote: %v\n%s", err, doc.JSON)
	}
	if parsed.ID != doc.ID || !strings.HasPrefix(doc.ID, vex.IDPrefix) || parsed.Author != "acme" || len(parsed.Statements) != 6 || doc.Statements != 6 {
		t.Fatalf("document %s by %s with %d statements:\n%s", parsed.ID, parsed.Author, len(parsed.Statements), doc.JSON)
	}
	log, db := "pkg:generic/acme/log@1.0.0", "pkg:generic/acme/db@2.0.0"
	for _, c := range []struct {
		purl, vuln                    string
		status                        govex.Status
		justification, impact, action string
		records                       []string
	}{
		{log, "GHSA-aff", govex.StatusAffected, "", "", "upgrade to 1.0.1", []string{affected}},
		{log, "GHSA-bare", govex.StatusAffected, "", "", govex.NoActionStatementMsg, []string{bare}},
		{log, "GHSA-fix", govex.StatusFixed, "", "", "", []string{fixedV, fixed}},
		{log, "CVE-2026-1", govex.StatusNotAffected, "vulnerable_code_not_in_execute_path", "", "", []string{na, naFix}},
		{db, "GHSA-inv", govex.StatusUnderInvestigation, "", "", "", []string{inv}},
		{db, "CVE-2026-2", govex.StatusNotAffected, "", "the parser is not built in", "", []string{alone}},
	} {
		s := statement(t, parsed, c.purl, c.vuln)
		if s.Status != c.status || string(s.Justification) != c.justification || s.ImpactStatement != c.impact || s.ActionStatement != c.action {
			t.Errorf("%s of %s: status %q justification %q impact %q action %q, want %q %q %q %q", c.vuln, c.purl, s.Status, s.Justification, s.ImpactStatement, s.ActionStatement, c.status, c.justification, c.impact, c.action)
		}
		for _, id := range c.records {
			if !strings.Contains(s.StatusNotes, id) {
				t.Errorf("%s of %s: status notes %q do not name record %s", c.vuln, c.purl, s.StatusNotes, id)
			}
		}
		if s.Timestamp == nil || s.Timestamp.IsZero() {
			t.Errorf("%s of %s: no timestamp", c.vuln, c.purl)
		}
	}
	// A not_affected record with both a justification and an impact
	// statement keeps the impact statement in the notes (the schema
	// takes one of the two).
	if s := statement(t, parsed, log, "CVE-2026-1"); !strings.Contains(s.StatusNotes, "impact: never called") {
		t.Errorf("status notes %q lose the impact statement", s.StatusNotes)
	}
	// The record narrowed to an artifact names it by sha-256.
	head, _ := w.Repo.Head(w.Ctx, index.MainRef)
	c, _ := w.Repo.Catalog(w.Ctx, head)
	d, _, _ := c.Descriptor("acme/db", "2.0.0")
	arm, _ := d.Artifact("linux-arm64")
	if s := statement(t, parsed, db, "GHSA-inv"); len(s.Products[0].Subcomponents) != 1 || s.Products[0].Subcomponents[0].Hashes[govex.SHA256] != govex.Hash(arm.SHA256) {
		t.Errorf("the investigation narrowed to linux-arm64 has subcomponents %+v, want its sha-256 %s", s.Products[0].Subcomponents, arm.SHA256)
	}
	// The same records give the same bytes.
	again, err := vex.Make(products(t, w, "acme/log@1.0.0", "acme/db@2.0.0"), vex.Options{Author: "acme", Tooling: "cairn test"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.JSON, doc.JSON) {
		t.Fatalf("the same records give another document:\n%s\n%s", doc.JSON, again.JSON)
	}

	// Revoking the answer makes the vulnerability affected again, in a
	// document with another id.
	if _, err := author.Revoke(w.Ctx, w.Repo, fixed, "wrong version", w.Security); err != nil {
		t.Fatal(err)
	}
	after, err := vex.Make(products(t, w, "acme/log@1.0.0"), vex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, after.JSON)
	p2, _ := govex.Parse(after.JSON)
	if s := statement(t, p2, log, "GHSA-fix"); s.Status != govex.StatusAffected || strings.Contains(s.StatusNotes, fixed) {
		t.Errorf("after its answer was revoked, GHSA-fix is %q (notes %q), want affected", s.Status, s.StatusNotes)
	}
	if after.ID == doc.ID {
		t.Error("another set of statements kept the document id")
	}
}

// A fixed record answers only its own repository's vulnerable records,
// as the policy reads them: an organisation's answer to an upstream's
// finding leaves it affected and states nothing of its own.
func TestAnswerOfAnotherRepository(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.Certify(author.Certification{Name: "acme/log", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "high"})
	fix := w.Certify(author.Certification{Name: "acme/log", Version: "1.0.0", Kind: record.Fixed, VulnID: "GHSA-1"}).Records[0]
	ps := products(t, w, "acme/log@1.0.0")
	for i := range ps[0].Records {
		if ps[0].Records[i].ID == fix {
			ps[0].Records[i].Repository = "corp" // as if the organisation's server signed it
		}
	}
	doc, err := vex.Make(ps, vex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc.JSON)
	parsed, _ := govex.Parse(doc.JSON)
	if len(parsed.Statements) != 1 || parsed.Statements[0].Status != govex.StatusAffected {
		t.Fatalf("statements %+v, want one: GHSA-1 affected", parsed.Statements)
	}
}

// Records that name no vulnerability make no document: OpenVEX needs a
// statement.
func TestNoStatements(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.Audit("acme/log", "1.0.0")
	if _, err := vex.Make(products(t, w, "acme/log@1.0.0"), vex.Options{}); !errors.Is(err, vex.ErrNoStatements) {
		t.Fatalf("err %v, want ErrNoStatements", err)
	}
}

// The schema test can fail: a document without a required action
// statement, or with both a justification and an impact statement, is
// refused by it.
func TestSchemaRefusesWhatOpenVEXForbids(t *testing.T) {
	s := schema(t)
	for _, bad := range []string{
		`{"status":"affected","vulnerability":{"name":"X"}}`,
		`{"status":"not_affected","vulnerability":{"name":"X"},"justification":"component_not_present","impact_statement":"y"}`,
		`{"status":"not_affected","vulnerability":{"name":"X"},"justification":"because"}`,
	} {
		doc := `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"urn:cairn:vex:sha256:00","author":"a","timestamp":"2026-11-30T00:00:00Z","version":1,"statements":[` + bad + `]}`
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err := s.Validate(v); err == nil {
			t.Errorf("the schema accepts %s", bad)
		}
	}
	if !slices.Equal(govex.Justifications(), record.Justifications) {
		t.Errorf("cairn's justifications %v are not go-vex's %v", record.Justifications, govex.Justifications())
	}
}

// A vulnerability certified from its OSV record (certify --osv) is named
// with its aliases and summary, and a fixed record naming its CVE alias
// answers it, as the policy reads it.
func TestOSVAliasAnswered(t *testing.T) {
	osvRecord, err := os.ReadFile("../osv/testdata/GHSA-4v7x-pqxf-cx7m.json")
	if err != nil {
		t.Fatal(err)
	}
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.2.3"})
	v := w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Vulnerable, OSV: osvRecord, OSVPackage: "github.com/acme/fastjson"}).Records[0]
	doc, err := vex.Make(products(t, w, "acme/fastjson@1.2.3"), vex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc.JSON)
	parsed, _ := govex.Parse(doc.JSON)
	s := statement(t, parsed, "pkg:generic/acme/fastjson@1.2.3", "GHSA-4v7x-pqxf-cx7m")
	if s.Status != govex.StatusAffected || !slices.Equal(s.Vulnerability.Aliases, []govex.VulnerabilityID{"CVE-2026-41234"}) || !strings.HasPrefix(s.Vulnerability.Description, "fastjson: unbounded recursion") {
		t.Fatalf("before its answer: %+v", s)
	}
	fix := w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Fixed, VulnID: "CVE-2026-41234", VEX: author.VEXTerms{Status: "not_affected", Impact: "Decode is never given untrusted input"}}).Records[0]
	doc, err = vex.Make(products(t, w, "acme/fastjson@1.2.3"), vex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc.JSON)
	parsed, _ = govex.Parse(doc.JSON)
	if len(parsed.Statements) != 1 {
		t.Fatalf("the alias's answer stands apart: %d statements\n%s", len(parsed.Statements), doc.JSON)
	}
	s = &parsed.Statements[0]
	if s.Status != govex.StatusNotAffected || s.ImpactStatement != "Decode is never given untrusted input" || !strings.Contains(s.StatusNotes, v) || !strings.Contains(s.StatusNotes, fix) {
		t.Fatalf("answered by its alias: %+v", s)
	}
}
