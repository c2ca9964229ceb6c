package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/index/layout"
)

func publishAs(t *testing.T, f *fixture, name, version string) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: "+name+"\nversion: "+version+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source "+name+" "+version), 0o644)
	if _, err := author.Publish(f.ctx, f.repo, dir, f.alice); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) list(query string) (int, PackageList, string) {
	f.t.Helper()
	resp, body := f.do("GET", "/api/v1/packages"+query, nil, nil)
	var l PackageList
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			f.t.Fatalf("GET /api/v1/packages%s: %v\n%s", query, err, body)
		}
	}
	return resp.StatusCode, l, string(body)
}

func names(l PackageList) string {
	var out []string
	for _, p := range l.Packages {
		out = append(out, p.Name+"@"+p.Latest)
	}
	return strings.Join(out, " ")
}

// GET /api/v1/packages lists names and latest versions (semver order,
// not string order), by name, matched by substring or glob, in pages.
func TestPackageList(t *testing.T) {
	f := newFixture(t)
	if code, l, body := f.list(""); code != http.StatusOK || len(l.Packages) != 0 || !strings.Contains(body, `"packages":[]`) {
		t.Fatalf("empty index: %d %s", code, body)
	}
	publishAs(t, f, "acme/fastjson", "1.9.0")
	publishAs(t, f, "acme/fastjson", "1.10.0")
	publishAs(t, f, "acme/log", "2.0.1")
	publishAs(t, f, "acme/jsonpath", "0.1.0")
	publishAs(t, f, "acme/xml", "1.0.0")
	head, _ := f.repo.Head(f.ctx, index.MainRef)

	code, l, body := f.list("")
	if code != http.StatusOK || l.Head != head || names(l) != "acme/fastjson@1.10.0 acme/jsonpath@0.1.0 acme/log@2.0.1 acme/xml@1.0.0" || l.NextCursor != "" {
		t.Fatalf("all: %d %s", code, body)
	}
	if l.Packages[0].Versions != 2 || l.Packages[0].Upstream != "" {
		t.Fatalf("fastjson: %+v", l.Packages[0])
	}
	for q, want := range map[string]string{
		"JSON":         "acme/fastjson@1.10.0 acme/jsonpath@0.1.0",
		"acme/*l":      "acme/xml@1.0.0",
		"acme/[fl]*":   "acme/fastjson@1.10.0 acme/log@2.0.1",
		"*":            "", // a glob's * stops at '/'
		"nothing-here": "",
	} {
		if code, l, body := f.list("?q=" + url.QueryEscape(q)); code != http.StatusOK || names(l) != want || l.Query != q {
			t.Errorf("q=%s: %d %s, want %q", q, code, body, want)
		}
	}

	// Pages: the cursor goes on after the last name given, to the end.
	var got []string
	query := "?limit=3"
	for pages := 0; ; pages++ {
		code, l, body := f.list(query)
		if code != http.StatusOK || len(l.Packages) > 3 || pages > 2 {
			t.Fatalf("page %d: %d %s", pages, code, body)
		}
		got = append(got, names(l))
		if l.NextCursor == "" {
			break
		}
		query = "?limit=3&cursor=" + url.QueryEscape(l.NextCursor)
	}
	if strings.Join(got, " | ") != "acme/fastjson@1.10.0 acme/jsonpath@0.1.0 acme/log@2.0.1 | acme/xml@1.0.0" {
		t.Fatalf("pages: %q", got)
	}
	for _, bad := range []string{"?limit=0", "?limit=1001", "?limit=x", "?cursor=%21%21"} {
		if code, _, body := f.list(bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", bad, code, body)
		}
	}
}

// A package added behind the server's back, without the record that
// would publish it, is never listed: the listing is read at main's
// verified head, and a main that does not verify lists nothing (503).
func TestAttackPackageListUnverified(t *testing.T) {
	s := newServed(t, Options{})
	publishAs(t, s.fixture, "acme/x", "1.0.0")
	if code, l, body := s.list(""); code != http.StatusOK || names(l) != "acme/x@1.0.0" {
		t.Fatalf("before: %d %s", code, body)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := gitIn(t, ".", "clone", "-q", indextest.GitDir(t, s.repo), clone); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	dir := filepath.Join(clone, filepath.FromSlash(layout.VersionDir("acme/evil", "6.6.6")))
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, layout.DescriptorFile), []byte(`{"name":"acme/evil","version":"6.6.6"}`), 0o644)
	behindItsBack(t, clone, "add", ".")

	code, _, body := s.list("")
	if code != http.StatusServiceUnavailable || strings.Contains(body, `"latest"`) || !strings.HasPrefix(body, "index: main does not verify: rule well-formed broken") {
		t.Fatalf("after a package was added behind the server's back: %d %s, want 503 naming the rule, and no acme/evil", code, body)
	}
}

// The listing is read from the tree once per change of the heads it was
// read at: a second page and a search answer from it, a publish (main's
// verified head moves) lists again and shows the new package.
func TestPackageListCached(t *testing.T) {
	f := newFixture(t)
	publishAs(t, f, "acme/a", "1.0.0")
	publishAs(t, f, "acme/b", "1.0.0")
	publishAs(t, f, "acme/c", "1.0.0")
	lists := func() int {
		f.srv.listing.mu.Lock()
		defer f.srv.listing.mu.Unlock()
		return f.srv.listing.lists
	}
	code, l, body := f.list("?limit=2")
	if code != http.StatusOK || names(l) != "acme/a@1.0.0 acme/b@1.0.0" || l.NextCursor == "" {
		t.Fatalf("first page: %d %s", code, body)
	}
	if code, l, body = f.list("?limit=2&cursor=" + l.NextCursor); code != http.StatusOK || names(l) != "acme/c@1.0.0" {
		t.Fatalf("second page: %d %s", code, body)
	}
	if code, l, body = f.list("?q=b"); code != http.StatusOK || names(l) != "acme/b@1.0.0" {
		t.Fatalf("search: %d %s", code, body)
	}
	if n := lists(); n != 1 {
		t.Fatalf("three requests at one head listed the tree %d times, want once", n)
	}
	publishAs(t, f, "acme/d", "1.0.0")
	head, _ := f.repo.Head(f.ctx, index.MainRef)
	if code, l, body = f.list(""); code != http.StatusOK || l.Head != head || names(l) != "acme/a@1.0.0 acme/b@1.0.0 acme/c@1.0.0 acme/d@1.0.0" {
		t.Fatalf("after a publish: %d %s", code, body)
	}
	if n := lists(); n != 2 {
		t.Fatalf("after a publish the tree was listed %d times in all, want twice", n)
	}
}
