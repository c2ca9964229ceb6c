package author_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/gomod"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
)

func goModule(t *testing.T, path, version, greet string) *gomod.Module {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+path+"\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "greet.go"), []byte("package greet\n\nconst Greeting = \""+greet+"\"\n"), 0o644)
	m, err := gomod.Build(dir, version)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// A Go module version built elsewhere is published with its imported
// record in one commit; its files land in the blob store only as the
// bytes the descriptor pins; a later version keeps the first one's uuid.
func TestPublishBuiltImported(t *testing.T) {
	w := indextest.New(t)
	importer := indextest.NewSigner()
	w.Grant(importer, "platform", "publish:example.com/*")
	m := goModule(t, "example.com/greet", "v1.0.0", "hello")
	files, err := m.Files()
	if err != nil {
		t.Fatal(err)
	}
	imp := &record.ImportedPredicate{Source: "https://proxy.example.com", SumDB: &record.SumDBEvidence{
		Name: "sum.example.com", Key: "k", URL: "https://sum.example.com",
		Lines: []string{"example.com/greet v1.0.0 " + m.Descriptor.Go.Sum, "example.com/greet v1.0.0/go.mod " + m.Descriptor.Go.ModSum},
		Tree:  "go.sum database tree\n1\nx\n",
	}}
	pub, err := author.PublishBuilt(w.Ctx, w.Repo, author.Built{Descriptor: m.Descriptor, Files: files, Imported: imp}, importer)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.Records) != 2 {
		t.Fatalf("records %v, want the authored and the imported record", pub.Records)
	}
	c, err := w.Repo.Catalog(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	d, _, recs, err := c.Version("example.com/greet", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range recs {
		kinds[r.Kind] = true
		if p, ok := r.Record.Predicate.(record.ImportedPredicate); ok && (p.Source != imp.Source || p.SumDB.Lines[1] != imp.SumDB.Lines[1] || p.Issued.IsZero()) {
			t.Errorf("imported record says %+v", p)
		}
	}
	if !kinds["authored"] || !kinds["imported"] || d.Go == nil || d.Go.Sum != m.Descriptor.Go.Sum {
		t.Fatalf("index holds %v for %s", kinds, d.ID())
	}
	for _, a := range d.Artifacts {
		if ok, err := w.Repo.Blobs.Stat(w.Ctx, a.Ref); !ok || err != nil {
			t.Errorf("artifact %s is not stored: %v", a.File, err)
		}
	}

	// A file that is not the bytes its descriptor pins: nothing lands.
	m2 := goModule(t, "example.com/greet", "v1.1.0", "hello again")
	files2, err := m2.Files()
	if err != nil {
		t.Fatal(err)
	}
	other := goModule(t, "example.com/greet", "v1.1.0", "not this")
	files2["v1.1.0.zip"] = other.Zip
	_, err = author.PublishBuilt(w.Ctx, w.Repo, author.Built{Descriptor: m2.Descriptor, Files: files2}, importer)
	var me *blob.MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("another zip than the descriptor's: %v, want a blob mismatch", err)
	}
	files2["v1.1.0.zip"] = m2.Zip
	pub2, err := author.PublishBuilt(w.Ctx, w.Repo, author.Built{Descriptor: m2.Descriptor, Files: files2}, importer)
	if err != nil {
		t.Fatal(err)
	}
	if pub2.Descriptor.UUID != pub.Descriptor.UUID || len(pub2.Records) != 1 {
		t.Errorf("v1.1.0 has uuid %s and records %v; v1.0.0 has %s", pub2.Descriptor.UUID, pub2.Records, pub.Descriptor.UUID)
	}

	// A key whose publish scope does not cover the module path.
	m3 := goModule(t, "example.org/greet", "v1.0.0", "hello")
	files3, _ := m3.Files()
	if _, err := author.PublishBuilt(w.Ctx, w.Repo, author.Built{Descriptor: m3.Descriptor, Files: files3}, importer); err == nil {
		t.Fatal("published example.org/greet with publish:example.com/*")
	}
}
