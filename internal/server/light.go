package server

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
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
// the document's ETag), small blobs by digest.
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

func (c *lightCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.Remove(e)
		delete(c.items, key)
	}
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
	src, err := s.packageTree(r, name)
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusNotFound, "no package %s in this repository", name)
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
		return
	}
	etag := `"` + src.key() + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache") // revalidate: cheap with the ETag
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := s.cache.get(src.key())
	if body == nil {
		doc, err := s.renderPackage(r, name, src)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
			return
		}
		if body, err = json.Marshal(doc); err != nil {
			httpError(w, http.StatusInternalServerError, "%s: %v", name, err)
			return
		}
		body = append(body, '\n')
		s.cache.put(src.key(), body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// pkgSource is where a package's light read comes from: a git tree of
// versions and, for an upstream's package, the tree of this repository's
// records about its versions.
type pkgSource struct {
	tree     string
	local    string          // "" if none
	upstream *index.Upstream // nil: the repository's own package
}

// key names the content: git tree ids name theirs.
func (p pkgSource) key() string {
	if p.local == "" {
		return p.tree
	}
	return p.tree + "+" + p.local
}

// packageTree finds the tree of a package's directory: in the
// repository's own index first, then, for a name that is not internal
// (index.Names: internal names win, an upstream's package of an internal
// name is never looked at), in each followed upstream's verified copy,
// in name order.
func (s *Server) packageTree(r *http.Request, name string) (pkgSource, error) {
	version, src, ok := s.resolved.get(s.repo.Git.GitDir, name)
	if ok {
		if src.tree == "" {
			return src, fs.ErrNotExist
		}
		return src, nil
	}
	src, err := s.findPackage(r, name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		s.resolved.put(version, name, src)
	}
	return src, err
}

// findPackage looks a package's directory up in git.
func (s *Server) findPackage(r *http.Request, name string) (pkgSource, error) {
	rd, err := s.repo.Reader(r.Context())
	if err != nil {
		return pkgSource{}, err
	}
	dir := index.PackageDir(name)
	if id, err := treeAt(rd, index.MainRef+":"+dir); id != "" || err != nil {
		return pkgSource{tree: id}, err
	}
	ups, err := s.upstreams(r.Context(), rd)
	if err != nil {
		return pkgSource{}, err
	}
	if len(ups) == 0 {
		return pkgSource{}, fs.ErrNotExist
	}
	// A name internal here but not published yet (inside a publish grant
	// of this repository's keys) is never taken from an upstream.
	own, err := s.repo.Names(r.Context(), index.MainRef)
	if err != nil {
		return pkgSource{}, err
	}
	if in, err := own.Internal(name); err != nil {
		return pkgSource{}, err
	} else if in {
		return pkgSource{}, fs.ErrNotExist
	}
	for _, u := range ups {
		id, err := treeAt(rd, index.UpstreamRef(u.Name)+":"+dir)
		if err != nil {
			return pkgSource{}, err
		}
		if id == "" {
			continue
		}
		local, err := treeAt(rd, index.MainRef+":"+index.UpstreamDir(u.Name)+"/"+dir)
		return pkgSource{tree: id, local: local, upstream: u}, err
	}
	return pkgSource{}, fs.ErrNotExist
}

// treeAt returns the id of the tree at rev:path, "" if there is none.
func treeAt(rd *gitx.Reader, spec string) (string, error) {
	o, err := rd.Read(spec)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && o.Type != "tree") {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return o.ID, nil
}

func (s *Server) renderPackage(r *http.Request, name string, src pkgSource) (*PackageDoc, error) {
	rd, err := s.repo.Reader(r.Context())
	if err != nil {
		return nil, err
	}
	versions, err := rd.Tree(src.tree)
	if err != nil {
		return nil, err
	}
	doc := &PackageDoc{Name: name, Versions: []VersionDoc{}}
	local := map[string]string{} // version → tree of local records
	if src.upstream != nil {
		doc.Source, doc.SourceIntroduction = src.upstream.Name, src.upstream.Introduction
		if src.local != "" {
			lv, err := rd.Tree(src.local)
			if err != nil {
				return nil, err
			}
			for _, v := range lv {
				local[v.Name] = v.ID
			}
		}
	}
	for _, v := range versions {
		if !v.IsTree() {
			continue
		}
		vd := VersionDoc{Version: v.Name, Records: []json.RawMessage{}}
		err := readRecords(rd, v.ID, func(file string, data []byte) {
			if file == index.DescriptorFile {
				ref := blob.DigestBytes(data)
				vd.Descriptor = DescriptorDoc{SHA256: ref.SHA256, Size: ref.Size, Content: data}
				return
			}
			vd.Records = append(vd.Records, json.RawMessage(bytes.TrimSpace(data)))
		})
		if err != nil {
			return nil, err
		}
		if t := local[v.Name]; t != "" {
			err := readRecords(rd, t, func(_ string, data []byte) {
				vd.LocalRecords = append(vd.LocalRecords, json.RawMessage(bytes.TrimSpace(data)))
			})
			if err != nil {
				return nil, err
			}
		}
		doc.Versions = append(doc.Versions, vd)
	}
	return doc, nil
}

// readRecords calls fn with each file of a version's tree.
func readRecords(rd *gitx.Reader, tree string, fn func(file string, data []byte)) error {
	files, err := rd.Tree(tree)
	if err != nil {
		return err
	}
	for _, f := range files {
		o, err := rd.Read(f.ID)
		if err != nil {
			return err
		}
		fn(f.Name, o.Data)
	}
	return nil
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

// checkpointGet serves GET /api/v1/checkpoint for a server with a
// checkpoint key (checkpoint answers the others): the head, verified by
// this server as /healthz verifies it, signed by its key, dated now.
func (s *Server) checkpointGet(w http.ResponseWriter, r *http.Request) {
	res, err := s.verify(r.Context())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
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

// upstreams lists the upstreams main follows that the server holds a
// verified copy of, by name. The list is kept by the id of main's
// upstreams/ tree, so that a request reads one object to know it is
// current.
func (s *Server) upstreams(ctx context.Context, rd *gitx.Reader) ([]*index.Upstream, error) {
	tree, err := treeAt(rd, index.MainRef+":upstreams")
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
// is told by the ref files on disk — git moves a ref by renaming a new
// file over it, or by rewriting packed-refs — so that a read costs a few
// stat calls instead of a round trip to git.
type resolutions struct {
	mu      sync.Mutex
	version string
	refs    []string // ref files watched besides main's and packed-refs
	srcs    map[string]pkgSource
}

// maxResolutions bounds the map (unknown names are remembered too).
const maxResolutions = 1 << 16

// get returns the refs' version now and, if known at it, the package's source.
func (c *resolutions) get(gitDir, name string) (string, pkgSource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, p := range append([]string{"packed-refs", "refs/heads/main"}, c.refs...) {
		if fi, err := os.Stat(filepath.Join(gitDir, p)); err == nil {
			fmt.Fprintf(&b, "%d.%d.%d;", inode(fi), fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("-;")
		}
	}
	v := b.String()
	if v != c.version || len(c.srcs) > maxResolutions {
		c.version, c.srcs = v, map[string]pkgSource{}
	}
	src, ok := c.srcs[name]
	return v, src, ok
}

// put remembers a source found while the refs were at version.
func (c *resolutions) put(version, name string, src pkgSource) {
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
	c.refs = c.refs[:0]
	for _, u := range ups {
		c.refs = append(c.refs, index.UpstreamRef(u.Name))
	}
	c.version = "" // start again with the new set
}
