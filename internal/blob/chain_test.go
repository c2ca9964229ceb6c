package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
)

// mirror serves one blob's bytes, whatever is asked.
func mirror(t *testing.T, body []byte) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// A mirror that sends other bytes, or more than the size, is cut off and
// the next one is tried; nothing wrong is stored.
func TestChainSkipsBadMirrors(t *testing.T) {
	ctx := context.Background()
	good := []byte("the real artifact")
	ref := blob.DigestBytes(good)
	tampered := []byte("the evil artifact")
	longer := append(append([]byte{}, good...), []byte(" and a payload")...)
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var failed []int
	c := &blob.Chain{
		Local: local,
		Mirrors: []blob.Store{
			&blob.HTTP{URL: mirror(t, tampered)},
			&blob.HTTP{URL: mirror(t, longer)},
			&blob.HTTP{URL: mirror(t, good)},
		},
		OnMirrorError: func(i int, _ blob.Ref, err error) {
			if !errors.Is(err, blob.ErrMismatch) {
				t.Errorf("mirror %d: %v, want a mismatch", i, err)
			}
			failed = append(failed, i)
		},
	}
	rc, err := c.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, good) {
		t.Fatalf("got %q", got)
	}
	if fmt.Sprint(failed) != "[0 1]" {
		t.Fatalf("failed mirrors %v, want [0 1]", failed)
	}
	// Only bad mirrors: a blob.FetchError with each one's evidence, nothing stored.
	other := []byte("another blob")
	oref := blob.DigestBytes(other)
	c2 := &blob.Chain{Local: local, Mirrors: []blob.Store{&blob.HTTP{URL: mirror(t, tampered)}, &blob.HTTP{URL: mirror(t, append(other, 'x'))}}}
	_, err = c2.Open(ctx, oref)
	var fe *blob.FetchError
	if !errors.As(err, &fe) || len(fe.Errors) != 2 || !errors.Is(err, blob.ErrMismatch) || !strings.Contains(err.Error(), "SECURITY ERROR") {
		t.Fatalf("err = %v, want a blob.FetchError of two mismatches", err)
	}
	// The summary says what happened: sources served other bytes (it
	// said "no mirror has it", an absence).
	if !strings.Contains(err.Error(), "2 of its 2 source(s) served other bytes than its digest names, and none served its own; source 1 (") {
		t.Fatalf("err = %v, want a summary of the substituted bytes", err)
	}
	if ok, _ := local.Stat(ctx, oref); ok {
		t.Fatal("a blob no mirror sent right was stored")
	}
}

// The chain is a blob.Store like any other.
func TestChainConformance(t *testing.T) {
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Run(t, &blob.Chain{Local: local})
}

// A mirror's URL may carry its credentials (http://USER:TOKEN@HOST): a
// failed fetch names the mirror, and that message lands in CI logs, so
// it names it without them.
func TestChainErrorHidesMirrorCredentials(t *testing.T) {
	ctx := context.Background()
	good := []byte("the real artifact")
	ref := blob.DigestBytes(good)
	evil := mirror(t, []byte("the evil artifact"))
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	withCreds := strings.Replace(evil, "http://", "http://bob:tok3n@", 1)
	c := &blob.Chain{Local: local, Mirrors: []blob.Store{&blob.HTTP{URL: withCreds}}}
	err = c.Fetch(ctx, ref)
	if err == nil {
		t.Fatal("a mirror that sends other bytes was believed")
	}
	if strings.Contains(err.Error(), "tok3n") || strings.Contains(err.Error(), "bob") {
		t.Errorf("the error shows the mirror's credentials: %v", err)
	}
	if !strings.Contains(err.Error(), strings.TrimPrefix(evil, "http://")) {
		t.Errorf("the error does not name the mirror (%s): %v", evil, err)
	}
}
