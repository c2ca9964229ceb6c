//go:build s3

// The blob store against a real S3 implementation. scripts/seaweedfs
// builds SeaweedFS, starts `weed server -s3` on loopback and runs these
// with CAIRN_TEST_S3_ENDPOINT set (and the credentials it was given in
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); run it, not `go test -tags s3`
// by hand.
package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	gcblob "gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
)

func openS3(t *testing.T, u string) *blob.Bucket {
	t.Helper()
	s, err := blob.OpenBucket(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestS3Conformance(t *testing.T) {
	blobtest.Run(t, openS3(t, blobtest.NewS3Bucket(t, "cairn")))
}

// A blob larger than one part goes up as a multipart upload; when its
// last byte is wrong, the upload is aborted and no object appears (S3
// makes an object visible only when its upload completes).
func TestS3RefusedMultipartUploadLeavesNothing(t *testing.T) {
	u := blobtest.NewS3Bucket(t, "cairn")
	s := openS3(t, u)
	ctx := context.Background()
	data := make([]byte, 12<<20) // over the 5 MiB part size
	rand.Read(data)
	ref := blob.DigestBytes(data)
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 1
	if err := s.Put(ctx, ref, bytes.NewReader(bad)); !errors.Is(err, blob.ErrMismatch) {
		t.Fatalf("Put(wrong last byte) = %v, want a mismatch", err)
	}
	b, err := gcblob.OpenBucket(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	it := b.List(nil)
	if obj, err := it.Next(ctx); err != io.EOF {
		t.Fatalf("the bucket holds %+v (%v) after a refused upload", obj, err)
	}
	if err := s.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	got, err := blob.ReadAll(ctx, s, ref)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}

// An object changed in the bucket behind cairn's back is caught on read.
func TestS3TamperedObjectIsCaught(t *testing.T) {
	u := blobtest.NewS3Bucket(t, "cairn")
	s := openS3(t, u)
	ctx := context.Background()
	data := []byte("what the index names")
	ref := blob.DigestBytes(data)
	if err := s.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	b, err := gcblob.OpenBucket(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, s.Key(ref), []byte("WHAT the index names"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.ReadAll(ctx, s, ref); !errors.Is(err, blob.ErrMismatch) {
		t.Fatalf("reading a tampered object = %v, want a mismatch", err)
	}
}

// A signed URL serves the object to a plain HTTP client, for a while.
func TestS3SignedURL(t *testing.T) {
	s := openS3(t, blobtest.NewS3Bucket(t, "cairn"))
	ctx := context.Background()
	data := []byte("fetched by a redirected client")
	ref := blob.DigestBytes(data)
	if err := s.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	signed, err := s.SignedURL(ctx, ref, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET %s: %s %q", signed, resp.Status, got)
	}
	absent := blob.DigestBytes([]byte("absent"))
	if _, err := s.Open(ctx, absent); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(absent) = %v, want fs.ErrNotExist", err)
	}
}

// Wrong credentials get an error that says what to check.
func TestS3WrongCredentials(t *testing.T) {
	u := blobtest.NewS3Bucket(t, "cairn")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	s := openS3(t, u)
	data := []byte("x")
	err := s.Put(context.Background(), blob.DigestBytes(data), bytes.NewReader(data))
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Put with a wrong secret = %v, want an error naming the credentials", err)
	}
}
