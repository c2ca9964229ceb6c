package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/policy"
)

// publishX publishes acme/x at version as alice.
func (f *fixture) publishX(version string) {
	f.t.Helper()
	dir := f.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/x\nversion: "+version+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source "+version), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if _, err := author.Publish(f.ctx, f.repo, dir, f.alice); err != nil {
		f.t.Fatal(err)
	}
}

// packageDoc reads a package's document: decoded, its bytes and its
// ETag.
func (f *fixture) packageDoc(name string) (doc PackageDoc, body []byte, etag string) {
	f.t.Helper()
	resp, body := f.do("GET", "/api/v1/packages/"+name, nil, nil)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("GET %s: %s %s", name, resp.Status, body)
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		f.t.Fatalf("GET %s: %v\n%s", name, err, body)
	}
	return doc, body, resp.Header.Get("ETag")
}

// packageX reads acme/x's document: its body, its ETag's key and its
// versions.
func (f *fixture) packageX() (body []byte, key string, versions []string) {
	f.t.Helper()
	doc, body, etag := f.packageDoc("acme/x")
	for _, v := range doc.Versions {
		versions = append(versions, v.Version)
	}
	return body, strings.Trim(etag, `"`), versions
}

// A package's document, once rendered, is read from the server's
// document store on disk when its memory cache no longer holds it; a
// stored document of another key (the package changed) or whose bytes
// are not the ones its digest names is rendered again from git.
func TestPackageDocsKeptOnDisk(t *testing.T) {
	f := newFixture(t)
	forget := func() { f.srv.cache = newLightCache(4096, budgetDocs) } // what the memory cache held
	f.publishX("1.0.0")
	body, key, versions := f.packageX()
	if !slices.Equal(versions, []string{"1.0.0"}) {
		t.Fatalf("versions %v", versions)
	}
	if got := f.srv.docs.get("acme/x", key); string(got) != string(body) {
		t.Fatalf("the store holds %q for acme/x at %s, want the document served:\n%s", got, key, body)
	}

	// Read from disk: a document put there for the same key is served.
	planted := []byte(`{"name":"acme/x","source":"","versions":[]}` + "\n")
	f.srv.docs.put("acme/x", key, planted)
	forget()
	if got, _, _ := f.packageX(); string(got) != string(planted) {
		t.Fatalf("after the memory cache forgot it: served\n%s\nwant the stored document\n%s", got, planted)
	}
	// One larger than the buffer a read starts with is read whole.
	large := []byte(`{"name":"acme/x","source":"` + strings.Repeat("x", 100<<10) + `","versions":[]}` + "\n")
	f.srv.docs.put("acme/x", key, large)
	forget()
	if got, _, _ := f.packageX(); string(got) != string(large) {
		t.Fatalf("a stored document of %d bytes: served %d bytes, want it whole", len(large), len(got))
	}

	// A stored document cut short (its digest names other bytes) is
	// rendered again, and replaced.
	file := f.srv.docs.path("acme/x")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data[:len(data)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	forget()
	if got, _, _ := f.packageX(); string(got) != string(body) {
		t.Fatalf("a stored document cut short: served\n%s\nwant it rendered again\n%s", got, body)
	}
	if got := f.srv.docs.get("acme/x", key); string(got) != string(body) {
		t.Fatalf("a stored document cut short is not replaced: the store holds %q", got)
	}

	// The package changed: the document stored for its old trees is not
	// served, even once the memory cache forgot it.
	f.publishX("1.1.0")
	forget()
	body2, key2, versions := f.packageX()
	if key2 == key || !slices.Equal(versions, []string{"1.0.0", "1.1.0"}) {
		t.Fatalf("after 1.1.0: key %s (was %s), versions %v", key2, key, versions)
	}
	if got := f.srv.docs.get("acme/x", key2); string(got) != string(body2) {
		t.Fatalf("after 1.1.0: the store holds %q, want the new document", got)
	}
	if got := f.srv.docs.get("acme/x", key); got != nil {
		t.Fatalf("after 1.1.0: the store still holds the document of the old trees")
	}
}

// Each server has a store of its own, made empty when it starts (a
// document depends on the cairn that rendered it): two servers on one
// repository, as in a rolling upgrade, never read each other's, and a
// server removes the stores of the servers that ended, never a running
// one's.
func TestDocStoreOwnEachServer(t *testing.T) {
	f := newFixture(t)
	f.publishX("1.0.0")
	body, key, _ := f.packageX()
	planted := []byte(`{"name":"acme/x","source":"","versions":[]}` + "\n")
	f.srv.docs.put("acme/x", key, planted) // as an older cairn might have kept it
	first := f.srv.docs.dir

	start := func() *Server {
		t.Helper()
		s, err := New(f.repo, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Grace: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.docs.sweeping.Wait() // its sweep of the stores of servers that ended
		return s
	}
	second := start()
	ts := httptest.NewServer(second.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/api/v1/packages/acme/x")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != string(body) {
		t.Fatalf("a second server served\n%s\nwant the document rendered afresh\n%s", got, body)
	}
	if second.docs.dir == first || second.docs.get("acme/x", key) == nil {
		t.Fatalf("the second server's store (%s; the first's %s) does not hold what it rendered", second.docs.dir, first)
	}
	if _, err := os.Stat(first); err != nil {
		t.Fatalf("the store of the first server, still running, was removed: %v", err)
	}

	// The first ends: the next server removes its store, not the
	// second's.
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	start()
	if _, err := os.Stat(first); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the store of the server that ended is still there: %v", err)
	}
	if second.docs.get("acme/x", key) == nil {
		t.Fatal("the store of the second server, still running, was emptied")
	}
}

// A server with a policy keeps no store: its documents hold the
// verdicts of the policy it was started with.
func TestDocStoreNoneWithPolicy(t *testing.T) {
	pol, err := policy.Parse("policy.yaml", []byte("forbid:\n  - {name: deprecated, property: deprecated}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Policy = pol })
	f.publishX("1.0.0")
	body, _, versions := f.packageX()
	if !slices.Equal(versions, []string{"1.0.0"}) || !strings.Contains(string(body), `"policy":"sha256:`) {
		t.Fatalf("versions %v, document %s", versions, body)
	}
	if f.srv.docs != nil {
		t.Fatalf("a server with a policy has a document store, %s", f.srv.docs.dir)
	}
	if entries, err := os.ReadDir(filepath.Join(f.repo.LocalDir(), storesDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a server with a policy made %s: %v, %v", storesDir, entries, err)
	}
}

// A store that cannot be written (here its directory is a file) costs
// nothing but the disk reads: every document is rendered from git.
func TestDocStoreUnwritable(t *testing.T) {
	f := newFixture(t)
	f.publishX("1.0.0")
	dir := f.srv.docs.dir
	os.RemoveAll(dir)
	if err := os.WriteFile(dir, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		f.srv.cache = newLightCache(4096, budgetDocs)
		if _, _, versions := f.packageX(); !slices.Equal(versions, []string{"1.0.0"}) {
			t.Fatalf("versions %v", versions)
		}
	}
	if data, err := os.ReadFile(dir); err != nil || string(data) != "not a directory\n" {
		t.Fatalf("the file in the store's place: %q, %v", data, err)
	}
}

// Reads into pooled buffers hand out bytes of their own: a document or a
// small blob read before is the same after others are read (a buffer
// reused under it would change it), a document larger than the pooled
// buffer included.
func TestPooledReadsKeepTheirBytes(t *testing.T) {
	d := openDocStore(t.TempDir(), slog.New(slog.DiscardHandler))
	if d == nil {
		t.Fatal("no document store")
	}
	defer d.close()
	docs := map[string][]byte{}
	for i, size := range []int{10, 3000, 64 << 10, 200 << 10} {
		name := fmt.Sprintf("acme/p%d", i)
		docs[name] = bytes.Repeat([]byte{byte('a' + i)}, size)
		d.put(name, "k"+name, docs[name])
	}
	f := newFixture(t)
	blobs := map[string][]byte{}
	for i, size := range []int{1, 1000, smallBlob} {
		data := bytes.Repeat([]byte{byte('A' + i)}, size)
		ref := blob.DigestBytes(data)
		if err := f.repo.Blobs.Put(f.ctx, ref, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		blobs[ref.SHA256] = data
	}
	gotDocs, gotBlobs := map[string][]byte{}, map[string][]byte{}
	for range 4 {
		for name := range docs {
			if gotDocs[name] = d.get(name, "k"+name); gotDocs[name] == nil {
				t.Fatalf("%s: not read from the store", name)
			}
		}
		for hex := range blobs {
			data, ok := f.srv.readSmallBlob(hex)
			if !ok {
				t.Fatalf("blob %s: not read whole", hex)
			}
			gotBlobs[hex] = data
		}
	}
	for name, want := range docs {
		if !bytes.Equal(gotDocs[name], want) {
			t.Errorf("%s: %d bytes %.8q…, want %d bytes %.8q…", name, len(gotDocs[name]), gotDocs[name], len(want), want)
		}
	}
	for hex, want := range blobs {
		if !bytes.Equal(gotBlobs[hex], want) {
			t.Errorf("blob %s: %d bytes %.8q…, want %d bytes %.8q…", hex, len(gotBlobs[hex]), gotBlobs[hex], len(want), want)
		}
	}
	large := bytes.Repeat([]byte{'L'}, smallBlob+1)
	ref := blob.DigestBytes(large)
	if err := f.repo.Blobs.Put(f.ctx, ref, bytes.NewReader(large)); err != nil {
		t.Fatal(err)
	}
	if data, ok := f.srv.readSmallBlob(ref.SHA256); ok {
		t.Errorf("a blob of smallBlob+1 bytes read as small (%d bytes)", len(data))
	}
}
