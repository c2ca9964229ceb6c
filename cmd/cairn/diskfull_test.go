package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
)

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
	c := &blob.Chain{Local: blobtest.FullDisk{FS: local}, Mirrors: []blob.Store{&blob.HTTP{URL: srv.URL}}}
	err = c.Fetch(context.Background(), blob.DigestBytes(data))
	err = fmt.Errorf("package acme/log@1.0.0: artifact log.tar.gz: %w", err)
	code, hint := classify(err)
	if code != exitError || !strings.Contains(err.Error(), "write /dev/full: no space left on device") ||
		!strings.Contains(hint, "the disk is full") {
		t.Fatalf("classify(%v) = %d, %q; want exit %d and a hint about the full disk", err, code, hint, exitError)
	}
}
