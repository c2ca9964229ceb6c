package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == "hook" {
		// A test makes the hook slow with a file in the repository
		// (slowHookFile) that says for how long.
		if b, err := os.ReadFile(filepath.Join(os.Args[4], slowHookFile)); err == nil {
			d, _ := time.ParseDuration(strings.TrimSpace(string(b)))
			time.Sleep(d)
		}
		if err := PreReceive(context.Background(), os.Args[4], os.Stdin, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "cairn: error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The hooks the tests' pushes run are this test binary: under -race,
	// each would sleep a second at exit (GORACE's atexit_sleep_ms) for
	// reports of races still in flight; a race is still reported, and
	// fails the hook, when it happens. (A binary built without the race
	// detector ignores GORACE.)
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	if len(os.Args) == 3 && os.Args[1] == "paced-file" {
		servePacedFile(os.Args[2])
	}
	os.Exit(m.Run())
}

func signer(t testing.TB) keys.Signer {
	_, priv, _ := ed25519.GenerateKey(nil)
	return keys.NewSigner(priv)
}

type fixture struct {
	t            testing.TB
	ctx          context.Context
	repo         *index.Repo
	srv          *Server
	url          string
	root, alice  keys.Signer
	publishedDir string
}

// newFixture serves a new index (alice may publish acme/*), with the
// options the server's defaults and then each of opts set.
func newFixture(t testing.TB, opts ...func(*Options)) *fixture {
	f := &fixture{t: t, ctx: context.Background(), root: signer(t), alice: signer(t)}
	r, _, err := index.Init(f.ctx, filepath.Join(t.TempDir(), "repo"), []keys.Signer{f.root}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.repo = r
	if _, err := author.Grant(f.ctx, r, author.KeyGrant{Key: f.alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, f.root); err != nil {
		t.Fatal(err)
	}
	exe, _ := filepath.Abs(os.Args[0])
	o := Options{Exe: exe, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Grace: time.Hour, MaxUpload: 1 << 20}
	for _, set := range opts {
		set(&o)
	}
	f.srv, err = New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(func() { ts.Close(); f.srv.Close() })
	f.url = ts.URL
	return f
}

func (f *fixture) do(method, path string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func signedHeaders(s keys.Signer, ref blob.Ref, at time.Time) map[string]string {
	sig, _ := s.Sign(blob.UploadMessage(ref, at))
	return map[string]string{blob.HeaderKey: keys.ID(s.Public()), blob.HeaderTime: at.UTC().Format(time.RFC3339), blob.HeaderSignature: base64.StdEncoding.EncodeToString(sig)}
}

func TestBlobs(t *testing.T) {
	f := newFixture(t)
	data := bytes.Repeat([]byte("cairn "), 1000)
	ref := blob.DigestBytes(data)
	up := &blob.HTTP{URL: f.url, Signer: uploadKey{f.alice}}
	if err := up.Put(f.ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// An empty blob (a run that printed nothing) uploads too.
	empty := blob.DigestBytes(nil)
	if err := up.Put(f.ctx, empty, bytes.NewReader(nil)); err != nil {
		t.Fatalf("uploading an empty blob: %v", err)
	}
	if resp, got := f.do("GET", "/blobs/sha256/"+empty.SHA256, nil, nil); resp.StatusCode != 200 || len(got) != 0 {
		t.Fatalf("GET the empty blob: %s, %d bytes", resp.Status, len(got))
	}
	resp, got := f.do("GET", "/blobs/sha256/"+ref.SHA256, nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(got))
	}
	etag := resp.Header.Get("ETag")
	if etag != `"sha256:`+ref.SHA256+`"` || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("headers: ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := f.do("GET", "/blobs/sha256/"+ref.SHA256, nil, map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %s", resp.Status)
	}
	resp, got = f.do("GET", "/blobs/sha256/"+ref.SHA256, nil, map[string]string{"Range": "bytes=6-10"})
	if resp.StatusCode != http.StatusPartialContent || string(got) != "cairn" {
		t.Fatalf("Range: %s %q", resp.Status, got)
	}
	// Read again, from memory: the same answers.
	for i := 0; i < 2; i++ {
		resp, got = f.do("GET", "/blobs/sha256/"+ref.SHA256, nil, nil)
		if resp.StatusCode != 200 || !bytes.Equal(got, data) || resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") != immutable ||
			resp.Header.Get("Accept-Ranges") != "bytes" || resp.ContentLength != ref.Size || resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET again: %s, %d bytes, headers %v", resp.Status, len(got), resp.Header)
		}
	}
	if resp, got := f.do("GET", "/blobs/sha256/"+ref.SHA256, nil, map[string]string{"If-None-Match": `"sha256:` + empty.SHA256 + `"`}); resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("If-None-Match of another blob: %s, %d bytes", resp.Status, len(got))
	}
	if resp, got := f.do("HEAD", "/blobs/sha256/"+ref.SHA256, nil, nil); resp.StatusCode != 200 || resp.ContentLength != ref.Size || len(got) != 0 || resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") != immutable {
		t.Fatalf("HEAD: %s, length %d, %d bytes, headers %v", resp.Status, resp.ContentLength, len(got), resp.Header)
	}
	// Not found is not immutable: the blob may be uploaded later.
	if resp, _ := f.do("GET", "/blobs/sha256/"+strings.Repeat("0", 64), nil, nil); resp.StatusCode != 404 || resp.Header.Get("ETag") != "" || resp.Header.Get("Cache-Control") != "" {
		t.Fatalf("missing blob: %s, ETag %q, Cache-Control %q", resp.Status, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
	}
	// Each answer is counted under its route and code, and timed.
	_, metrics := f.do("GET", "/metrics", nil, nil)
	value := func(series string) float64 {
		for _, l := range strings.Split(string(metrics), "\n") {
			if v, ok := strings.CutPrefix(l, series+" "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return n
			}
		}
		return 0
	}
	var total float64
	for _, code := range []string{"200", "206", "304", "404"} {
		n := value(`cairn_http_requests_total{code="` + code + `",route="blob"}`)
		if n == 0 || (code == "206" || code == "304") && n != 1 {
			t.Errorf("metrics: %v blob reads answered %s:\n%s", n, code, grepLines(string(metrics), `route="blob"`))
		}
		total += n
	}
	if n := value(`cairn_http_request_duration_seconds_count{route="blob"}`); n < total {
		t.Errorf("metrics: %v blob reads timed, %v counted", n, total)
	}
	if n := value(`cairn_http_response_bytes_total{route="blob"}`); n < float64(4*ref.Size) {
		t.Errorf("metrics: %v bytes of blobs sent, want at least %d", n, 4*ref.Size)
	}
	if resp, _ := f.do("GET", "/blobs/sha256/..%2f..%2fcairn.json", nil, nil); resp.StatusCode != 400 && resp.StatusCode != 404 {
		t.Fatalf("a path for a digest: %s", resp.Status)
	}
	// A batch: what is stored, and what is not, in request order.
	missing := blob.DigestBytes([]byte("never uploaded"))
	local, _ := blob.NewFS(t.TempDir())
	lost, err := up.Batch(f.ctx, []blob.Ref{ref, missing}, local)
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) != 1 || lost[0] != missing {
		t.Fatalf("batch reported missing %v", lost)
	}
	if ok, _ := local.Stat(f.ctx, ref); !ok {
		t.Fatal("the batch did not deliver the stored blob")
	}
	var many strings.Builder
	for i := 0; i <= MaxBatch; i++ {
		fmt.Fprintf(&many, "sha256:%s 1\n", ref.SHA256)
	}
	if resp, _ := f.do("POST", "/blobs/batch", strings.NewReader(many.String()), nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("an oversized batch: %s", resp.Status)
	}
}

// TestUploadSkewIsTheServers: an upload's signed time is judged by the
// same window as pushed commits (cairn serve --max-clock-skew), not by a
// fixed one: a signature 30 s old is refused by a 2 s window.
func TestUploadSkewIsTheServers(t *testing.T) {
	t.Setenv(SkewEnv, "2s")
	f := newFixture(t)
	data := []byte("artifact bytes")
	ref := blob.DigestBytes(data)
	resp, body := f.do("PUT", "/blobs/sha256/"+ref.SHA256, bytes.NewReader(data), signedHeaders(f.alice, ref, time.Now().Add(-30*time.Second)))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "more than 2s from this server's clock") {
		t.Fatalf("an upload signed 30 s ago under a 2 s window: %s %q, want 403 naming the window", resp.Status, body)
	}
	if ok, _ := f.repo.Blobs.Stat(f.ctx, ref); ok {
		t.Fatal("the blob was stored")
	}
}

// Uploads are authorised by the uploader's own granted key, over the
// digest, size and time — and the bytes must be the blob.
func TestUploadAttacks(t *testing.T) {
	f := newFixture(t)
	data := []byte("artifact bytes")
	ref := blob.DigestBytes(data)
	other := blob.DigestBytes([]byte("other bytes"))
	now := time.Now()
	mallory := signer(t)
	cases := []struct {
		name   string
		header map[string]string
		body   []byte
		code   int
		want   string
	}{
		{"unsigned", nil, data, 403, "unsigned"},
		{"ungranted key", signedHeaders(mallory, ref, now), data, 403, "is not granted"},
		{"signature for another blob", signedHeaders(f.alice, other, now), data, 403, "does not verify"},
		{"old signature", signedHeaders(f.alice, ref, now.Add(-time.Hour)), data, 403, "from this server's clock"},
		{"root key without a publish grant", signedHeaders(f.root, ref, now), data, 403, "is not granted"},
		{"wrong bytes", signedHeaders(f.alice, ref, now), []byte("artifact bytez"), 422, "SECURITY ERROR"},
	}
	for _, c := range cases {
		resp, body := f.do("PUT", "/blobs/sha256/"+ref.SHA256, bytes.NewReader(c.body), c.header)
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %s %q, want %d %q", c.name, resp.Status, body, c.code, c.want)
		}
		if ok, _ := f.repo.Blobs.Stat(f.ctx, ref); ok {
			t.Fatalf("%s: the blob was stored", c.name)
		}
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	bigRef := blob.DigestBytes(big)
	if resp, _ := f.do("PUT", "/blobs/sha256/"+bigRef.SHA256, bytes.NewReader(big), signedHeaders(f.alice, bigRef, now)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("an upload over the limit: %s", resp.Status)
	}
}

// Uploads no record refers to are removed after the grace period; those
// a record refers to stay.
func TestCollectUploads(t *testing.T) {
	f := newFixture(t)
	up := &blob.HTTP{URL: f.url, Signer: uploadKey{f.alice}}
	orphan := []byte("never published")
	oref := blob.DigestBytes(orphan)
	if err := up.Put(f.ctx, oref, bytes.NewReader(orphan)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/x\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("published source"), 0o644)
	p, err := author.Publish(f.ctx, f.repo, dir, f.alice)
	if err != nil {
		t.Fatal(err)
	}
	src := p.Descriptor.Artifacts[0].Ref
	data, _ := blob.ReadAll(f.ctx, f.repo.Blobs, src)
	if err := up.Put(f.ctx, src, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if removed, err := f.srv.CollectUploads(f.ctx, time.Now()); err != nil || len(removed) != 0 {
		t.Fatalf("within the grace period: removed %v, %v", removed, err)
	}
	removed, err := f.srv.CollectUploads(f.ctx, time.Now().Add(2*time.Hour))
	if err != nil || len(removed) != 1 || removed[0] != oref.SHA256 {
		t.Fatalf("after the grace period: removed %v, %v; want only the orphan", removed, err)
	}
	if ok, _ := f.repo.Blobs.Stat(f.ctx, oref); ok {
		t.Fatal("the orphan is still stored")
	}
	if ok, _ := f.repo.Blobs.Stat(f.ctx, src); !ok {
		t.Fatal("a referenced blob was collected")
	}
}

func TestLightReads(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/x\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte("source"), 0o644)
	p, err := author.Publish(f.ctx, f.repo, dir, f.alice)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := f.do("GET", "/api/v1/packages/acme/x", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	var doc PackageDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Versions) != 1 || doc.Versions[0].Version != "1.0.0" || len(doc.Versions[0].Records) != 1 {
		t.Fatalf("document: %s", body)
	}
	d := doc.Versions[0].Descriptor
	if got := blob.DigestBytes(d.Content); got != p.Ref || d.SHA256 != p.Ref.SHA256 {
		t.Fatalf("descriptor content hashes to %v, want %v", got, p.Ref)
	}
	etag := resp.Header.Get("ETag")
	if resp, _ := f.do("GET", "/api/v1/packages/acme/x", nil, map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
		t.Fatalf("revalidation: %s", resp.Status)
	}
	// A new record about the package changes the ETag.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "cairn-package.yaml"), []byte("name: acme/x\nversion: 1.1.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(dir2, "src.tar.gz"), []byte("source 2"), 0o644)
	if _, err := author.Publish(f.ctx, f.repo, dir2, f.alice); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.do("GET", "/api/v1/packages/acme/x", nil, map[string]string{"If-None-Match": etag}); resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Fatalf("after a new version: %s, ETag %s", resp.Status, resp.Header.Get("ETag"))
	}
	if resp, _ := f.do("GET", "/api/v1/packages/acme/nope", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("unknown package: %s", resp.Status)
	}
	// Records by id.
	resp, body = f.do("GET", "/api/v1/records/"+p.Records[0], nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(doc.Versions[0].Records[0])) {
		t.Fatalf("record by id: %s %s", resp.Status, body)
	}
	if resp, _ := f.do("GET", "/api/v1/records/"+strings.Repeat("a", 64), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("unknown record: %s", resp.Status)
	}
	// Health and metrics.
	head, _ := f.repo.Head(f.ctx, index.MainRef)
	if resp, body := f.do("GET", "/healthz", nil, nil); resp.StatusCode != 200 || string(body) != "ok "+head+"\n" {
		t.Fatalf("healthz: %s %q", resp.Status, body)
	}
	if _, body := f.do("GET", "/metrics", nil, nil); !strings.Contains(string(body), `cairn_http_requests_total{code="200",route="package"}`) {
		t.Fatalf("metrics do not count package reads:\n%s", body)
	}
	// No checkpoint key: none served, and it says so.
	if resp, body := f.do("GET", "/api/v1/checkpoint", nil, nil); resp.StatusCode != 404 || !strings.Contains(string(body), "--checkpoint-key") {
		t.Fatalf("checkpoint without a key: %s %s", resp.Status, body)
	}
}

// A stored blob of at most smallBlob bytes is read whole from its file
// and kept in memory; a larger one is served from its file each time;
// both are served exactly, from the file and then again.
func TestSmallBlobsRead(t *testing.T) {
	f := newFixture(t)
	for _, size := range []int{0, 1, smallBlob - 1, smallBlob, smallBlob + 1, 3 * smallBlob} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + size)
		}
		ref := blob.DigestBytes(data)
		if err := f.repo.Blobs.Put(f.ctx, ref, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		for read := range 2 {
			resp, got := f.do("GET", "/blobs/sha256/"+ref.SHA256, nil, nil)
			if resp.StatusCode != 200 || !bytes.Equal(got, data) || resp.ContentLength != int64(size) {
				t.Fatalf("%d bytes, read %d: %s, %d bytes (length %d)", size, read, resp.Status, len(got), resp.ContentLength)
			}
			if held := f.srv.small.get(ref.SHA256); (held != nil) != (size <= smallBlob) || (held != nil && !bytes.Equal(held, data)) {
				t.Fatalf("%d bytes, read %d: held in memory %v (%d bytes), want %v", size, read, held != nil, len(held), size <= smallBlob)
			}
		}
	}
}
