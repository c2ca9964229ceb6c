package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// bucketFixture is a server whose repository keeps its blobs on a
// directory bucket (cairn init --blobs file:///DIR). With signed, the
// bucket signs URLs (fileblob's HMAC signer) for store, a real HTTP
// server that answers them as an object store's gateway would: the
// server then redirects blob reads there.
type bucketFixture struct {
	*fixture
	dir   string   // the bucket's directory
	store *url.URL // the signed URLs' server (signed only)
}

func newBucketFixture(t *testing.T, signed bool) *bucketFixture {
	t.Helper()
	f := &bucketFixture{fixture: &fixture{t: t, ctx: context.Background(), root: signer(t), alice: signer(t)}, dir: t.TempDir()}
	r, _, err := index.InitWith(f.ctx, filepath.Join(t.TempDir(), "repo"), []keys.Signer{f.root}, nil, 1, index.InitOptions{Blobs: "file://" + f.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.repo = r
	if _, err := author.Grant(f.ctx, r, author.KeyGrant{Key: f.alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, f.root); err != nil {
		t.Fatal(err)
	}
	if signed {
		var signer *fileblob.URLSignerHMAC
		var b *gcblob.Bucket
		gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, err := signer.KeyFromURL(r.Context(), r.URL)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			rd, err := b.NewReader(r.Context(), key, nil)
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			defer rd.Close()
			w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
			io.Copy(w, rd)
		}))
		t.Cleanup(gateway.Close)
		f.store, _ = url.Parse(gateway.URL + "/signed")
		signer = fileblob.NewURLSignerHMAC(f.store, []byte("a secret of the store's"))
		if b, err = fileblob.OpenBucket(f.dir, &fileblob.Options{URLSigner: signer}); err != nil {
			t.Fatal(err)
		}
		r.Blobs = blob.NewBucket(b, "file://"+f.dir)
	}
	exe, _ := filepath.Abs(os.Args[0])
	f.srv, err = New(r, Options{Exe: exe, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Grace: time.Hour, MaxUpload: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(func() { ts.Close(); f.srv.Close() })
	f.url = ts.URL
	return f
}

// upload PUTs data as alice would, and checks that it landed in the
// bucket.
func (f *bucketFixture) upload(data []byte) blob.Ref {
	f.t.Helper()
	ref := blob.DigestBytes(data)
	resp, body := f.do("PUT", "/blobs/sha256/"+ref.SHA256, bytes.NewReader(data), signedHeaders(f.alice, ref, time.Now()))
	if resp.StatusCode != http.StatusCreated {
		f.t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "sha256", ref.SHA256)); err != nil {
		f.t.Fatalf("the upload is not in the bucket: %v", err)
	}
	return ref
}

// tamper changes the bucket's object of ref behind the server's back:
// same size, one byte other.
func (f *bucketFixture) tamper(ref blob.Ref) {
	f.t.Helper()
	p := filepath.Join(f.dir, "sha256", ref.SHA256)
	data, err := os.ReadFile(p)
	if err != nil {
		f.t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// A bucket that signs no URLs: blobs pass through the server, verified.
// An upload lands in the bucket; GET (with or without ?size=), HEAD and
// a batch serve its bytes; blob.HTTP reads it verified. An object changed
// behind the server's back is refused: a small one with a 500 that says
// so, a large one cut before its last bytes, so that no client ever
// receives other bytes whole.
func TestBucketBlobsStreamed(t *testing.T) {
	f := newBucketFixture(t, false)
	big := bytes.Repeat([]byte("0123456789abcdef"), 25000) // 400,000 bytes: past the small blobs kept in memory, streamed in chunks
	bigSize := strconv.Itoa(len(big))
	small := []byte("a small blob, such as a descriptor")
	bigRef, smallRef := f.upload(big), f.upload(small)

	for _, path := range []string{"/blobs/sha256/" + bigRef.SHA256, "/blobs/sha256/" + bigRef.SHA256 + "?size=" + bigSize} {
		resp, body := f.do("GET", path, nil, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, big) || resp.Header.Get("Etag") != `"sha256:`+bigRef.SHA256+`"` {
			t.Fatalf("GET %s: %s, %d bytes, ETag %q", path, resp.Status, len(body), resp.Header.Get("Etag"))
		}
	}
	if resp, _ := f.do("HEAD", "/blobs/sha256/"+bigRef.SHA256, nil, nil); resp.StatusCode != http.StatusOK || resp.ContentLength != bigRef.Size {
		t.Fatalf("HEAD: %s, length %d", resp.Status, resp.ContentLength)
	}
	if resp, _ := f.do("GET", "/blobs/sha256/"+bigRef.SHA256+"?size=399999", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET with the wrong size: %s, want 404", resp.Status)
	}
	if resp, _ := f.do("GET", "/blobs/sha256/"+bigRef.SHA256, nil, map[string]string{"If-None-Match": `"sha256:` + bigRef.SHA256 + `"`}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("GET If-None-Match: %s, want 304", resp.Status)
	}
	client := &blob.HTTP{URL: f.url}
	for _, ref := range []blob.Ref{bigRef, smallRef} {
		if got, err := blob.ReadAll(f.ctx, client, ref); err != nil || blob.DigestBytes(got) != ref {
			t.Fatalf("blob.HTTP read of %s: %v", ref, err)
		}
	}
	resp, body := f.do("POST", "/blobs/batch", strings.NewReader("sha256:"+bigRef.SHA256+" "+bigSize+"\nsha256:"+smallRef.SHA256+" "+strconv.Itoa(len(small))+"\n"), nil)
	want := "sha256:" + bigRef.SHA256 + " " + bigSize + "\n" + string(big) + "sha256:" + smallRef.SHA256 + " " + strconv.Itoa(len(small)) + "\n" + string(small)
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("batch: %s, %d bytes, want %d", resp.Status, len(body), len(want))
	}

	// The attack: the bucket's objects changed behind the server's back.
	f.tamper(bigRef)
	// Cut before its headers leave (the whole blob in one held-back
	// chunk) or short of its Content-Length: never whole.
	if resp, err := http.Get(f.url + "/blobs/sha256/" + bigRef.SHA256); err == nil {
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || len(got) >= len(big) {
			t.Fatalf("GET of a tampered object: %d of %d bytes, err %v; want the response cut short", len(got), len(big), err)
		}
	}
	if _, err := blob.ReadAll(f.ctx, client, bigRef); err == nil {
		t.Fatal("blob.HTTP read a tampered object without an error")
	}
	resp, body = f.do("POST", "/blobs/batch", strings.NewReader("sha256:"+bigRef.SHA256+" "+bigSize+"\n"), nil)
	if hdr := "sha256:" + bigRef.SHA256 + " " + bigSize + "\n"; len(body) >= len(hdr)+len(big) {
		t.Fatalf("batch of a tampered object: %d bytes, the whole of it sent", len(body))
	}
	small2 := []byte("another small blob, never read before")
	small2Ref := f.upload(small2)
	f.tamper(small2Ref)
	resp, body = f.do("GET", "/blobs/sha256/"+small2Ref.SHA256, nil, nil)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "not served: the store's copy is not the blob") || !strings.Contains(string(body), "SECURITY ERROR") || bytes.Contains(body, small2[:10]) {
		t.Fatalf("GET of a tampered small object: %s %q", resp.Status, body)
	}

	// An upload of other bytes leaves nothing in the bucket.
	other := blob.DigestBytes([]byte("what the uploader claims"))
	resp, _ = f.do("PUT", "/blobs/sha256/"+other.SHA256, bytes.NewReader([]byte("what the uploader sends!")), signedHeaders(f.alice, other, time.Now()))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("PUT of other bytes: %s, want 422", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "sha256", other.SHA256)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused upload is in the bucket: %v", err)
	}

	// An upload no record names is removed from the bucket after the grace.
	removed, err := f.srv.CollectUploads(f.ctx, time.Now().Add(2*time.Hour))
	if err != nil || len(removed) != 3 {
		t.Fatalf("CollectUploads: %v, %v; want the 3 uploads", removed, err)
	}
	if ok, err := f.repo.Blobs.Stat(f.ctx, bigRef); ok || err != nil {
		t.Fatalf("a collected upload is still in the bucket (%v)", err)
	}
}

// A bucket that signs URLs: a large blob's GET is redirected there, not
// cached, and the target serves its bytes; blob.HTTP follows and
// verifies, so an object changed behind the server's back is caught by
// the client. Small blobs and HEAD are still answered by the server.
func TestBucketBlobsRedirected(t *testing.T) {
	f := newBucketFixture(t, true)
	big := bytes.Repeat([]byte("fedcba9876543210"), 4000)
	small := []byte("a descriptor")
	bigRef, smallRef := f.upload(big), f.upload(small)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(f.url + "/blobs/sha256/" + bigRef.SHA256 + "?size=64000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, f.store.String()+"?") || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Etag") != "" {
		t.Fatalf("GET: %s, Location %q, Cache-Control %q, ETag %q; want a 307 to the store, not cached", resp.Status, loc, resp.Header.Get("Cache-Control"), resp.Header.Get("Etag"))
	}
	resp, err = http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, big) {
		t.Fatalf("the redirect's target: %s, %d bytes", resp.Status, len(got))
	}
	// The signature is the store's: a URL changed to name another object
	// is refused there.
	forged := strings.Replace(loc, bigRef.SHA256, smallRef.SHA256, 1)
	if resp, err := http.Get(forged); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a forged signed URL: %v %v, want 403", resp.Status, err)
	}

	resp, body := f.do("GET", "/blobs/sha256/"+smallRef.SHA256, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, small) || resp.Request.URL.Host != strings.TrimPrefix(f.url, "http://") {
		t.Fatalf("GET of a small blob: %s from %s", resp.Status, resp.Request.URL)
	}
	if resp, _ := f.do("HEAD", "/blobs/sha256/"+bigRef.SHA256, nil, nil); resp.StatusCode != http.StatusOK || resp.ContentLength != bigRef.Size {
		t.Fatalf("HEAD: %s, length %d", resp.Status, resp.ContentLength)
	}

	client := &blob.HTTP{URL: f.url}
	if got, err := blob.ReadAll(f.ctx, client, bigRef); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("blob.HTTP through the redirect: %v", err)
	}
	f.tamper(bigRef)
	_, err = blob.ReadAll(f.ctx, client, bigRef)
	var me *blob.MismatchError
	if !errors.As(err, &me) || me.Want != bigRef {
		t.Fatalf("blob.HTTP read of a tampered object through the redirect: %v; want a *MismatchError", err)
	}
}

// The GOPROXY adapter over a bucket: a module published into it
// (author.PublishBuilt, as cairn publish --go) is served, its zip checked
// once (h1:, module@version) from a verified copy, then streamed through
// verification; a zip changed in the bucket behind the server's back is
// never served whole.
func TestBucketGoProxy(t *testing.T) {
	f := newBucketFixture(t, false)
	gopher := signer(t)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: gopher.Public(), Holder: "gopher", Scopes: []string{"publish:example.com/*"}}, f.root); err != nil {
		t.Fatal(err)
	}
	g := &goFixture{fixture: f.fixture, gopher: gopher}
	d := g.publish("example.com/greet", "1.0.0", strings.Repeat("hello ", 20000)) // a zip past the small blobs
	zipRef := d.Artifacts[0].Ref
	if _, err := os.Stat(filepath.Join(f.dir, "sha256", zipRef.SHA256)); err != nil {
		t.Fatalf("the published zip is not in the bucket: %v", err)
	}
	if resp, body := f.do("GET", "/go/example.com/greet/@v/v1.0.0.mod", nil, nil); resp.StatusCode != http.StatusOK || string(body) != "module example.com/greet\n\ngo 1.21\n" {
		t.Fatalf(".mod: %s %q", resp.Status, body)
	}
	for range 2 { // checked, then streamed
		resp, body := f.do("GET", "/go/example.com/greet/@v/v1.0.0.zip", nil, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" || blob.DigestBytes(body) != zipRef {
			t.Fatalf(".zip: %s %s, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
	}
	f.tamper(zipRef)
	resp, err := http.Get(f.url + "/go/example.com/greet/@v/v1.0.0.zip")
	if err != nil {
		return // cut before its headers left: refused
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && err == nil && int64(len(got)) == zipRef.Size {
		t.Fatalf(".zip of a tampered object: served whole (%d bytes)", len(got))
	}
}

// The hook that checks a push's blobs runs under git http-backend, which
// takes little of the server's environment: with the blobs on an object
// store it takes the store's credentials too (scripts/seaweedfs's CLI
// session pushes through it to S3), and with files it takes none.
func TestBucketGitEnvCarriesStoreCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "cairn-test-key")
	t.Setenv("AZURE_STORAGE_ACCOUNT", "cairn")
	r := httptest.NewRequest("POST", "/index.git/git-receive-pack", nil)
	has := func(env []string, kv string) bool {
		for _, e := range env {
			if e == kv {
				return true
			}
		}
		return false
	}
	for _, f := range []*fixture{newBucketFixture(t, false).fixture, newFixture(t)} {
		env := (&gitProcess{inherit: gitInheritEnv, inheritPrefixes: f.srv.gitInheritPrefixes()}).env(r)
		want := f.srv.fsBlobs == nil
		if has(env, "AWS_ACCESS_KEY_ID=cairn-test-key") != want || has(env, "AZURE_STORAGE_ACCOUNT=cairn") != want {
			t.Errorf("blobs in %v: the git environment %q; want the store's credentials: %v", f.repo.Blobs, env, want)
		}
	}
}

// BenchmarkBlob1MStore is a GET of a 1 MiB blob from the filesystem
// store (sendfile, unverified) and from a directory bucket that signs no
// URLs (read and verified on the way through, copyVerified), with the
// floor of the latter: sha256 of the same bytes.
func BenchmarkBlob1MStore(b *testing.B) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	ref := blob.DigestBytes(data)
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(ref.Size)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				blob.DigestBytes(data)
			}
		})
	})
	for _, store := range []string{"fs", "bucket"} {
		b.Run(store, func(b *testing.B) {
			ctx := b.Context()
			root := keysFor(b)
			o := index.InitOptions{}
			if store == "bucket" {
				o.Blobs = "file://" + b.TempDir()
			}
			r, _, err := index.InitWith(ctx, filepath.Join(b.TempDir(), "repo"), []keys.Signer{root}, nil, 1, o)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			if err := r.Blobs.Put(ctx, ref, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			srv, err := New(r, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(srv.Handler())
			b.Cleanup(func() { ts.Close(); srv.Close() })
			b.SetBytes(ref.Size)
			benchGets(b, []string{ts.URL + "/blobs/sha256/" + ref.SHA256})
		})
	}
}

// With NoBlobRedirect (cairn serve --blob-redirect=false), a store that
// signs URLs only this server may reach (an endpoint on localhost) is not
// where clients are sent: a large blob's bytes come from the server,
// verified on their way, and an object changed in the store is never
// served whole.
func TestBucketBlobsNotRedirected(t *testing.T) {
	f := newBucketFixture(t, true)
	f.srv.opts.NoBlobRedirect = true
	big := bytes.Repeat([]byte("fedcba9876543210"), 4000)
	bigRef := f.upload(big)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(f.url + "/blobs/sha256/" + bigRef.SHA256 + "?size=64000")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !bytes.Equal(got, big) {
		t.Fatalf("GET: %s, Location %q, %d bytes; want the blob's bytes from the server itself", resp.Status, resp.Header.Get("Location"), len(got))
	}
	f.tamper(bigRef)
	resp, err = noFollow.Get(f.url + "/blobs/sha256/" + bigRef.SHA256 + "?size=64000")
	if err == nil {
		got, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil && int64(len(got)) == bigRef.Size {
		t.Fatalf("a tampered object was served whole through the server: %s", resp.Status)
	}
}
