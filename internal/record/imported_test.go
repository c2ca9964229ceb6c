package record

import (
	"strings"
	"testing"
	"time"
)

func importedSample(now time.Time) ImportedPredicate {
	return ImportedPredicate{
		Source: "https://proxy.golang.org",
		SumDB: &SumDBEvidence{
			Name: "sum.golang.org", Key: "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", URL: "https://sum.golang.org",
			Lines: []string{
				"example.com/greet v1.0.0 h1:2oTVHHbGcgzU2U4RGxKHFGH+k7KIyRUcJuTVudkdyZ8=",
				"example.com/greet v1.0.0/go.mod h1:hOfk/ftEFgmTBbWv3RQuZ2IFVT07wQOb68fO8zqIs7M=",
			},
			Record: 42,
			Tree:   "go.sum database tree\n43\nQ4pWZcHBTtsI+Bj3hsmMJKAdlQ6cJXCZ9fuW7bGpeLI=\n\n— sum.golang.org Az3grnmrIPbf\n",
		},
		Issued: now,
	}
}

// TestImportedPredicate: an imported record's evidence is checked for
// form when it is parsed; a publish scope covers it, as it does the
// authored record it goes with.
func TestImportedPredicate(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	if !Imported.IsCertification() || !Imported.IsPackage() {
		t.Fatal("imported is a record about a package version")
	}
	for _, tc := range []struct {
		name string
		edit func(p *ImportedPredicate)
		want string
	}{
		{"a file source", func(p *ImportedPredicate) { p.Source = "file:///tmp/proxy" }, "want the http:// or https:// URL"},
		{"no lines", func(p *ImportedPredicate) { p.SumDB.Lines = nil }, "want its go.sum lines"},
		{"a line that is not go.sum's", func(p *ImportedPredicate) { p.SumDB.Lines[0] = "example.com/greet v1.0.0" }, "is not a go.sum line"},
		{"no tree", func(p *ImportedPredicate) { p.SumDB.Tree = "" }, "want its signed tree note"},
		{"no name", func(p *ImportedPredicate) { p.SumDB.Name = "" }, "needs a name"},
	} {
		p := importedSample(now)
		db := *p.SumDB
		db.Lines = append([]string{}, db.Lines...)
		p.SumDB = &db
		tc.edit(&p)
		payload, err := Build(Imported, []Subject{desc}, p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(envelope(PayloadType, payload, 1))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	sc, err := ParseScope("publish:example.com/*")
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Allows(Imported, "example.com/greet") {
		t.Error("publish:example.com/* does not allow an imported record on example.com/greet")
	}
	if sc, _ := ParseScope("certify:audited"); sc.Allows(Imported, "example.com/greet") {
		t.Error("certify:audited allows an imported record")
	}
	if _, err := ParseScope("certify:imported:example.com/*"); err != nil {
		t.Errorf("certify:imported: %v", err)
	}
}
