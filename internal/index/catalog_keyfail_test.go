package index_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"cairn.dev/cairn/internal/index"
)

// A light catalog keeps the record views of a version it read. A mirror
// that fails to answer for the issuer's key must not make a record of a
// revoked key read "active" from then on: the read fails while the key
// cannot be read, and once it loads the record reads "issuer key revoked".
func TestLightCatalogKeyReadFails(t *testing.T) {
	w := newCatalogWorld(t)
	head, files := w.history()
	bySubject := w.bySubject(files)
	var down atomic.Bool
	mf := &index.MemFiles{Load: func(subject string) ([]index.MemFile, error) {
		if down.Load() && strings.HasPrefix(subject, "key ") {
			return nil, errors.New("mirror answered 503")
		}
		return bySubject[subject], nil
	}}
	mem, err := index.NewCatalog(mf, "https://example.org", head)
	if err != nil {
		t.Fatal(err)
	}
	status := func() string {
		_, _, recs, err := mem.Version("acme/fastjson", "1.2.4")
		if err != nil {
			return "error: " + err.Error() // refusing is right while the key cannot be read
		}
		for _, r := range recs {
			if r.Kind == "audited" {
				return r.Status.String()
			}
		}
		t.Fatal("no audited record")
		return ""
	}
	down.Store(true)
	first := status() // one failed key read: the view says what it can
	down.Store(false)
	if got := status(); got != "issuer key revoked" {
		t.Fatalf("after the key loads, the audited record of a revoked key reads %q (first read: %q), want \"issuer key revoked\"", got, first)
	}
}
