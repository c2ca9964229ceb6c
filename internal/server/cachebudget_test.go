package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// heldBytes returns the bytes of the keys and bodies c holds, counted
// from its entries.
func heldBytes(c *lightCache) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for k, e := range c.items {
		n += int64(len(k) + len(e.Value.(*cached).body))
	}
	return n
}

// The server's subject documents are kept within a budget of bytes, not
// of documents: a thousand documents of the largest size kept (as one
// huge package's would be, read at many trees) leave at most
// budgetSubjects bytes held, the latest ones; and a real subject read
// after them is answered and kept (before: 4096 documents of up to 1 MiB
// each, 4 GiB, whatever their size).
func TestSubjectCacheBoundedByBytes(t *testing.T) {
	s, _, _ := logServed(t)
	c := s.srv.subjects
	huge := bytes.Repeat([]byte("x"), maxKeptSubject)
	const n = 1000
	for i := range n {
		c.put(fmt.Sprintf("%d huge", i), huge)
	}
	if held := heldBytes(c); held > budgetSubjects {
		t.Fatalf("the subject documents held are %d MiB, over their budget of %d MiB", held>>20, budgetSubjects>>20)
	}
	if c.get(fmt.Sprint(n-1, " huge")) == nil {
		t.Errorf("the latest document put is not kept")
	}
	if c.get("0 huge") != nil {
		t.Errorf("the first document put is still kept after %d MiB more", n)
	}

	resp, body := s.do("GET", "/api/v1/log/subject?s="+url.QueryEscape("package acme/x"), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subject: %s %s", resp.Status, body)
	}
	found := false
	c.mu.Lock()
	for k, e := range c.items {
		if bytes.HasSuffix([]byte(k), []byte(" package acme/x")) && bytes.Equal(e.Value.(*cached).body, bytes.TrimSpace(body)) {
			found = true
		}
	}
	c.mu.Unlock()
	if !found {
		t.Errorf("the subject document read is not kept")
	}
	if held := heldBytes(c); held > budgetSubjects {
		t.Fatalf("the subject documents held are %d bytes, over their budget of %d", held, budgetSubjects)
	}
}

// A lightCache keeps its least recently used entries out first, by count
// and by bytes, counts what it holds exactly as it removes, and never
// keeps a body that alone goes over its budget.
func TestLightCacheBudget(t *testing.T) {
	c := newLightCache(3, 100)
	c.put("a", make([]byte, 39)) // 40 bytes with its key
	c.put("b", make([]byte, 39))
	c.get("a") // a is the most recently used now
	c.put("c", make([]byte, 39))
	if c.get("b") != nil || c.get("a") == nil || c.get("c") == nil {
		t.Errorf("over 100 bytes: want b (least recently used) out, a and c kept")
	}
	c.put("big", make([]byte, 98)) // 101 bytes: never kept
	if c.get("big") != nil || c.get("a") == nil || c.get("c") == nil {
		t.Errorf("a body over the whole budget was kept, or pushed others out")
	}
	c.remove("a")
	c.put("d", nil)
	c.put("e", nil)
	c.put("f", nil) // 4 entries: over the count
	if c.get("c") != nil || heldBytes(c) != c.bytes || c.bytes != 3 {
		t.Errorf("held %d bytes (counted %d), c kept %v: want c out, 3 bytes", heldBytes(c), c.bytes, c.get("c") != nil)
	}
}

// What a reader derived from a body (setAux) is kept only with that very
// body: a reader whose put came second (the first put stays held) must
// not attach what it derived from its own bytes (a log rebuilt while it
// is served: the tile's length) to the bytes held.
func TestLightCacheAuxOnlyWithItsBody(t *testing.T) {
	c := newLightCache(8, 1<<20)
	first, second := []byte("a tile"), []byte("a rebuilt tile")
	c.put("tile/0/000", first)
	c.put("tile/0/000", second) // another reader's, not held
	c.setAux("tile/0/000", second, "length of the rebuilt tile")
	if body, aux := c.getAux("tile/0/000"); aux != nil {
		t.Fatalf("aux derived from other bytes kept with %q: %v", body, aux)
	}
	c.setAux("tile/0/000", first, "length of the tile")
	if body, aux := c.getAux("tile/0/000"); string(body) != string(first) || aux != "length of the tile" {
		t.Fatalf("getAux = %q, %v; want the tile held with its aux", body, aux)
	}
}

// The hash tiles and entry bundles of a log of 100,000 records (653
// hash tiles of 8 KiB, 651 full bundles of about 50 KB: 33 MB) are all
// kept, read in any order: the bundles, six times a hash tile, do not
// push the hash tiles out, nor one another.
func TestTileCachesHoldA100kLog(t *testing.T) {
	s, _, _ := logServed(t)
	srv := s.srv
	tile, bundle := make([]byte, 8192), make([]byte, 50750)
	var paths []string
	for n := range 653 {
		p := fmt.Sprintf("tile/0/%03d", n)
		srv.tileCache(p).put(p, tile)
		paths = append(paths, p)
		if n < 651 {
			p = fmt.Sprintf("tile/entries/%03d", n)
			srv.tileCache(p).put(p, bundle)
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		if srv.tileCache(p).get(p) == nil {
			t.Fatalf("%s is not kept, after the hash tiles and entry bundles of a log of 100,000 records", p)
		}
	}
	if srv.tileCache("tile/0/000") == srv.tileCache("tile/entries/000") {
		t.Fatal("hash tiles and entry bundles share one cache")
	}
}
