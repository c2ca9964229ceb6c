package server

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
)

// PackageDoc is the light read of one package: every version with its
// descriptor and every record about it, as stored (the records are DSSE
// envelopes a client verifies itself).
type PackageDoc struct {
	Name     string       `json:"name"`
	Source   string       `json:"source"` // "" for the repository's own packages, else the upstream's name
	Versions []VersionDoc `json:"versions"`
}

// VersionDoc is one version in a PackageDoc.
type VersionDoc struct {
	Version    string            `json:"version"`
	Descriptor DescriptorDoc     `json:"descriptor"`
	Records    []json.RawMessage `json:"records"`
}

// DescriptorDoc is a descriptor with its digest and size.
type DescriptorDoc struct {
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Content []byte `json:"content"` // the exact bytes, base64
}

// lightCache keeps rendered package documents by the git tree id of the
// package's directory: a tree id names its content, so an entry never
// goes stale, and the id is the document's ETag.
type lightCache struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[string]*list.Element
}

type cached struct {
	key  string
	body []byte
}

func newLightCache(max int) *lightCache {
	return &lightCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lightCache) get(key string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*cached).body
	}
	return nil
}

func (c *lightCache) put(key string, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	c.items[key] = c.order.PushFront(&cached{key, body})
	for c.order.Len() > c.max {
		e := c.order.Back()
		c.order.Remove(e)
		delete(c.items, e.Value.(*cached).key)
	}
}

// packageGet serves GET /api/v1/packages/NS/NAME: one request per
// package, like cargo's sparse index, with an ETag that changes exactly
// when something about the package does.
func (s *Server) packageGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("ns") + "/" + r.PathValue("name")
	if err := descriptor.CheckName(name); err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	tree, source, err := s.packageTree(r, name)
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusNotFound, "no package %s in this repository", name)
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
		return
	}
	etag := `"` + tree + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache") // revalidate: cheap with the ETag
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := s.cache.get(tree)
	if body == nil {
		doc, err := s.renderPackage(r, name, tree, source)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
			return
		}
		if body, err = json.Marshal(doc); err != nil {
			httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
			return
		}
		body = append(body, '\n')
		s.cache.put(tree, body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// packageTree finds the tree of a package's directory: in the
// repository's own index first (internal names win), then in each
// upstream's.
func (s *Server) packageTree(r *http.Request, name string) (tree, source string, err error) {
	rd, err := s.repo.Reader(r.Context())
	if err != nil {
		return "", "", err
	}
	o, err := rd.Read(index.MainRef + ":" + index.PackageDir(name))
	if err == nil && o.Type == "tree" {
		return o.ID, "", nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	for _, up := range s.upstreams(r.Context()) {
		o, err := rd.Read(up.Ref + ":" + index.PackageDir(name))
		if err == nil && o.Type == "tree" {
			return o.ID, up.Name, nil
		}
	}
	return "", "", fs.ErrNotExist
}

func (s *Server) renderPackage(r *http.Request, name, tree, source string) (*PackageDoc, error) {
	rd, err := s.repo.Reader(r.Context())
	if err != nil {
		return nil, err
	}
	versions, err := rd.Tree(tree)
	if err != nil {
		return nil, err
	}
	doc := &PackageDoc{Name: name, Source: source, Versions: []VersionDoc{}}
	for _, v := range versions {
		if !v.IsTree() {
			continue
		}
		files, err := rd.Tree(v.ID)
		if err != nil {
			return nil, err
		}
		vd := VersionDoc{Version: v.Name, Records: []json.RawMessage{}}
		for _, f := range files {
			o, err := rd.Read(f.ID)
			if err != nil {
				return nil, err
			}
			if f.Name == index.DescriptorFile {
				ref := blob.DigestBytes(o.Data)
				vd.Descriptor = DescriptorDoc{SHA256: ref.SHA256, Size: ref.Size, Content: o.Data}
				continue
			}
			vd.Records = append(vd.Records, json.RawMessage(bytes.TrimSpace(o.Data)))
		}
		doc.Versions = append(doc.Versions, vd)
	}
	return doc, nil
}

// recordGet serves GET /api/v1/records/ID: a record's bytes, immutable.
func (s *Server) recordGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	path, err := s.repo.RecordPath(r.Context(), id)
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusNotFound, "no record %s in this repository", id)
		return
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	rd, err := s.repo.Reader(r.Context())
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	o, err := rd.Read(index.MainRef + ":" + path)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.dsse.envelope.v1+json")
	w.Header().Set("ETag", `"`+id+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("Cairn-Path", path)
	w.Write(o.Data)
}

// checkpointGet serves GET /api/v1/checkpoint: the head, verified by
// this server, signed by its checkpoint key, dated now.
func (s *Server) checkpointGet(w http.ResponseWriter, r *http.Request) {
	if s.opts.CheckpointKey == nil {
		httpError(w, http.StatusNotFound, "this server signs no checkpoints: start it with --checkpoint-key")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.repo.Verify(r.Context(), false)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "the index does not verify: %v", err)
		return
	}
	c := checkpoint.Checkpoint{Introduction: s.repo.Config.Introduction, Head: res.Head, Records: res.Total, Time: time.Now().UTC().Truncate(time.Second)}
	signed, err := checkpoint.Sign(c, s.opts.CheckpointKey)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "signing the checkpoint: %v", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(signed)
}

// upstreamLine is an upstream index the repository follows.
type upstreamLine struct {
	Name string
	Ref  string
}

// upstreams lists the upstreams whose packages the server also serves,
// in the order they were declared.
func (s *Server) upstreams(ctx context.Context) []upstreamLine { return nil }
