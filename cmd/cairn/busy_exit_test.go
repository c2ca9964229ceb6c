package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
)

// A server that stays busy is an error (exit 1) with a hint to come back,
// never a refusal (exit 3).
func TestClassifyServerBusy(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		http.Error(w, "the server is running 1 git processes, its limit", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	_, err := (&blob.HTTP{URL: ts.URL}).Open(context.Background(), blob.DigestBytes([]byte("x")))
	if !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("a 503 answer: %v, want blob.ErrBusy", err)
	}
	code, hint := classify(fmt.Errorf("uploading to %s: %w", ts.URL, err))
	if code != exitError || !strings.Contains(hint, "busy") || !strings.Contains(hint, "nothing was refused") {
		t.Fatalf("classify(server busy) = %d, %q; want exit %d and a hint that nothing was refused", code, hint, exitError)
	}
}
