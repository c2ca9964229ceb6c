package blob_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"

	"cairn.dev/cairn/internal/blob"
)

// FullDisk is a filesystem store whose writes land on /dev/full, where
// the kernel answers every write with ENOSPC: a disk that is full.
type fullDisk struct{ *blob.FS }

func (d fullDisk) Put(ctx context.Context, ref blob.Ref, r io.Reader) error {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, blob.VerifyReader(r, ref))
	return err
}

// TestChainFullDisk is issue 12 item 12: a full local disk is the local
// store's fault, named with its path and "no space left on device" —
// not "no mirror has it" — and the other mirrors are not tried.
func TestChainFullDisk(t *testing.T) {
	data := []byte("an artifact")
	ref := blob.DigestBytes(data)
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	second := false
	c := &blob.Chain{
		Local:         fullDisk{local},
		Mirrors:       []blob.Store{&blob.HTTP{URL: mirror(t, data)}, &blob.HTTP{URL: mirror(t, data)}},
		OnMirrorError: func(i int, _ blob.Ref, _ error) { second = second || i == 1 },
	}
	err = c.Fetch(context.Background(), ref)
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, blob.ErrMismatch) ||
		!strings.Contains(err.Error(), "write /dev/full: no space left on device") || strings.Contains(err.Error(), "no mirror has it") {
		t.Fatalf("fetch onto a full disk = %v; want the local store's ENOSPC, naming the path", err)
	}
	if second {
		t.Fatal("a full local disk sent the fetch on to the next mirror")
	}
}
