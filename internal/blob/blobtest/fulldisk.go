package blobtest

import (
	"context"
	"io"
	"os"

	"cairn.dev/cairn/internal/blob"
)

// FullDisk is a filesystem store whose writes land on /dev/full, where
// the kernel answers every write with ENOSPC: a disk that is full. Reads
// go to the embedded store, so FullDisk{fs} serves wherever a *blob.FS
// does (a chain's local store, an install cache).
type FullDisk struct{ *blob.FS }

var _ blob.Store = FullDisk{}

// Put fails with "write /dev/full: no space left on device".
func (d FullDisk) Put(_ context.Context, ref blob.Ref, r io.Reader) error {
	return fill(blob.VerifyReader(r, ref))
}

// Add fails with "write /dev/full: no space left on device".
func (d FullDisk) Add(_ context.Context, r io.Reader) (blob.Ref, error) {
	return blob.Ref{}, fill(r)
}

func fill(r io.Reader) error {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, r)
	return err
}
