package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// benchServer serves a repository with 20 packages and a 1 KiB blob,
// logging to a file as `cairn serve` logs to standard error.
func benchServer(b *testing.B) (url string, blobRef blob.Ref, packages []string, srv *Server) {
	b.Helper()
	ctx := b.Context()
	root, alice := keysFor(b), keysFor(b)
	r, _, err := index.Init(ctx, filepath.Join(b.TempDir(), "repo"), []keys.Signer{root}, nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, root); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		dir := b.TempDir()
		name := fmt.Sprintf("acme/pkg%d", i)
		os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: "+name+"\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte(name), 0o644)
		if _, err := author.Publish(ctx, r, dir, alice); err != nil {
			b.Fatal(err)
		}
		packages = append(packages, "/api/v1/packages/"+name)
	}
	data := make([]byte, 1024)
	rand.Read(data)
	blobRef = blob.DigestBytes(data)
	if err := r.Blobs.Put(ctx, blobRef, bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	srv, err = New(r, Options{Logger: slog.New(slog.NewJSONHandler(logf, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(func() { ts.Close(); srv.Close(); logf.Close() })
	return ts.URL, blobRef, packages, srv
}

func keysFor(b *testing.B) keys.Signer {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	return keys.NewSigner(priv)
}

func benchGets(b *testing.B, urls []string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			resp, err := client.Get(urls[i%len(urls)])
			i++
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("%s: %s", urls[i%len(urls)], resp.Status)
				return
			}
		}
	})
}

// BenchmarkBlob1K is one client GET of a stored 1 KiB blob.
func BenchmarkBlob1K(b *testing.B) {
	url, ref, _, _ := benchServer(b)
	benchGets(b, []string{url + "/blobs/sha256/" + ref.SHA256})
}

// BenchmarkPackage is one light read of a package (20 in turn).
func BenchmarkPackage(b *testing.B) {
	url, _, pkgs, _ := benchServer(b)
	var urls []string
	for _, p := range pkgs {
		urls = append(urls, url+p)
	}
	benchGets(b, urls)
}

// BenchmarkPackageRender is BenchmarkPackage with a document cache that
// holds one document, so that each read renders its package again from
// git, as a read of a package past the cache does (serve_sparse).
func BenchmarkPackageRender(b *testing.B) {
	url, _, pkgs, srv := benchServer(b)
	srv.cache.max = 1
	var urls []string
	for _, p := range pkgs {
		urls = append(urls, url+p)
	}
	benchGets(b, urls)
}
