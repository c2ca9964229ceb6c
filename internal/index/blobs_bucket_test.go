package index_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
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
		{"file://" + filepath.Join(bucket, "missing"), "no directory " + filepath.Join(bucket, "missing") + ": create it, or add ?create_dir=true to the URL"},
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

// A git clone of an index whose local configuration names a blob store
// (written by hand before its first use, without an introduction) opens
// that store, and still pins the introduction its history starts with.
func TestCloneNamesBlobsBucket(t *testing.T) {
	ctx := context.Background()
	bucket := t.TempDir()
	dir := filepath.Join(t.TempDir(), "repo")
	r, intro, err := index.InitWith(ctx, dir, []keys.Signer{newSigner()}, nil, 1, index.InitOptions{Blobs: "file://" + bucket})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a blob the clone reads from the bucket")
	ref := blob.DigestBytes(data)
	if err := r.Blobs.Put(ctx, ref, strings.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
	r.Close()
	clone := filepath.Join(t.TempDir(), "clone.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", filepath.Join(dir, "index.git"), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	os.MkdirAll(filepath.Join(clone, "cairn"), 0o755)
	if err := os.WriteFile(filepath.Join(clone, "cairn", "cairn.json"), []byte(`{"blobs": "file://`+bucket+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := index.Open(ctx, clone)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Config.Introduction != intro.ID {
		t.Fatalf("the clone pinned %q, want the introduction %s", c.Config.Introduction, intro.ID)
	}
	if got, err := blob.ReadAll(ctx, c.Blobs, ref); err != nil || string(got) != string(data) {
		t.Fatalf("the clone's store (%T): %q, %v", c.Blobs, got, err)
	}
	again, err := index.Open(ctx, clone)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Config.Introduction != intro.ID || again.Config.Blobs != "file://"+bucket {
		t.Fatalf("the clone's configuration, opened again: %+v", again.Config)
	}
}
