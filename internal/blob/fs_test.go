package blob_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
)

func TestFS(t *testing.T) {
	s, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Run(t, s)
}

// A blob corrupted on disk after it was stored is caught on read.
func TestFSCorruptionCaughtOnRead(t *testing.T) {
	dir := t.TempDir()
	s, _ := blob.NewFS(dir)
	data := []byte("the original bytes")
	ref := blob.DigestBytes(data)
	ctx := context.Background()
	if _, err := blob.PutFile(ctx, s, writeFile(t, data)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sha256", ref.SHA256[:2], ref.SHA256)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("the tampered bytes"), 0o644)
	if _, err := blob.ReadAll(ctx, s, ref); !errors.Is(err, blob.ErrMismatch) {
		t.Fatalf("read of tampered blob = %v, want ErrMismatch", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(entries) != 0 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func writeFile(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, data, 0o644)
	return p
}
