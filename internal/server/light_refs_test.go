package server

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
)

// A package's light read follows main wherever git keeps it (a loose
// ref, packed-refs): the server asks git where main is, never reads
// git's files, and another process moving main (a push, a second cairn)
// is seen at the next request.
func TestLightReadFollowsMain(t *testing.T) {
	f := newFixture(t)
	other, err := index.Open(f.ctx, f.repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	publish := func(version string) {
		t.Helper()
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/x\nversion: "+version+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source "+version), 0o644)
		if _, err := author.Publish(f.ctx, other, dir, f.alice); err != nil {
			t.Fatal(err)
		}
	}
	versions := func() (string, []string) {
		t.Helper()
		doc, _, etag := f.packageDoc("acme/x")
		var vs []string
		for _, v := range doc.Versions {
			vs = append(vs, v.Version)
		}
		return etag, vs
	}
	if resp, _ := f.do("GET", "/api/v1/packages/acme/x", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("before any publish: %s, want 404", resp.Status)
	}
	publish("1.0.0")
	etag, vs := versions()
	if len(vs) != 1 {
		t.Fatalf("after 1.0.0: versions %v", vs)
	}
	if _, err := indextest.Git(t, f.repo, "pack-refs", "--all"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.do("GET", "/api/v1/packages/acme/x", nil, map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("refs packed, nothing changed: %s, want 304", resp.Status)
	}
	publish("1.1.0")
	if etag2, vs := versions(); len(vs) != 2 || etag2 == etag {
		t.Fatalf("after 1.1.0 published by another process: versions %v, ETag %s (was %s)", vs, etag2, etag)
	}
}
