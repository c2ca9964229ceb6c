package author_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
)

// writePackage writes a package directory with two artifacts.
func writePackage(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"cairn-package.yaml": "name: " + name + "\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n  - kind: binary\n    platform: linux-amd64\n    file: bin.tar.gz\n",
		"src.tar.gz":         "source of " + name,
		"bin.tar.gz":         "binary of " + name,
	}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A publish's blobs (its artifacts and its descriptor) are in the store
// when Publish returns, whole, and nothing is left in the store's
// temporary directory.
func TestPublishStoresBlobs(t *testing.T) {
	w := indextest.New(t)
	pub, err := author.Publish(w.Ctx, w.Repo, writePackage(t, "acme/blobs"), w.Publisher)
	if err != nil {
		t.Fatal(err)
	}
	refs := []blob.Ref{pub.Ref}
	for _, a := range pub.Descriptor.Artifacts {
		refs = append(refs, a.Ref)
	}
	want := map[string]string{pub.Descriptor.Artifacts[0].SHA256: "source of acme/blobs", pub.Descriptor.Artifacts[1].SHA256: "binary of acme/blobs"}
	for _, ref := range refs {
		rc, err := w.Repo.Blobs.Open(w.Ctx, ref)
		if err != nil {
			t.Fatalf("blob %s is not in the store after the publish: %v", ref, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("blob %s: %v", ref, err)
		}
		if s, ok := want[ref.SHA256]; ok && string(data) != s {
			t.Fatalf("blob %s holds %q, want %q", ref, data, s)
		}
	}
	tmp, err := os.ReadDir(filepath.Join(blobRoot(t, w), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) != 0 {
		t.Fatalf("the publish left temporary files in the blob store: %v", tmp)
	}
}

// A publish whose blobs cannot be stored adds nothing to the index: main
// moves only once the artifacts and the descriptor are durably stored,
// though their writes overlap the building of the commit.
func TestPublishBlobsFailMainStays(t *testing.T) {
	w := indextest.New(t)
	before, err := w.Repo.Head(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	// Where the blobs go is a file: every blob's move into place fails
	// (its staging, in the store's temporary directory, does not).
	root := blobRoot(t, w)
	if err := os.RemoveAll(filepath.Join(root, "sha256")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sha256"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = author.Publish(w.Ctx, w.Repo, writePackage(t, "acme/lost"), w.Publisher)
	if err == nil {
		t.Fatal("a publish whose blobs were not stored succeeded")
	}
	if !strings.Contains(err.Error(), "blob") {
		t.Fatalf("the error does not say the blobs failed: %v", err)
	}
	after, err := w.Repo.Head(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("main moved from %s to %s though the publish's blobs were not stored", before, after)
	}
	if _, _, err := w.Repo.Descriptor(w.Ctx, "acme/lost", "1.0.0"); err == nil {
		t.Fatal("the index holds the version whose blobs were not stored")
	}
	tmp, _ := os.ReadDir(filepath.Join(root, "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("the failed publish left temporary files in the blob store: %v", tmp)
	}
}

// blobRoot is the directory of w's blob store.
func blobRoot(t *testing.T, w *indextest.World) string {
	t.Helper()
	var root string
	filepath.WalkDir(w.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "blobs" && root == "" {
			root = p
		}
		return nil
	})
	if root == "" {
		t.Fatalf("no blob store under %s", w.Dir)
	}
	return root
}
