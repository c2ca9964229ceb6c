package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/author"
)

// A Go module path is a package name of any number of elements: its
// package document is at /api/v1/packages/ + the whole path, beside the
// two-part names' unchanged URLs.
func TestPackageGetModulePath(t *testing.T) {
	f := newFixture(t)
	gopher := signer(t)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: gopher.Public(), Holder: "gophers", Scopes: []string{"publish:example.com/*"}}, f.root); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"example.com/greet", "example.com/greet/v2", "acme/x"} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: "+name+"\nversion: 2.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source of "+name), 0o644)
		s := gopher
		if name == "acme/x" {
			s = f.alice
		}
		if _, err := author.Publish(f.ctx, f.repo, dir, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"example.com/greet", "example.com/greet/v2", "acme/x"} {
		resp, body := f.do("GET", "/api/v1/packages/"+name, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s: %s", name, resp.Status, body)
		}
		var doc PackageDoc
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Name != name || len(doc.Versions) != 1 {
			t.Fatalf("%s: document of %s with %d versions", name, doc.Name, len(doc.Versions))
		}
		if resp, body := f.do("GET", "/api/v1/vex/"+name, nil, nil); resp.StatusCode != 404 {
			t.Fatalf("vex of %s without vulnerability records: %s %s", name, resp.Status, body)
		}
	}
	for path, want := range map[string]int{
		"/api/v1/packages/example.com/greet/v3":    404,
		"/api/v1/packages/example.com/Greet":       404,
		"/api/v1/packages/Example.com/greet":       400,
		"/api/v1/packages/example.com":             400,
		"/api/v1/packages/example.com/greet/1.0.0": 400,
	} {
		if resp, body := f.do("GET", path, nil, nil); resp.StatusCode != want {
			t.Errorf("GET %s: %s %s, want %d", path, resp.Status, body, want)
		}
	}
}
