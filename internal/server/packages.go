package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"cairn.dev/cairn/internal/index"
)

// Package listing limits: a page holds DefaultPackagePage packages unless
// the client asks for fewer or more, never more than MaxPackagePage.
const (
	DefaultPackagePage = 100
	MaxPackagePage     = 1000
)

// PackageList is a page of GET /api/v1/packages: the packages whose names
// match q, by name, each with its latest version, read at Head (main's
// verified head). NextCursor, when set, asks for the next page.
type PackageList struct {
	Head       string               `json:"head"`
	Query      string               `json:"q,omitempty"`
	Packages   []index.PackageEntry `json:"packages"`
	NextCursor string               `json:"next_cursor,omitempty"`
}

// packageList serves GET /api/v1/packages?q=TERM&limit=N&cursor=C: the
// package names and latest versions at main's verified head — never a
// commit past it — and of the upstreams this repository follows at the
// heads it verified of them, where an internal name is never an
// upstream's (index.Repo.Packages). q matches a substring, or a glob
// with * ? [; the cursor is the previous page's next_cursor.
func (s *Server) packageList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultPackagePage
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxPackagePage {
			httpError(w, http.StatusBadRequest, "limit %q: want a number from 1 to %d", l, MaxPackagePage)
			return
		}
		limit = n
	}
	var after string
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(b) == 0 {
			httpError(w, http.StatusBadRequest, "cursor %q: not one this server gave (next_cursor of the previous page)", c)
			return
		}
		after = string(b)
	}
	res, err := s.verify(r.Context())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
		return
	}
	all, err := s.packages(r.Context(), res.Head)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "listing packages at %.12s: %v", res.Head, err)
		return
	}
	term := q.Get("q")
	page := PackageList{Head: res.Head, Query: term, Packages: []index.PackageEntry{}}
	last := ""
	for _, p := range all {
		if p.Name <= after || !index.MatchPackage(term, p.Name) {
			continue
		}
		if len(page.Packages) == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(last))
			break
		}
		page.Packages = append(page.Packages, p)
		last = p.Name
	}
	body, err := json.Marshal(page)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(append(body, '\n'))
}

// listing keeps the whole package listing (every name, no term) of the
// heads it was read at — main's verified head and the verified head of
// each upstream it follows (index.Repo.PackagesKey) — so that the pages
// of a listing, and searches, list the tree once per change, not once
// per request.
type listing struct {
	mu    sync.Mutex
	key   string
	all   []index.PackageEntry
	lists int // how many times the tree was listed (tests count them)
}

// packages returns the packages at main's verified head (and the
// upstreams' verified heads), listed once per change of those heads.
func (s *Server) packages(ctx context.Context, head string) ([]index.PackageEntry, error) {
	key, err := s.repo.PackagesKey(ctx, head)
	if err != nil {
		return nil, err
	}
	c := &s.listing
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == key && c.all != nil {
		return c.all, nil
	}
	all, err := s.repo.Packages(ctx, head, "")
	if err != nil {
		return nil, err
	}
	c.lists++
	c.key, c.all = key, all
	return all, nil
}
