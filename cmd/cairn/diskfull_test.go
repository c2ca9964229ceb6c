package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
)

// fullDisk is a filesystem store whose writes land on /dev/full, where
// the kernel answers every write with ENOSPC.
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

// A full disk while fetching is an I/O error (exit 1) that names the
// path and says what to do, not "not found" (exit 4).
func TestFullDiskExit(t *testing.T) {
	data := []byte("an artifact")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(data) }))
	defer srv.Close()
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &blob.Chain{Local: fullDisk{local}, Mirrors: []blob.Store{&blob.HTTP{URL: srv.URL}}}
	err = c.Fetch(context.Background(), blob.DigestBytes(data))
	err = fmt.Errorf("package acme/log@1.0.0: artifact log.tar.gz: %w", err)
	code, hint := classify(err)
	if code != exitError || !strings.Contains(err.Error(), "write /dev/full: no space left on device") ||
		!strings.Contains(hint, "the disk is full") {
		t.Fatalf("classify(%v) = %d, %q; want exit %d and a hint about the full disk", err, code, hint, exitError)
	}
}
