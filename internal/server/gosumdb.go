package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/module"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/transport"
)

// GoSumDB is a Go checksum database the GOPROXY adapter relays under
// /go/sumdb/NAME/ (the GOPROXY protocol's "proxying a checksum
// database"): the go command asks its proxy for the database first
// (/sumdb/NAME/supported), so a machine whose only way out is cairn
// still checks public modules against it. The go command verifies every
// answer itself — the database's signed tree heads with its key, the
// tiles against them — so the relay is trusted for nothing.
type GoSumDB struct {
	Name string // the database's name, as GOSUMDB gives it: sum.golang.org
	URL  string // where this server reads it: https://sum.golang.org, or a mirror of it
}

// sumDBPath is what a relayed request may ask for after /go/sumdb/NAME/:
// the latest signed tree, a lookup of MODULE@VERSION (case-encoded), or
// a tile (hashes or data, full or partial) — nothing else is forwarded.
// A lookup's module path is at most 600 bytes and its version 200: the
// bounds are counted apart, as a counted repetition compiles into a
// program as long as its count (it took 1.6 ms at every start of every
// command); compiled when first used.
var sumDBPath = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(latest|lookup/([A-Za-z0-9._~!/+-]+)@([A-Za-z0-9._~!+-]+)|tile/[0-9]{1,2}/([0-9]|[1-5][0-9]|data)/(x[0-9]{3}/){0,8}[0-9]{3}(\.p/[0-9]{1,3})?)$`)
})

// isSumDBPath tells whether rest is a path sumDBPath allows.
func isSumDBPath(rest string) bool {
	m := sumDBPath().FindStringSubmatch(rest)
	return m != nil && len(m[2]) <= 600 && len(m[3]) <= 200
}

// maxSumDBAnswer bounds a relayed answer: a tile is at most 8 KiB of
// hashes (a data tile a few hundred KiB), a lookup or the latest tree a
// few KiB.
const maxSumDBAnswer = 4 << 20

// goSumDB relays GET /go/sumdb/NAME/PATH to the database named NAME, if
// it is one the server relays (else 404: the go command then asks the
// database itself).
func (s *Server) goSumDB(w http.ResponseWriter, r *http.Request) {
	name, rest, _ := strings.Cut(r.PathValue("path"), "/")
	var db *GoSumDB
	for i := range s.opts.GoSumDBs {
		if s.opts.GoSumDBs[i].Name == name {
			db = &s.opts.GoSumDBs[i]
		}
	}
	if db == nil {
		httpError(w, http.StatusNotFound, "not found: this proxy relays no checksum database %q (the go command asks it directly)", name)
		return
	}
	if rest == "supported" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if slices.Contains(strings.Split(rest, "/"), "..") || !isSumDBPath(rest) {
		httpError(w, http.StatusNotFound, "not found: %q is not a checksum database path (latest, lookup/MODULE@VERSION, tile/…)", rest)
		return
	}
	if lookup, ok := strings.CutPrefix(rest, "lookup/"); ok {
		// A lookup names a module to the database: never one of the
		// organisation's own, which no public database holds and whose
		// name it is not to learn (as Athens refuses its NoSumPatterns).
		// 403, not 404: the go command fails here, naming what to set.
		if own, why := s.ownModule(r.Context(), lookup); own != "" {
			s.log.Warn("a checksum database lookup of the organisation's own module not relayed", "lookup", lookup, "database", name, "why", why)
			httpError(w, http.StatusForbidden, "cairn: not relayed to checksum database %s: %s, the organisation's own module: no public database holds it, and asking one would tell it the name\nhint: list it in GONOSUMDB (or GOPRIVATE with GONOPROXY=none): go env -w GONOSUMDB=%s", name, why, own)
			return
		}
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, strings.TrimSuffix(db.URL, "/")+"/"+rest, nil)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "checksum database %s: %v", name, err)
		return
	}
	req.Header.Set("User-Agent", "cairn (relaying for the go command)")
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		// The URL without its user information (a mirror's password is
		// the server's, not its clients').
		where := transport.RedactString(db.URL)
		s.log.Warn("checksum database not reached", "database", name, "url", where, "err", err)
		httpError(w, http.StatusBadGateway, "checksum database %s: not reached at %s", name, where)
		return
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxSumDBAnswer {
		httpError(w, http.StatusBadGateway, "checksum database %s: an answer of %d bytes, more than any it gives", name, resp.ContentLength)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSumDBAnswer+1))
	if err == nil && len(body) > maxSumDBAnswer {
		err = fmt.Errorf("an answer of more than %d bytes, more than any it gives", maxSumDBAnswer)
	}
	if err != nil {
		httpError(w, http.StatusBadGateway, "checksum database %s: %v", name, err)
		return
	}
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// ownModule returns the organisation's own module that the module a
// checksum database lookup names ("MODULE@VERSION", case-encoded) is or
// lies beneath (the go command asks for the longest path that provides a
// package) — published on main, and not imported from the public
// ecosystem — and why ("example.com/greet/v2 lies beneath
// example.com/greet, published here"); "" if there is none, or the
// lookup or main cannot be read (the relay then forwards it, and the
// database answers for itself).
func (s *Server) ownModule(ctx context.Context, lookup string) (own, why string) {
	escPath, escVersion, ok := strings.Cut(lookup, "@")
	if !ok {
		return "", ""
	}
	path, err := module.UnescapePath(escPath)
	if err != nil {
		return "", ""
	}
	version, err := module.UnescapeVersion(escVersion)
	if err != nil {
		return "", ""
	}
	c, err := s.repo.Catalog(ctx, index.MainRef)
	if err != nil {
		return "", ""
	}
	for name := path; strings.Contains(name, "/"); name = name[:strings.LastIndexByte(name, '/')] {
		own, err := c.Folded(name)
		if err != nil || own == "" {
			continue
		}
		asked := ""
		if name == path {
			asked = strings.TrimPrefix(version, "v")
		}
		if imported(c, own, asked) {
			return "", "" // a public module: the database holds it
		}
		switch {
		case own == path:
			return own, path + " is published here"
		case strings.EqualFold(own, path):
			return own, fmt.Sprintf("%s differs only in case from %s, published here", path, own)
		}
		return own, fmt.Sprintf("%s lies beneath %s, published here", path, own)
	}
	return "", ""
}
