package index_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "gocloud.dev/blob/fileblob"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// A repository made with its blobs on an object store records the URL in
// cairn.json, keeps no blobs/ directory, and opens the bucket again; a
// URL it cannot use (no driver for its scheme, no such directory) is said
// before anything is made.
func TestInitBlobsBucket(t *testing.T) {
	ctx := context.Background()
	root := newSigner()
	bucket := t.TempDir()
	dir := filepath.Join(t.TempDir(), "repo")
	r, _, err := index.InitWith(ctx, dir, []keys.Signer{root}, nil, 1, index.InitOptions{Blobs: "file://" + bucket})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := os.Stat(filepath.Join(dir, "blobs")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a repository with its blobs in a bucket has blobs/ (%v)", err)
	}
	r, err = index.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.Blobs.(*blob.Bucket); !ok || r.Config.Blobs != "file://"+bucket {
		t.Fatalf("opened: blobs %T, config %q", r.Blobs, r.Config.Blobs)
	}
	data := []byte("a blob")
	if err := r.Blobs.Put(ctx, blob.DigestBytes(data), strings.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bucket, "sha256", blob.DigestBytes(data).SHA256)); err != nil {
		t.Fatalf("the blob is not in the bucket: %v", err)
	}

	for _, tc := range []struct{ url, want string }{
		{"gs://acme-blobs", "this build has no driver for gs://"},
		{"file://" + filepath.Join(bucket, "missing"), "no such file or directory"},
		{"not a URL", "want a URL such as s3://BUCKET"},
	} {
		dir := filepath.Join(t.TempDir(), "repo")
		_, _, err := index.InitWith(ctx, dir, []keys.Signer{root}, nil, 1, index.InitOptions{Blobs: tc.url})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("init --blobs %s: %v, want %q", tc.url, err, tc.want)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("init --blobs %s left %s", tc.url, dir)
		}
	}
}
