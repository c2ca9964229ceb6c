package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/blob/blobtest"
	"cairn.dev/cairn/internal/keys"
)

// uploadKey signs uploads with a keys.Signer, as remote's adapter does.
type uploadKey struct{ keys.Signer }

func (k uploadKey) KeyID() string { return keys.ID(k.Public()) }

// The networked backend keeps the blob.Store contract like the others:
// blob.HTTP against this server as cairn serve runs it (its blob handler
// over its filesystem store), uploads signed by a key granted publish.
// The suite's eight concurrent Puts come from one address: the server
// takes as many at once (cairn serve --max-client-uploads 8), where its
// default of 4 would answer the rest "busy", which is no breach of the
// contract but a limit the caller retries.
func TestHTTPStoreConformance(t *testing.T) {
	s := newServed(t, Options{Limits: Limits{MaxClientUploads: 8}})
	blobtest.Run(t, &blob.HTTP{URL: s.url, Signer: uploadKey{s.alice}})
}

// An upload whose bytes are not the blob is answered 422 with the
// evidence in Cairn-Got (what arrived instead), which blob.HTTP turns back
// into a *blob.MismatchError; nothing is stored.
func TestUploadMismatchEvidence(t *testing.T) {
	f := newFixture(t)
	ref := blob.DigestBytes([]byte("artifact bytes"))
	sent := []byte("artifact bytez")
	resp, body := f.do("PUT", "/blobs/sha256/"+ref.SHA256, bytes.NewReader(sent), signedHeaders(f.alice, ref, time.Now()))
	want := blob.GotHeader(&blob.MismatchError{Want: ref, GotSHA256: blob.DigestBytes(sent).SHA256, GotSize: ref.Size})
	if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get(blob.HeaderGot) != want || !strings.Contains(string(body), "SECURITY ERROR") {
		t.Fatalf("PUT of other bytes: %s, %s %q, body %q; want 422 with %s %q", resp.Status, blob.HeaderGot, resp.Header.Get(blob.HeaderGot), body, blob.HeaderGot, want)
	}
	if ok, _ := f.repo.Blobs.Stat(f.ctx, ref); ok {
		t.Fatal("the blob was stored")
	}
}
