// Package web renders the pages people read in a browser: the
// repository (its packages, a search, recent activity), a package, a
// version (every record with its issuer and status, and a policy's
// verdict rule by rule), a key and the transparency log. The pages are
// HTML rendered on the server with html/template (which escapes every
// value it writes), work without JavaScript, and read only what the
// server already keeps: the package listing of main's verified head, the
// index's catalog at that head, and the latest signed checkpoint. Every
// list is paginated, so that no page walks all packages or all history.
//
// The server mounts the pages beside its APIs (Pages.Mount); they never
// take an API's path, and an API's answers are the API's.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/policy"
)

//go:embed templates/*.html
var templateFiles embed.FS

// Witness is a witness the server submits its checkpoints to, as the log
// page names it.
type Witness struct {
	URL  string
	VKey string // its verifier key: NAME+HASH+KEY
}

// Source is what the pages read, from the server that mounts them. Each
// function is called per request and must be cheap when nothing changed
// (the server keeps what they return by head).
type Source struct {
	// Repo is the repository served.
	Repo *index.Repo
	// Verified returns main's verified head: the pages read nothing past
	// it.
	Verified func(ctx context.Context) (string, error)
	// Packages returns the packages at head, by name (the listing the
	// server keeps for GET /api/v1/packages).
	Packages func(ctx context.Context, head string) ([]index.PackageEntry, error)
	// Leaves returns the leaves from (inclusive) to to (exclusive) of
	// main's transparency log as the server serves it, clipped to its
	// size (from < 0: counted back from its end; to < 0: up to its end), each file's bytes with them when data
	// is set, and the log's size. Nil: the pages read git's history
	// instead (slower: a walk of the history).
	Leaves func(ctx context.Context, from, to int64, data bool) ([]Leaf, int64, error)
	// Subject returns the leaves of a subject's files (index.SubjectOf),
	// in log order, without their bytes. Nil: as for Leaves.
	Subject func(ctx context.Context, subject string) ([]Leaf, error)
	// Checkpoint returns the latest signed checkpoint's note, with the
	// witnesses' cosignatures; nil when the server signs none.
	Checkpoint func(ctx context.Context) ([]byte, error)
	// CheckpointKey is the id of the key that signs checkpoints ("" for none).
	CheckpointKey string
	// Witnesses are the witnesses the server asks to cosign.
	Witnesses []Witness
	// Policy returns the policy the server enforces (cairn serve
	// --policy), as in force at main's head, and its label (the file's
	// name or index:NAME); nil when it enforces none.
	Policy func(ctx context.Context) (*policy.Policy, string, error)
	// Repository is what a policy calls this repository in
	// HOLDER@REPOSITORY issuers.
	Repository string
	// Logger receives the errors a page could not show in full.
	Logger *slog.Logger
}

// Leaf is a leaf of the transparency log: a file the index holds (its
// path, the commit that added it and that commit's time), or the map
// leaf that closes a commit.
type Leaf struct {
	Index  int64
	Commit string
	Time   time.Time
	Path   string // "" for a map leaf
	Map    bool
	Data   []byte // the file's bytes, when asked for
}

// Pages renders the pages of one repository.
type Pages struct {
	src  Source
	tmpl map[string]*template.Template

	mu  sync.Mutex
	cat *index.Catalog // the catalog of the head the pages read last

	policies sync.Map // an index policy's version (record id) → *policy.Policy, parsed and bound once

	dmu       sync.Mutex
	described map[leafKey]activityFile // describeCached's

	rmu      sync.Mutex
	rendered map[string]renderedPage // whole pages, by head and address (cachedPage)
}

// renderedPage is a page as render wrote it, kept by cachedPage.
type renderedPage struct {
	body []byte
	etag string
	at   time.Time
}

// Rendered pages are kept this long for the head they were read at: a
// page is a function of main's verified head and its address, but for
// the time a verdict is judged at (a grant that expires), so a kept page
// lags the clock by at most this. At most maxRendered are kept.
const (
	renderedFor = 5 * time.Second
	maxRendered = 1024
)

// New prepares the pages of src.
func New(src Source) (*Pages, error) {
	if src.Logger == nil {
		src.Logger = slog.Default()
	}
	p := &Pages{src: src, tmpl: map[string]*template.Template{}, described: map[leafKey]activityFile{}, rendered: map[string]renderedPage{}}
	for _, name := range []string{"home", "package", "version", "key", "log", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		p.tmpl[name] = t
	}
	return p, nil
}

// Paths of the pages. None is an API's: the APIs live under /api/,
// /blobs/, /log/, /index.git/, /go/ and /upstreams/.
const (
	HomePath     = "/"
	PackagesPath = "/packages/" // /packages/NAME and /packages/NAME@VERSION
	KeysPath     = "/keys/"     // /keys/KEYID
	LogPath      = "/log"       // the log's page; its files are under /log/
)

// KeyURL is the path of a key's page. A key id is base64 and may hold
// "/", even "//", which a path would be cleaned of (a redirect to another
// id): the id is one escaped path segment, which the route reads back
// whole.
func KeyURL(id string) string { return KeysPath + url.PathEscape(id) }

// Mount registers the pages on mux.
func (p *Pages) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", p.home)
	mux.HandleFunc("GET /packages/{id...}", p.packageOrVersion)
	mux.HandleFunc("GET /keys/{id...}", p.key)
	mux.HandleFunc("GET /log", p.log)
}

// NotFound wraps h (the server's mux): a GET from a browser (one that
// accepts text/html) for a path no route serves gets the HTML 404 page
// with what to do; every other request is h's, as it was.
func (p *Pages) NotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && wantsHTML(r) {
			if _, pattern := mux.Handler(r); pattern == "" {
				p.fail(w, r, http.StatusNotFound, "No page at %s", r.URL.Path)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// wantsHTML reports whether the request is a browser's: it accepts
// text/html.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// page is what every page's layout reads.
type page struct {
	Title string
	Nav   string // the nav entry that is current
	Head  string // main's verified head the page was read at
	// Fresh pages are never kept (cachedPage): they change while main's
	// head does not (the log's page: witnesses cosign later).
	Fresh bool
	Data  any
}

// render writes a page (complete, or an error page: nothing half-written).
func (p *Pages) render(w http.ResponseWriter, r *http.Request, code int, name string, pg page) {
	var buf bytes.Buffer
	if err := p.tmpl[name].Execute(&buf, pg); err != nil {
		p.src.Logger.Error("rendering a page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "the page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body := visible(buf.Bytes())
	if code != http.StatusOK || pg.Head == "" || pg.Fresh {
		p.write(w, r, code, body, "")
		return
	}
	sum := sha256.Sum256(body)
	rp := renderedPage{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, at: time.Now()}
	p.rmu.Lock()
	if len(p.rendered) >= maxRendered {
		clear(p.rendered)
	}
	p.rendered[renderedKey(pg.Head, r)] = rp
	p.rmu.Unlock()
	p.write(w, r, code, rp.body, rp.etag)
}

// visible returns page with every character that hides or reorders text
// written as its code, \uXXXX: controls (but tab and line ends), DEL,
// C1 controls, and what Hides names. Escaping HTML leaves them be, and a
// record's words (a note, a summary) could then show a reader other
// words than they hold (Trojan Source); cairn's own pages hold none of
// them, and "\uXXXX" reads the same in text, an attribute and a
// script's JSON.
func visible(page []byte) []byte {
	hides := func(r rune) bool {
		switch {
		case r < 0x20:
			return r != '\t' && r != '\n' && r != '\r'
		case r >= 0x7f && r <= 0x9f:
			return true
		}
		return Hides(r)
	}
	if bytes.IndexFunc(page, hides) < 0 {
		return page
	}
	out := make([]byte, 0, len(page)+64)
	for len(page) > 0 {
		r, n := utf8.DecodeRune(page)
		if hides(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, page[:n]...)
		}
		page = page[n:]
	}
	return out
}

// Hides reports whether r hides or reorders the text around it without
// being a control character: the Arabic letter mark, zero-width
// characters and the left-to-right and right-to-left marks, line and
// paragraph separators, bidirectional embeddings, overrides and
// isolates, the word joiner and invisible operators, the byte order
// mark. A server's pages (visible) and cairn's terminal output escape the
// same characters.
func Hides(r rune) bool {
	switch {
	case r == 0x061c, r >= 0x200b && r <= 0x200f, r >= 0x2028 && r <= 0x202e, r >= 0x2060 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

// renderedKey is a page's key among the kept pages.
func renderedKey(head string, r *http.Request) string { return head + " " + r.URL.RequestURI() }

// cachedPage writes the page at r's address as render wrote it for head
// within renderedFor, and reports whether it had one.
func (p *Pages) cachedPage(w http.ResponseWriter, r *http.Request, head string) bool {
	p.rmu.Lock()
	rp, ok := p.rendered[renderedKey(head, r)]
	p.rmu.Unlock()
	if !ok || time.Since(rp.at) > renderedFor {
		return false
	}
	p.write(w, r, http.StatusOK, rp.body, rp.etag)
	return true
}

// write sends a page: its headers, then body unless the request is HEAD
// or the browser holds it already (its If-None-Match names etag).
func (p *Pages) write(w http.ResponseWriter, r *http.Request, code int, body []byte, etag string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	if etag != "" {
		h.Set("ETag", etag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && slices.Contains(strings.Split(strings.ReplaceAll(inm, " ", ""), ","), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// errorPage is the error page's data: what went wrong and what to do.
type errorPage struct {
	Code    int
	Status  string
	Message string
	Hint    string
}

// fail renders the error page for code, with a hint by code.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, code int, format string, args ...any) {
	e := errorPage{Code: code, Status: http.StatusText(code), Message: fmt.Sprintf(format, args...)}
	switch code {
	case http.StatusNotFound:
		e.Hint = "Check the spelling, or search the repository's packages from the home page. Packages are at /packages/NAME, versions at /packages/NAME@VERSION, keys at /keys/KEYID."
	case http.StatusBadRequest:
		e.Hint = "The address is not one these pages make: follow a link from the home page instead."
	case http.StatusServiceUnavailable:
		e.Hint = "The index does not verify or is not ready: try again shortly, and tell the repository's operator if it lasts."
	default:
		e.Hint = "Try again; tell the repository's operator if it lasts."
	}
	p.render(w, r, code, "error", page{Title: fmt.Sprintf("%d %s", code, e.Status), Data: e})
}

// failErr renders err: not found as 404, an index that does not verify
// as 503, anything else as 500.
func (p *Pages) failErr(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.fail(w, r, http.StatusNotFound, "%s: %v", what, err)
	case errors.Is(err, errUnverified):
		p.fail(w, r, http.StatusServiceUnavailable, "%s: %v", what, err)
	default:
		p.src.Logger.Error("a page failed", "path", r.URL.Path, "err", err)
		p.fail(w, r, http.StatusInternalServerError, "%s: %v", what, err)
	}
}

var errUnverified = errors.New("the index is not verified")

// catalog returns the index's catalog at main's verified head, kept
// while the head does not move.
func (p *Pages) catalog(ctx context.Context) (*index.Catalog, error) {
	head, err := p.src.Verified(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnverified, err)
	}
	return p.catalogAt(ctx, head)
}

// catalogAt returns the catalog of head, a head of main verified before.
func (p *Pages) catalogAt(ctx context.Context, head string) (*index.Catalog, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cat != nil && p.cat.Commit() == head {
		return p.cat, nil
	}
	c, err := p.src.Repo.Catalog(ctx, head)
	if err != nil {
		return nil, err
	}
	p.cat = c
	return c, nil
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"short": func(n int, s string) string {
		if len(s) > n {
			return s[:n]
		}
		return s
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"bytes":  bytesText,
	"pkgURL": func(name string) string { return PackagesPath + name },
	"versionURL": func(name, version string) string {
		return PackagesPath + name + "@" + version
	},
	"keyURL": KeyURL,
	"anchor": func(id string) string { return "r-" + id },
	"add":    func(a, b int) int { return a + b },
	"sub":    func(a, b int) int { return a - b },
	"sub64":  func(a, b int64) int64 { return a - b },
}

// bytesText is a size as people read it, exact bytes beside.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB (%d bytes)", float64(n)/(1<<30), n)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d bytes)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d bytes", n)
}
