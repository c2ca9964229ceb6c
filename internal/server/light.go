package server

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
)

// PackageDoc is the light read of one package: every version with its
// descriptor and every record about it, as stored (the records are DSSE
// envelopes a client verifies itself).
type PackageDoc struct {
	Name   string `json:"name"`
	Source string `json:"source"` // "" for the repository's own packages, else the upstream's name
	// SourceIntroduction pins the upstream whose root the descriptors and
	// records are verified against (LocalRecords: this repository's).
	SourceIntroduction string       `json:"source_introduction,omitempty"`
	Versions           []VersionDoc `json:"versions"`
	// Policy names the server's policy (Options.Policy) by its digest,
	// "sha256:HEX", and Refusals are the versions it refuses: they stay
	// in the document (its proofs must hold) and the server refuses
	// their artifacts and Go module files.
	Policy   string    `json:"policy,omitempty"`
	Refusals []Refusal `json:"refusals,omitempty"`
	// Warnings are the rules whose enforcement is warn that versions the
	// server serves fail (mode, records and reason as in Refusals): the
	// server serves those versions, and says so.
	Warnings []Refusal `json:"warnings,omitempty"`
}

// VersionDoc is one version in a PackageDoc.
type VersionDoc struct {
	Version    string            `json:"version"`
	Descriptor DescriptorDoc     `json:"descriptor"`
	Records    []json.RawMessage `json:"records"`
	// LocalRecords are this repository's records about an upstream's
	// version (its own audit, say), verified against its own root.
	LocalRecords []json.RawMessage `json:"local_records,omitempty"`
}

// DescriptorDoc is a descriptor with its digest and size.
type DescriptorDoc struct {
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Content []byte `json:"content"` // the exact bytes, base64
}

// lightCache is an LRU of immutable bytes by a content name: rendered
// package documents by the git tree id of the package's directory (a
// tree id names its content, so an entry never goes stale, and the id is
// the document's ETag), small blobs by digest. It holds at most max
// entries and at most maxBytes bytes of keys and bodies together: the
// least recently used go first, and a body that alone would go over
// maxBytes is not kept.
type lightCache struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	bytes    int64 // of the keys and bodies held
	order    *list.List
	items    map[string]*list.Element
}

type cached struct {
	key  string
	body []byte
	aux  any // what a reader derived from key and body, kept with them (getAux)
}

func (e *cached) size() int64 { return int64(len(e.key) + len(e.body)) }

// The memory budgets of the server's caches (lightCache), at most
// cacheBudget bytes of bodies and keys in all: what a server holds
// whatever its clients ask, one huge package or many small ones.
const (
	budgetDocs     = 64 << 20 // rendered package documents (GET /api/v1/packages/…)
	budgetSmall    = 64 << 20 // small blobs (smallBlob each at most)
	budgetTiles    = 16 << 20 // the log's hash tiles (8 KiB each at most)
	budgetBundles  = 48 << 20 // the log's entry bundles (about 50 KB each when full)
	budgetSubjects = 64 << 20 // light reads' subject documents (maxKeptSubject each at most)
	budgetLeaves   = 64 << 20 // the log's files (maxKeptLeaf each at most)

	cacheBudget = budgetDocs + budgetSmall + budgetTiles + budgetBundles + budgetSubjects + budgetLeaves
)

func newLightCache(max int, maxBytes int64) *lightCache {
	return &lightCache{max: max, maxBytes: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lightCache) get(key string) []byte {
	body, _ := c.getAux(key)
	return body
}

// getAux returns key's body and what was kept with it (setAux), if any.
func (c *lightCache) getAux(key string) ([]byte, any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		v := e.Value.(*cached)
		return v.body, v.aux
	}
	return nil, nil
}

// setAux keeps aux with key's body, if the body held is body (the same
// bytes in memory, not another put since): something derived from the
// key and that body alone, which a reader would otherwise derive again.
func (c *lightCache) setAux(key string, body []byte, aux any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		if v := e.Value.(*cached); len(v.body) == len(body) && (len(body) == 0 || &v.body[0] == &body[0]) {
			v.aux = aux
		}
	}
}

func (c *lightCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.drop(e)
	}
}

// drop removes e; c.mu is held.
func (c *lightCache) drop(e *list.Element) {
	v := c.order.Remove(e).(*cached)
	delete(c.items, v.key)
	c.bytes -= v.size()
}

func (c *lightCache) put(key string, body []byte) {
	item := &cached{key: key, body: body}
	if item.size() > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	c.items[key] = c.order.PushFront(item)
	c.bytes += item.size()
	for c.order.Len() > c.max || c.bytes > c.maxBytes {
		c.drop(c.order.Back())
	}
}

// packageGet serves GET /api/v1/packages/NAME (NS/NAME, or a Go module
// path of any number of elements): one request per
// package, like cargo's sparse index, with an ETag that changes exactly
// when something about the package does.
func (s *Server) packageGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := descriptor.CheckName(name); err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	src, key, err := s.findPackage(r.Context(), name)
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusNotFound, "no package %s in this repository", name)
		return
	}
	var amb *index.AmbiguousError
	if errors.As(err, &amb) {
		httpError(w, http.StatusConflict, "%v", err)
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
		return
	}
	docKey := src.Key()
	if s.gate != nil {
		// The server's refusals change with the heads, and with time
		// (max_age): its judgments are made again each judgmentLife.
		docKey += "|" + key + "|" + strconv.FormatInt(s.gate.period(key).UnixNano(), 36)
	}
	etag := `"` + docKey + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache") // revalidate: cheap with the ETag
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := s.cache.get(docKey)
	if body == nil {
		// Not in memory: from disk (docStore; none with a policy),
		// else rendered from git and kept there.
		if body = s.docs.get(name, docKey); body == nil {
			if body, err = s.packageBody(r, name, key, src); err != nil {
				httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
				return
			}
			s.docs.put(name, docKey, body)
		}
		s.cache.put(docKey, body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// packageBody renders a package's document from git, with the server
// policy's verdicts at the heads key names if it has one: the JSON and a
// final newline.
func (s *Server) packageBody(r *http.Request, name, key string, src index.PackageTree) ([]byte, error) {
	doc, err := s.renderPackage(r, name, src)
	if err != nil {
		return nil, err
	}
	if s.gate != nil {
		pol, err := s.policyAt(r.Context(), key)
		if err != nil {
			return nil, err
		}
		doc.Policy = "sha256:" + pol.Ref.SHA256
		var warned []*judgment
		if doc.Refusals, doc.Warnings, warned, err = s.refusals(r.Context(), key, src, doc); err != nil {
			return nil, err
		}
		for i := range doc.Refusals {
			s.countRefusal(r, "light", name+"@"+doc.Refusals[i].Version, &doc.Refusals[i])
		}
		for _, j := range warned {
			s.countWarnings(r, "light", name+"@"+j.warnings[0].Version, j)
		}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append(body, '\n'), nil
}

// findPackage finds a package's files (index.FindPackage: the
// repository's own index first, then, for a name that is not internal,
// the one followed upstream whose verified copy publishes it — several
// are an *index.AmbiguousError, answered 409), remembered for as long
// as the refs they were read from have not moved; it returns the
// version of those refs (main's and the followed upstreams' heads),
// which also keys the server policy's judgments.
func (s *Server) findPackage(ctx context.Context, name string) (index.PackageTree, string, error) {
	version, src, ok, err := s.resolved.get(ctx, s.repo, name)
	if err != nil {
		return src, "", err
	}
	if ok {
		if src.Tree == "" {
			return src, version, fs.ErrNotExist
		}
		return src, version, nil
	}
	src, err = s.repo.FindPackage(ctx, name, func() ([]*index.Upstream, error) { return s.upstreams(ctx) })
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		s.resolved.put(version, name, src)
	}
	return src, version, err
}

func (s *Server) renderPackage(r *http.Request, name string, src index.PackageTree) (*PackageDoc, error) {
	doc := &PackageDoc{Name: name, Versions: []VersionDoc{}}
	if src.Upstream != nil {
		doc.Source, doc.SourceIntroduction = src.Upstream.Name, src.Upstream.Introduction
	}
	err := s.repo.PackageVersions(r.Context(), src, func(v index.PackageVersion) error {
		vd := VersionDoc{Version: v.Version, Records: []json.RawMessage{}}
		if v.Descriptor != nil {
			ref := blob.DigestBytes(v.Descriptor)
			vd.Descriptor = DescriptorDoc{SHA256: ref.SHA256, Size: ref.Size, Content: v.Descriptor}
		}
		for _, data := range v.Records {
			vd.Records = append(vd.Records, json.RawMessage(bytes.TrimSpace(data)))
		}
		for _, data := range v.LocalRecords {
			vd.LocalRecords = append(vd.LocalRecords, json.RawMessage(bytes.TrimSpace(data)))
		}
		doc.Versions = append(doc.Versions, vd)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// recordGet serves GET /api/v1/records/ID: a record's bytes, immutable.
func (s *Server) recordGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data, path, err := s.repo.Record(r.Context(), id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		httpError(w, http.StatusNotFound, "no record %s in this repository", id)
		return
	case err != nil && !blob.IsDigest(id):
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	case err != nil:
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.dsse.envelope.v1+json")
	w.Header().Set("ETag", `"`+id+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("Cairn-Path", path)
	w.Write(data)
}

// upstreams lists the upstreams main follows that the server holds a
// verified copy of, by name. The list is kept by the id of main's
// upstreams/ tree, so that a request reads one object to know it is
// current.
func (s *Server) upstreams(ctx context.Context) ([]*index.Upstream, error) {
	tree, err := s.repo.UpstreamsKey(ctx)
	if err != nil || tree == "" {
		return nil, err
	}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if s.upTree == tree {
		return s.ups, nil
	}
	ups, err := s.repo.Followed(ctx)
	if err != nil {
		return nil, err
	}
	s.upTree, s.ups = tree, ups
	s.resolved.follow(ups)
	return ups, nil
}

// resolutions remembers where each package's light read comes from, for
// as long as the refs it was read from have not moved. Whether they moved
// is asked of the repository's running batch reader (Repo.HeadOf, one
// round trip, no new process), never read from git's files behind its
// back: the refs' storage is git's own (files, packed-refs, reftable).
type resolutions struct {
	mu      sync.Mutex
	version string
	refs    []string // refs watched besides main
	srcs    map[string]index.PackageTree
}

// maxResolutions bounds the map (unknown names are remembered too).
const maxResolutions = 1 << 16

// get returns the refs' version now and, if known at it, the package's source.
func (c *resolutions) get(ctx context.Context, repo *index.Repo, name string) (string, index.PackageTree, bool, error) {
	c.mu.Lock()
	refs := append([]string{index.MainRef}, c.refs...)
	c.mu.Unlock()
	var b strings.Builder
	for _, ref := range refs {
		head, err := repo.Head(ctx, ref)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			b.WriteString("-;")
		case err != nil:
			return "", index.PackageTree{}, false, err
		default:
			b.WriteString(head + ";")
		}
	}
	v := b.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if v != c.version || len(c.srcs) > maxResolutions {
		c.version, c.srcs = v, map[string]index.PackageTree{}
	}
	src, ok := c.srcs[name]
	return v, src, ok, nil
}

// put remembers a source found while the refs were at version.
func (c *resolutions) put(version, name string, src index.PackageTree) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if version == c.version {
		c.srcs[name] = src
	}
}

// follow watches the refs of these upstreams too.
func (c *resolutions) follow(ups []*index.Upstream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs = nil
	for _, u := range ups {
		c.refs = append(c.refs, index.UpstreamRef(u.Name))
	}
	c.version = "" // start again with the new set
}
