package blob_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
)

// TestChainFullDisk is issue 12 item 12: a full local disk is the local
// store's fault, named with its path and "no space left on device" —
// not "no source has it" — and the other mirrors are not tried.
func TestChainFullDisk(t *testing.T) {
	data := []byte("an artifact")
	ref := blob.DigestBytes(data)
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	second := false
	c := &blob.Chain{
		Local:         blobtest.FullDisk{FS: local},
		Mirrors:       []blob.Store{&blob.HTTP{URL: mirror(t, data)}, &blob.HTTP{URL: mirror(t, data)}},
		OnMirrorError: func(i int, _ blob.Ref, _ error) { second = second || i == 1 },
	}
	err = c.Fetch(context.Background(), ref)
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, blob.ErrMismatch) ||
		!strings.Contains(err.Error(), "write /dev/full: no space left on device") || strings.Contains(err.Error(), "no source has it") {
		t.Fatalf("fetch onto a full disk = %v; want the local store's ENOSPC, naming the path", err)
	}
	if second {
		t.Fatal("a full local disk sent the fetch on to the next mirror")
	}
}
