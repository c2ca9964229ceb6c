//go:build s3

// The server over a repository whose blobs are on a real S3 (SeaweedFS):
// scripts/seaweedfs starts it and runs the tests tagged s3 of every
// package with CAIRN_TEST_S3_ENDPOINT set.
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gcblob "gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// A repository made with its blobs on S3 (index.InitWith, as cairn init
// --blobs s3://…): an upload lands in the bucket verified; a large
// blob's GET is redirected to a URL S3 signed, which serves its bytes;
// blob.HTTP follows the redirect and verifies, so an object changed in
// the bucket behind the server's back is caught; small blobs are served
// by the server itself.
func TestS3ServerRedirects(t *testing.T) {
	u := blobtest.NewS3Bucket(t, "cairn-server")
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, root: signer(t), alice: signer(t)}
	r, _, err := index.InitWith(ctx, filepath.Join(t.TempDir(), "repo"), []keys.Signer{f.root}, nil, 1, index.InitOptions{Blobs: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, ok := r.Blobs.(*blob.Bucket); !ok {
		t.Fatalf("the repository's store is a %T, want the bucket", r.Blobs)
	}
	f.repo = r
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: f.alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, f.root); err != nil {
		t.Fatal(err)
	}
	exe, _ := filepath.Abs(os.Args[0])
	if f.srv, err = New(r, Options{Exe: exe, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Grace: time.Hour, MaxUpload: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(func() { ts.Close(); f.srv.Close() })
	f.url = ts.URL

	big := make([]byte, 3<<20)
	rand.Read(big)
	small := []byte("a descriptor's bytes")
	var refs []blob.Ref
	for _, data := range [][]byte{big, small} {
		ref := blob.DigestBytes(data)
		resp, body := f.do("PUT", "/blobs/sha256/"+ref.SHA256, bytes.NewReader(data), signedHeaders(f.alice, ref, time.Now()))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %s %s", resp.Status, body)
		}
		if ok, err := r.Blobs.Stat(ctx, ref); !ok || err != nil {
			t.Fatalf("the upload is not in the bucket: %v", err)
		}
		refs = append(refs, ref)
	}
	bigRef, smallRef := refs[0], refs[1]

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(f.url + "/blobs/sha256/" + bigRef.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, os.Getenv("CAIRN_TEST_S3_ENDPOINT")+"/") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET: %s, Location %q, Cache-Control %q; want a 307 to S3, not cached", resp.Status, loc, resp.Header.Get("Cache-Control"))
	}
	resp, err = http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, big) {
		t.Fatalf("S3's answer to the signed URL: %s, %d bytes", resp.Status, len(got))
	}
	resp, body := f.do("GET", "/blobs/sha256/"+smallRef.SHA256, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, small) || resp.Request.URL.String() != f.url+"/blobs/sha256/"+smallRef.SHA256 {
		t.Fatalf("GET of a small blob: %s from %s", resp.Status, resp.Request.URL)
	}

	client := &blob.HTTP{URL: f.url}
	if got, err := blob.ReadAll(ctx, client, bigRef); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("blob.HTTP through the redirect: %v", err)
	}
	// The attack: the bucket's object rewritten behind the server's back,
	// its metadata kept.
	gb, err := gcblob.OpenBucket(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()
	bad := bytes.Clone(big)
	bad[len(bad)/2] ^= 1
	if err := gb.WriteAll(ctx, "sha256/"+bigRef.SHA256, bad, &gcblob.WriterOptions{Metadata: map[string]string{"sha256": bigRef.SHA256}}); err != nil {
		t.Fatal(err)
	}
	_, err = blob.ReadAll(ctx, client, bigRef)
	var me *blob.MismatchError
	if !errors.As(err, &me) || me.Want != bigRef {
		t.Fatalf("blob.HTTP read of a tampered object through the redirect: %v; want a *MismatchError", err)
	}
}
