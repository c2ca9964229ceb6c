package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"cairn.dev/cairn/internal/checkpoint"
)

// A restarted server answers light reads at the trees of the last
// keptTrees checkpoints signed before it (before: only at the latest,
// and 410 at the sizes a client read before the restart still holds),
// with the very documents answered before; it keeps them as it signs
// on; and a tree kept that the log does not prove (its root edited in
// the file) is answered 410, not at another tree.
func TestKeptTreesAcrossRestart(t *testing.T) {
	f, ck, _ := retryFixture(t)
	opts := Options{CheckpointKey: ck, CheckpointInterval: time.Hour}
	docAt := func(size int64) (int, []byte) {
		t.Helper()
		resp, body := f.do("GET", "/api/v1/log/subject?s="+url.QueryEscape("package acme/x")+"&size="+strconv.FormatInt(size, 10), nil, nil)
		return resp.StatusCode, body
	}
	sign := func() int64 {
		t.Helper()
		resp, body := f.do("GET", "/log/checkpoint", nil, nil)
		c, err := checkpoint.Claimed(body)
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("GET /log/checkpoint: %s %v\n%s", resp.Status, err, body)
		}
		return c.Size
	}

	stop := serveOn(t, f, opts)
	var sizes []int64
	docs := map[int64][]byte{}
	for k := range 3 {
		publishOne(t, f, fmt.Sprintf("1.0.%d", k))
		n := sign()
		code, doc := docAt(n)
		if code != http.StatusOK {
			t.Fatalf("at the latest tree, %d: %d %s", n, code, doc)
		}
		sizes, docs[n] = append(sizes, n), doc
	}
	stop()

	stop = serveOn(t, f, opts)
	for _, n := range sizes {
		if code, doc := docAt(n); code != http.StatusOK || !bytes.Equal(doc, docs[n]) {
			t.Fatalf("after a restart, at the tree of size %d (kept %v): %d\n%s\nwant the document answered before:\n%s", n, sizes, code, doc, docs[n])
		}
	}
	publishOne(t, f, "2.0.0")
	latest := sign()
	if latest <= sizes[2] {
		t.Fatalf("the restarted server signed size %d, not past %d", latest, sizes[2])
	}
	if code, doc := docAt(sizes[0]); code != http.StatusOK || !bytes.Equal(doc, docs[sizes[0]]) {
		t.Fatalf("after a restart and a new checkpoint, at the tree of size %d: %d\n%s", sizes[0], code, doc)
	}
	stop()

	path := filepath.Join(f.repo.LocalDir(), keptTreesFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []keptTree
	if err := json.Unmarshal(b, &kept); err != nil {
		t.Fatalf("the trees kept, %s: %v\n%s", path, err, b)
	}
	var keptSizes []int64
	for _, k := range kept {
		keptSizes = append(keptSizes, k.Size)
	}
	for _, n := range append(sizes, latest) {
		if !slices.Contains(keptSizes, n) {
			t.Fatalf("the trees kept, %s, are of sizes %v; want %v and %d among them", path, keptSizes, sizes, latest)
		}
	}
	for i := range kept {
		if kept[i].Size == sizes[1] {
			kept[i].Root[0] ^= 1
		}
	}
	b, _ = json.Marshal(kept)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	serveOn(t, f, opts)
	if code, doc := docAt(sizes[1]); code != http.StatusGone {
		t.Fatalf("at a tree kept with another root than the log's: %d\n%s; want 410", code, doc)
	}
	if code, doc := docAt(sizes[0]); code != http.StatusOK || !bytes.Equal(doc, docs[sizes[0]]) {
		t.Fatalf("at a tree kept that the log proves, beside one it does not: %d\n%s", code, doc)
	}
}
