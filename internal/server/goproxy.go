package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gomod"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
)

// The GOPROXY adapter (docs/goproxy.md): GOPROXY=http://HOST/go reads the
// Go module versions the index holds — a version whose descriptor has a
// Go member — at the heads the light reads use, where internal names win
// (findPackage). Paths are case-encoded (module.EscapePath).
//
//	GET /go/MODULE/@v/list            the allowed versions, one a line (no pseudo-versions)
//	GET /go/MODULE/@v/VERSION.info    {"Version", "Time"}: when it was appended
//	GET /go/MODULE/@v/VERSION.mod     go.mod's bytes
//	GET /go/MODULE/@v/VERSION.zip     the module zip
//	GET /go/MODULE/@latest            the highest allowed release's .info
//
// Unknown modules and versions are 404 with one line of text/plain; a
// version the server's policy refuses is left out of the list and
// @latest, and its .info and .zip are 403 with the rule (gate.go), its
// go.mod served (version selection reads it); @latest of a module whose
// every version is refused is 403 too. The .mod and
// .zip are checked against the descriptor as they are served: their
// SHA-256 and size every time, go.sum's h1: hashes once per blob. A
// version the index holds whose file the blob store lacks is 500, not
// 404: the go command would go on to the next GOPROXY entry.

// goVersion is one Go module version of a package.
type goVersion struct {
	version string // the cairn version (no "v")
	desc    *descriptor.Descriptor
	ref     blob.Ref  // the descriptor's
	time    time.Time // when the descriptor was appended
}

// goModules keeps each package's Go module versions by its PackageTree's
// Key (a tree id names its content: an entry never goes stale), and the
// blobs whose h1: hash was checked.
type goModules struct {
	mu      sync.Mutex
	byTree  map[string][]goVersion
	checked map[string]bool               // "sha256 h1:…" of blobs that hash to their h1
	retract map[string][]*modfile.Retract // by go.mod blob sha256: what it retracts
}

// maxGoModules bounds the kept module lists (they are read again).
const maxGoModules = 4096

func (m *goModules) get(key string) ([]goVersion, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs, ok := m.byTree[key]
	return vs, ok
}

func (m *goModules) put(key string, vs []goVersion) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byTree == nil || len(m.byTree) >= maxGoModules {
		m.byTree = map[string][]goVersion{}
	}
	m.byTree[key] = vs
}

func (m *goModules) isChecked(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checked[key]
}

func (m *goModules) setChecked(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checked == nil || len(m.checked) >= 1<<16 {
		m.checked = map[string]bool{}
	}
	m.checked[key] = true
}

func (m *goModules) retractions(sha string) ([]*modfile.Retract, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.retract[sha]
	return r, ok
}

func (m *goModules) setRetractions(sha string, r []*modfile.Retract) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.retract == nil || len(m.retract) >= maxGoModules {
		m.retract = map[string][]*modfile.Retract{}
	}
	m.retract[sha] = r
}

// goRequest is a GOPROXY request, parsed.
type goRequest struct {
	module  string // the module path, unescaped
	file    string // "list", "latest", "info", "mod" or "zip"
	version string // the Go version ("v1.0.0") of info, mod, zip
	query   string // the version asked for, when .info resolves it to version
}

// parseGoPath reads the path after /go/.
func parseGoPath(p string) (goRequest, error) {
	if m, ok := strings.CutSuffix(p, "/@latest"); ok {
		path, err := module.UnescapePath(m)
		return goRequest{module: path, file: "latest"}, err
	}
	i := strings.LastIndex(p, "/@v/")
	if i < 0 {
		return goRequest{}, fmt.Errorf("%q is not a GOPROXY path: want MODULE/@v/list, MODULE/@v/VERSION.info|.mod|.zip or MODULE/@latest", p)
	}
	path, err := module.UnescapePath(p[:i])
	if err != nil {
		return goRequest{}, err
	}
	rest := p[i+len("/@v/"):]
	if rest == "list" {
		return goRequest{module: path, file: "list"}, nil
	}
	dot := strings.LastIndex(rest, ".")
	if dot < 0 {
		return goRequest{}, fmt.Errorf("%q: want VERSION.info, .mod or .zip", rest)
	}
	ext := rest[dot+1:]
	if ext != "info" && ext != "mod" && ext != "zip" {
		return goRequest{}, fmt.Errorf("%q: want VERSION.info, .mod or .zip", rest)
	}
	v, err := module.UnescapeVersion(rest[:dot])
	if err != nil {
		return goRequest{}, err
	}
	if semver.Canonical(v) != v && semver.Canonical(v)+"+incompatible" != v {
		return goRequest{}, fmt.Errorf("%s@%s is not a canonical Go module version", path, v)
	}
	if err := module.Check(path, v); err != nil {
		// v3.2.0 of a module with no /v3 and no go.mod is its
		// v3.2.0+incompatible: a query .info resolves, as
		// proxy.golang.org does (go get MODULE@v3.2.0).
		if inc := v + "+incompatible"; ext == "info" && module.Check(path, inc) == nil {
			return goRequest{module: path, file: ext, version: inc, query: v}, nil
		}
		return goRequest{}, err
	}
	return goRequest{module: path, file: ext, version: v}, nil
}

// goGet serves GET /go/…: the GOPROXY protocol.
func (s *Server) goGet(w http.ResponseWriter, r *http.Request) {
	req, err := parseGoPath(r.PathValue("path"))
	if err != nil {
		httpError(w, http.StatusNotFound, "not found: %v", err)
		return
	}
	if err := module.CheckPath(req.module); err != nil {
		httpError(w, http.StatusNotFound, "not found: %v", err)
		return
	}
	if descriptor.CheckName(req.module) != nil {
		httpError(w, http.StatusNotFound, "not found: module %s is not a package name of this repository", req.module)
		return
	}
	ctx := r.Context()
	src, key, err := s.findPackage(ctx, req.module)
	var amb *index.AmbiguousError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if own := s.foldedName(ctx, req.module); own != "" && own != req.module {
			// 403, not 404: on 404 a GOPROXY list (cairn,direct) asks
			// its next entry, which may serve a look-alike of the
			// internal module under this spelling.
			s.log.Warn("a Go module asked for in another case than the one published", "asked", req.module, "published", own)
			httpError(w, http.StatusForbidden, "cairn: refused: module %s differs only in case from %s, which this repository publishes: names that differ only in case are one name here, and another module under this spelling would be a look-alike\nhint: require %s", req.module, own, own)
			return
		}
		httpError(w, http.StatusNotFound, "not found: module %s is not in this repository (a public module is brought in with: cairn import go %s@VERSION)", req.module, req.module)
		return
	case errors.As(err, &amb):
		httpError(w, http.StatusConflict, "%v", err)
		return
	case err != nil:
		httpError(w, http.StatusInternalServerError, "module %s: %v", req.module, err)
		return
	}
	versions, err := s.goVersions(ctx, src, req.module)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "module %s: %v", req.module, err)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	switch req.file {
	case "list", "latest":
		var allowed, refused, allowedRetracted []goVersion
		refusals := map[string]*Refusal{}
		retracted := s.goRetracted(ctx, req.module, versions)
		for _, v := range versions {
			isRetracted := gomod.Retracted(retracted, v.desc.Go.Version)
			if isRetracted && req.file != "list" {
				continue
			}
			j, err := s.judge(ctx, key, src, req.module, v.version, v.ref)
			if err != nil {
				httpError(w, http.StatusInternalServerError, "module %s: %v", req.module, err)
				return
			}
			switch refusedHere := j != nil && j.refusal != nil; {
			case isRetracted && !refusedHere:
				allowedRetracted = append(allowedRetracted, v)
			case isRetracted:
			case refusedHere:
				refused = append(refused, v)
				refusals[v.version] = j.refusal
			default:
				allowed = append(allowed, v)
			}
		}
		if req.file == "list" {
			// The versions retracted are listed when the go command reads
			// their retraction itself: when the latest version it is
			// shown is the latest held, whose go.mod declared them. It
			// then warns of them (go get, go list -m -u) and lists them
			// (go list -m -retracted), as with any proxy. When the policy
			// refuses that latest version, they are left out.
			shown := append(slices.Clone(allowed), allowedRetracted...)
			slices.SortFunc(shown, func(a, b goVersion) int { return semver.Compare(a.desc.Go.Version, b.desc.Go.Version) })
			if top := latestGo(shown); top != nil && top.version == latestGo(versions).version {
				allowed = shown
			}
			// Releases and pre-releases; pseudo-versions are not listed
			// (the GOPROXY protocol), but are served by name.
			var b strings.Builder
			for _, v := range allowed {
				if !module.IsPseudoVersion(v.desc.Go.Version) {
					b.WriteString(v.desc.Go.Version + "\n")
				}
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, b.String())
			return
		}
		latest := latestGo(allowed)
		if latest == nil && len(refused) > 0 {
			// Every version is refused: 403, not 404, on which a GOPROXY
			// list goes on to its next entry, around the policy.
			v := latestGo(refused)
			s.refuse(w, r, "go", req.module+"@"+v.desc.Go.Version, req.module, refusals[v.version])
			return
		}
		if latest == nil {
			httpError(w, http.StatusNotFound, "not found: module %s has no version this server offers", req.module)
			return
		}
		writeInfo(w, latest)
		return
	}
	var v *goVersion
	for i := range versions {
		if versions[i].desc.Go.Version == req.version {
			v = &versions[i]
		}
	}
	if v == nil && req.query != "" {
		httpError(w, http.StatusNotFound, "not found: %s@%s: %s is v0 or v1 (its path has no /%s), and this repository has no %s", req.module, req.query, req.module, semver.Major(req.query), req.version)
		return
	}
	if v == nil {
		httpError(w, http.StatusNotFound, "not found: %s@%s is not in this repository", req.module, req.version)
		return
	}
	j, err := s.judge(ctx, key, src, req.module, v.version, v.ref)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s@%s: %v", req.module, req.version, err)
		return
	}
	// A refused version's go.mod is served: the go command reads the
	// go.mod of every version a requirement names to select versions,
	// the one it will not build too (a dependency whose go.mod predates
	// graph pruning, go < 1.17, requiring a version the project has
	// moved past), and refusing it failed builds that never use that
	// version. Its code (.zip) and the queries that would choose it
	// (.info, list, @latest) stay refused.
	if j != nil && j.refusal != nil && req.file != "mod" {
		s.refuse(w, r, "go", req.module+"@"+req.version, req.module, j.refusal)
		return
	}
	s.countWarnings(r, "go", req.module+"@"+req.version, j)
	switch req.file {
	case "info":
		writeInfo(w, v)
	case "mod":
		s.goMod(w, r, v)
	case "zip":
		s.goZip(w, r, v)
	}
}

// foldedName is the name of the organisation's own module published on
// main that name case-folds onto: "" for none, for a public module main
// imported (its other spelling is public too, and an old dependency may
// need it from the next GOPROXY entry, as github.com/Sirupsen/logrus),
// or when main cannot be read (the 404 stands).
func (s *Server) foldedName(ctx context.Context, name string) string {
	c, err := s.repo.Catalog(ctx, index.MainRef)
	if err != nil {
		return ""
	}
	own, err := c.Folded(name)
	if err != nil || own == "" || imported(c, own, "") {
		return ""
	}
	return own
}

// imported tells whether the version of name published on c is imported
// from the public ecosystem (it carries an imported record): version if
// it is published, else the highest.
func imported(c *index.Catalog, name, version string) bool {
	versions, err := c.Versions(name)
	if err != nil || len(versions) == 0 {
		return false
	}
	if !slices.Contains(versions, version) {
		version = versions[len(versions)-1]
	}
	_, _, recs, err := c.Version(name, version)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(recs, func(rv index.RecordView) bool { return rv.Kind == string(record.Imported) })
}

// goVersions returns the Go module versions of a package, in semver
// order, read once per package tree.
func (s *Server) goVersions(ctx context.Context, src index.PackageTree, name string) ([]goVersion, error) {
	if vs, ok := s.goMods.get(src.Key()); ok {
		return vs, nil
	}
	line := index.MainRef
	if src.Upstream != nil {
		line = index.UpstreamRef(src.Upstream.Name)
	}
	c, err := s.repo.Catalog(ctx, line)
	if err != nil {
		return nil, err
	}
	views, err := c.Show(ctx, name, "")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var out []goVersion
	for _, v := range views {
		if v.Descriptor == nil || v.Descriptor.Go == nil {
			continue
		}
		gv := goVersion{version: v.Version, desc: v.Descriptor, ref: v.Ref}
		// The descriptor is appended with its first record (authored,
		// imported): the earliest record's time is the version's.
		for _, rec := range v.Records {
			if gv.time.IsZero() || rec.Time.Before(gv.time) {
				gv.time = rec.Time
			}
		}
		// A version imported from the public ecosystem was made when
		// its upstream says (the .info it was fetched with), not when
		// it was brought in.
		for _, rec := range v.Records {
			if rec.Record == nil {
				continue
			}
			if p, ok := rec.Record.Predicate.(record.ImportedPredicate); ok && p.Released != nil {
				gv.time = *p.Released
			}
		}
		out = append(out, gv)
	}
	semverSort(out)
	s.goMods.put(src.Key(), out)
	return out, nil
}

// semverSort orders Go versions as semver does.
func semverSort(vs []goVersion) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && semver.Compare(vs[j-1].desc.Go.Version, vs[j].desc.Go.Version) > 0; j-- {
			vs[j-1], vs[j] = vs[j], vs[j-1]
		}
	}
}

// latestGo is the highest release of vs (in semver order), else the
// highest pre-release; nil for none.
func latestGo(vs []goVersion) *goVersion {
	for i := len(vs) - 1; i >= 0; i-- {
		if semver.Prerelease(vs[i].desc.Go.Version) == "" {
			return &vs[i]
		}
	}
	if len(vs) > 0 {
		return &vs[len(vs)-1]
	}
	return nil
}

// goRetracted returns what the module's author retracted (go.mod's
// retract directives) in the go.mod the go command reads them from, its
// latest version's (latestGo), of every version held: one the policy
// refuses too. The go command reads them from the latest version it is
// shown, so a refused latest that retracts a version below it would
// leave that version offered as latest, its retraction unseen. A go.mod
// that cannot be read retracts nothing (logged): the versions are
// offered as the go command would see them, the policy still judging
// each.
func (s *Server) goRetracted(ctx context.Context, module string, versions []goVersion) []*modfile.Retract {
	latest := latestGo(versions)
	if latest == nil {
		return nil
	}
	ref, ok := goArtifact(latest.desc, descriptor.KindGoMod)
	if !ok {
		return nil
	}
	if r, ok := s.goMods.retractions(ref.SHA256); ok {
		return r
	}
	data, err := s.readGoMod(ctx, ref)
	var f *modfile.File
	if err == nil {
		f, err = modfile.ParseLax("go.mod", data, nil)
	}
	if err != nil {
		s.log.Warn("a Go module's retractions are not read: its versions are offered as they are", "module", module, "version", latest.desc.ID(), "err", err)
		return nil
	}
	s.goMods.setRetractions(ref.SHA256, f.Retract)
	return f.Retract
}

// readGoMod reads a go.mod blob, verified against its digest while read.
func (s *Server) readGoMod(ctx context.Context, ref blob.Ref) ([]byte, error) {
	if err := s.fetchBlob(ctx, ref); err != nil {
		return nil, err
	}
	rc, err := s.blobs.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// goInfo is the .info document of the GOPROXY protocol.
type goInfo struct {
	Version string
	Time    time.Time
}

func writeInfo(w http.ResponseWriter, v *goVersion) {
	t := v.time
	if pt, err := module.PseudoVersionTime(v.desc.Go.Version); err == nil {
		// A pseudo-version names its commit's time: the go command
		// reads the two as one, and one that contradicts it is wrong.
		t = pt
	}
	body, _ := json.Marshal(goInfo{Version: v.desc.Go.Version, Time: t.UTC()})
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

// goArtifact returns the artifact of a Go descriptor of kind.
func goArtifact(d *descriptor.Descriptor, kind string) (blob.Ref, bool) {
	for _, a := range d.Artifacts {
		if a.Kind == kind {
			return a.Ref, true
		}
	}
	return blob.Ref{}, false
}

// goMod serves a version's go.mod: its bytes as the descriptor pins them
// (SHA-256 and size, checked while read), as its mod_sum hashes, and
// declaring its module path (gomod.CheckFiles).
func (s *Server) goMod(w http.ResponseWriter, r *http.Request, v *goVersion) {
	ref, _ := goArtifact(v.desc, descriptor.KindGoMod)
	data, err := s.readGoMod(r.Context(), ref)
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusInternalServerError, "%s: this server does not hold its go.mod (%s): its blob store lacks a blob its index names", v.desc.ID(), ref)
		return
	}
	if err == nil {
		key := ref.SHA256 + " " + v.desc.Go.ModSum + " " + v.desc.Go.Module + "@" + v.desc.Go.Version
		if !s.goMods.isChecked(key) {
			if err = gomod.CheckFiles(v.desc, "", data); err == nil {
				s.goMods.setChecked(key)
			}
		}
	}
	if err != nil {
		s.log.Error("a Go module file does not match its descriptor: not served", "version", v.desc.ID(), "err", err)
		httpError(w, http.StatusInternalServerError, "%s: go.mod not served: %v", v.desc.ID(), err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(data)
}

// goZip serves a version's module zip: its h1: and module@version
// checked once per blob, and every copy streamed through verification
// of its SHA-256 and size (sendZip). The go command takes a module the
// checksum database does not know (GONOSUMDB) on the proxy's word, so a
// file changed on the server's disk is never served whole, not even
// after it was served right before.
func (s *Server) goZip(w http.ResponseWriter, r *http.Request, v *goVersion) {
	ref, _ := goArtifact(v.desc, descriptor.KindSource)
	err := s.fetchBlob(r.Context(), ref)
	if err == nil && s.fsBlobs == nil {
		s.goZipStored(w, r, v, ref)
		return
	}
	var f *os.File
	if err == nil {
		f, err = s.fsBlobs.OpenFile(ref.SHA256)
	}
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusInternalServerError, "%s: this server does not hold its zip (%s): its blob store lacks a blob its index names", v.desc.ID(), ref)
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s: zip: %v", v.desc.ID(), err)
		return
	}
	defer f.Close()
	key := ref.SHA256 + " " + v.desc.Go.Sum + " " + v.desc.Go.Module + "@" + v.desc.Go.Version
	if !s.goMods.isChecked(key) {
		if err := checkZipFile(f, ref, v.desc); err != nil {
			s.log.Error("a Go module file does not match its descriptor: not served", "version", v.desc.ID(), "err", err)
			httpError(w, http.StatusInternalServerError, "%s: zip not served: %v", v.desc.ID(), err)
			return
		}
		s.goMods.setChecked(key)
	}
	s.sendZip(w, r, v, ref, blob.VerifyReader(f, ref))
}

// sendZip sends a module zip checked before (its h1:), read through a
// verifying reader (blob.VerifyReader): a copy that is not the blob is
// cut before its last bytes.
func (s *Server) sendZip(w http.ResponseWriter, r *http.Request, v *goVersion, ref blob.Ref, rd io.Reader) {
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.FormatInt(ref.Size, 10))
	if r.Method == http.MethodHead {
		return
	}
	if err := copyVerified(w, rd); err != nil {
		s.log.Error("a Go module zip in the store is not its blob: its response cut before its last bytes", "version", v.desc.ID(), "err", err)
		panic(http.ErrAbortHandler)
	}
}

// goZipStored serves a version's module zip from a store that is not
// files (an object store), held: the first time, the zip is read into a
// temporary file, verified, checked as goZip checks it and served from
// there; then it is streamed through verification (sendZip). A Go
// module is not redirected to the store: the go command may take a
// module the checksum database does not know on the proxy's word.
func (s *Server) goZipStored(w http.ResponseWriter, r *http.Request, v *goVersion, ref blob.Ref) {
	key := ref.SHA256 + " " + v.desc.Go.Sum + " " + v.desc.Go.Module + "@" + v.desc.Go.Version
	rc, err := s.blobs.Open(r.Context(), ref)
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusInternalServerError, "%s: this server does not hold its zip (%s): its blob store lacks a blob its index names", v.desc.ID(), ref)
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s: zip: %v", v.desc.ID(), err)
		return
	}
	defer rc.Close()
	if s.goMods.isChecked(key) {
		s.sendZip(w, r, v, ref, rc)
		return
	}
	tmp, err := os.CreateTemp("", "cairn-goproxy-*.zip")
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%s: zip: %v", v.desc.ID(), err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err = io.Copy(tmp, rc); err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err == nil {
		err = checkZipFile(tmp, ref, v.desc)
	}
	if err != nil {
		s.log.Error("a Go module file does not match its descriptor: not served", "version", v.desc.ID(), "err", err)
		httpError(w, http.StatusInternalServerError, "%s: zip not served: %v", v.desc.ID(), err)
		return
	}
	s.goMods.setChecked(key)
	w.Header().Set("Content-Type", "application/zip")
	http.ServeContent(w, r, "", time.Time{}, tmp)
}

// fetchBlob makes sure the store holds ref: a blob it lacks (an
// upstream's, not asked for before) is fetched from the upstreams'
// mirrors, verified, and kept (Options.Fallback).
func (s *Server) fetchBlob(ctx context.Context, ref blob.Ref) error {
	ok, err := s.blobs.Stat(ctx, ref)
	if err != nil || ok {
		return err
	}
	if s.opts.Fallback == nil {
		return fmt.Errorf("blob %s: %w", ref, fs.ErrNotExist)
	}
	if err := s.opts.Fallback(ctx, ref.SHA256, ref.Size); err != nil {
		s.log.Warn("blob not found upstream", "sha256", ref.SHA256, "err", err)
		return fmt.Errorf("blob %s: %w", ref, fs.ErrNotExist)
	}
	return nil
}

// checkZipFile checks the zip in f against its digest and size, its
// descriptor's h1: and module@version (gomod.CheckFiles), and rewinds f.
func checkZipFile(f *os.File, ref blob.Ref, d *descriptor.Descriptor) error {
	got, err := blob.Digest(f)
	if err != nil {
		return err
	}
	if got != ref {
		return fmt.Errorf("the stored zip is sha256:%s (%d bytes), the descriptor pins sha256:%s (%d bytes)", got.SHA256, got.Size, ref.SHA256, ref.Size)
	}
	if err := gomod.CheckFiles(d, f.Name(), nil); err != nil {
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
