package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"cairn.dev/cairn/internal/index"
)

// sliceEvery is how many commits apart the commits GET /api/v1/slices
// lists are, by default (Options.SliceEvery).
const sliceEvery = 1024

// sliceList answers GET /api/v1/slices?head=H[&from=F]: every Nth
// commit (Options.SliceEvery) of H's first-parent history past F (F
// excluded, H too), oldest first, one commit id a line. H must be on main. A client pulling a
// long history fetches it slice by slice, verifying one while the next
// arrives (see remote.Pull); it trusts nothing of the list, which only
// says where to cut: each slice is verified from the one before as any
// pull is, and refs move only after the whole history passes.
func (s *Server) sliceList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	head, from := q.Get("head"), q.Get("from")
	if !index.IsCommitID(head) || from != "" && !index.IsCommitID(from) {
		httpError(w, http.StatusBadRequest, "want head=COMMIT (and from=COMMIT, the head the client verified last): commit ids in hex")
		return
	}
	key := head + " " + from
	if body, ok := s.slices.get(key); ok {
		writeSlices(w, body)
		return
	}
	ctx := r.Context()
	main, err := s.repo.Head(ctx, index.MainRef)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
		return
	}
	// main's history past from, cut at head: head must be on it.
	ids, err := s.repo.FirstParents(ctx, from, main)
	if err != nil {
		httpError(w, http.StatusNotFound, "the history from %s to %s: %v", from, main, err)
		return
	}
	end := slices.Index(ids, head)
	if end < 0 {
		httpError(w, http.StatusNotFound, "%s is not on this server's main (at %s) past %s", head, main, from)
		return
	}
	ids = ids[:end+1]
	var b strings.Builder
	every := s.opts.SliceEvery
	if every <= 0 {
		every = sliceEvery
	}
	for i := every - 1; i < len(ids)-1; i += every {
		fmt.Fprintln(&b, ids[i])
	}
	s.slices.put(key, b.String())
	writeSlices(w, b.String())
}

func writeSlices(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable") // a history never changes
	fmt.Fprint(w, body)
}

// sliceCache keeps the last few slice lists answered, by head and from:
// a list is a function of the two (main only grows), and each costs a
// walk of main's history, which new replicas pulling the same head would
// otherwise pay for again and again.
type sliceCache struct {
	mu     sync.Mutex
	keys   []string // oldest first
	bodies map[string]string
}

const sliceCacheSize = 16

func (c *sliceCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	body, ok := c.bodies[key]
	return body, ok
}

func (c *sliceCache) put(key, body string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.bodies[key]; ok {
		return
	}
	if c.bodies == nil {
		c.bodies = map[string]string{}
	}
	if len(c.keys) == sliceCacheSize {
		delete(c.bodies, c.keys[0])
		c.keys = c.keys[1:]
	}
	c.keys = append(c.keys, key)
	c.bodies[key] = body
}
