package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/translog"
)

// view returns main's log and map at its verified head: what a
// checkpoint signs and the log's reads answer from. While main has not
// moved, it answers from the view it found last (main verified at that
// head, its log there), reading only main's ref.
func (s *Server) view(ctx context.Context) (logView, error) {
	if head, err := s.repo.Head(ctx, index.MainRef); err == nil {
		if v, ok := s.views.at(head); ok {
			return v, nil
		}
	}
	v, err := s.viewNow(ctx)
	if err == nil && v.Head != "" {
		s.views.put(v)
	}
	return v, err
}

// viewCache is the last view of main's log found (Server.view), by main's
// head: the log is a pure function of the history, and main's head names
// it, so a view of the same head is the same view. It answers only while
// that head is the one main was verified at last, so that a main moved
// back to it after it moved on is verified again (a rewritten history is
// refused), not answered from here.
type viewCache struct {
	mu       sync.Mutex
	v        logView
	verified string // main's head at its last verification ("": it failed)
}

// at returns the view kept of head, if any.
func (c *viewCache) at(head string) (logView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v, c.v.Head != "" && c.v.Head == head && c.verified == head
}

func (c *viewCache) put(v logView) {
	c.mu.Lock()
	c.v = v
	c.mu.Unlock()
}

// verifiedAt says main was just verified at head ("": it failed).
func (c *viewCache) verifiedAt(head string) {
	c.mu.Lock()
	c.verified = head
	c.mu.Unlock()
}

// viewNow verifies main and reads its log and map.
func (s *Server) viewNow(ctx context.Context) (logView, error) {
	res, err := s.verify(ctx)
	if err != nil {
		return logView{}, err
	}
	st, err := s.repo.StoreOf(s.repo.Main())
	if err != nil {
		return logView{}, fmt.Errorf("main's transparency log: %w", err)
	}
	v, err := viewOf(st)
	if err != nil {
		return v, err
	}
	if v.Head != res.Head {
		// A verification by another process moved the log past the head
		// this one verified; what the log covers is verified.
		if ok, _ := s.repo.IsAncestor(ctx, res.Head, v.Head); !ok {
			if behind, _ := s.repo.IsAncestor(ctx, v.Head, res.Head); behind {
				// The log's update was not saved (a full disk, say):
				// nothing is wrong with the history, only with the store.
				why := "its update was not saved"
				if res.Unsaved != nil {
					why += ": " + res.Unsaved.Error()
				}
				return logView{}, fmt.Errorf("main's transparency log is behind the verified head %s (it is at %s): %s", res.Head, v.Head, why)
			}
			return logView{}, fmt.Errorf("main's transparency log is at %s, which does not descend from the verified head %s", v.Head, res.Head)
		}
	}
	return v, nil
}

// viewOf returns the log and map of st as committed now.
func viewOf(st *translog.Store) (logView, error) {
	// The head read before and after the map: equal, the map is of it
	// (the log only grows).
	for range 3 {
		head := st.Head()
		m, err := st.Map()
		if err != nil {
			return logView{}, err
		}
		if st.Head() != head {
			continue
		}
		v := logView{Head: head, Size: m.Size, Root: m.Root, Map: m.Map.Root(), store: st, mapAt: m}
		if m.Size == 0 {
			return v, nil
		}
		// The checkpoint's head and map root are those of the tree's last
		// leaf, the head's map leaf, which must be the map's.
		text, err := st.Entry(m.Size - 1)
		if err != nil {
			return logView{}, err
		}
		me, err := translog.ParseMapEntry(text)
		if err != nil {
			return logView{}, fmt.Errorf("%w: the last leaf (%d) of %s is not a map leaf: %w", translog.ErrCorrupt, m.Size-1, st.Dir(), err)
		}
		if me.Commit != head || me.Root != v.Map {
			return logView{}, fmt.Errorf("%w: the last leaf (%d) of %s is the map leaf of %s with map root %x, but the log is at %s with map root %x", translog.ErrCorrupt, m.Size-1, st.Dir(), me.Commit, me.Root[:], head, v.Map[:])
		}
		v.Head, v.Map = me.Commit, me.Root
		return v, nil
	}
	return logView{}, fmt.Errorf("transparency log %s kept moving while it was read: try again", st.Dir())
}

// signed returns the checkpoint served now, of main's verified head, and
// the log and map it signs (see checkpointer.at).
func (s *Server) signed(ctx context.Context) (*checkpoint.Checkpoint, []byte, logView, error) {
	v, err := s.view(ctx)
	if err != nil {
		return nil, nil, v, err
	}
	return s.ckpt.atView(ctx, v, time.Now())
}

// served returns the log and map the log's reads answer from: those the
// latest checkpoint signed, as this process found them (a client reads
// the checkpoint first, which signs one of main's head if it moved), or,
// on a server that signs none, the log's at main's verified head.
func (s *Server) served(ctx context.Context) (logView, error) {
	if s.opts.Replica != nil {
		_, _, v, err := s.followedNow()
		return v, err
	}
	if s.ckpt == nil {
		return s.view(ctx)
	}
	if v, ok := s.ckpt.served(); ok {
		return v, nil
	}
	_, _, v, err := s.signed(ctx)
	return v, err
}

// GoneError is the answer to a light read at a tree the server no longer
// answers at (410 Gone): not the latest checkpoint's, nor one of the
// few before it it keeps (keptTrees). The client reads the checkpoint
// again and asks at its size.
type GoneError struct {
	Size   int64   // the tree asked for
	Served []int64 // the trees answered at, oldest first
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("this server answers light reads at the trees of its latest checkpoints (sizes %v), not at a tree of %d leaves: read /log/checkpoint again and ask at its size", e.Served, e.Size)
}

// sizeAsked returns the tree size a light read asks for (?size=N), or -1
// when it names none (the latest checkpoint's).
func sizeAsked(r *http.Request) (int64, error) {
	q := r.URL.Query().Get("size")
	if q == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != q {
		return 0, fmt.Errorf("size=%q: want a tree size, in decimal (the size line of the checkpoint the reads are of)", q)
	}
	return n, nil
}

// servedAt returns the log and map of the tree of size leaves (-1: the
// served one), if it is the latest checkpoint's or one of the few
// before it (keptTrees), else a *GoneError.
func (s *Server) servedAt(ctx context.Context, size int64) (logView, error) {
	if s.opts.Replica != nil {
		return s.replicaAt(ctx, size)
	}
	v, err := s.served(ctx)
	if err != nil {
		return v, fmt.Errorf("index: %v", err) // 503, whatever it wraps
	}
	if size < 0 || size == v.Size {
		return v, nil
	}
	gone := &GoneError{Size: size, Served: []int64{v.Size}}
	if s.ckpt != nil {
		if kv, ok := s.ckpt.viewAt(size); ok {
			return kv, nil
		}
		gone.Served = s.ckpt.keptSizes()
	}
	return logView{}, gone
}

// readError answers an error of finding the tree a light read is of:
// 400 for a malformed size, 410 for a tree no longer answered at
// (*GoneError), 404 for what is not served (fs.ErrNotExist: a line never
// synced), else 503.
func readError(w http.ResponseWriter, err error) {
	var ge *GoneError
	var se *sizeError
	switch {
	case errors.As(err, &se):
		httpError(w, http.StatusBadRequest, "%v", err)
	case errors.As(err, &ge):
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusGone, "%v", err)
	default:
		lineError(w, err)
	}
}

// sizeError is a malformed ?size=.
type sizeError struct{ err error }

func (e *sizeError) Error() string { return e.err.Error() }

// immutable is the Cache-Control of what never changes at its URL.
const immutable = "public, max-age=31536000, immutable"

// logTile serves GET /log/tile/<L>/<N>[.p/<W>] and
// /log/tile/entries/<N>[.p/<W>]: C2SP tlog-tiles hash tiles and entry
// bundles of the served tree; a tile past it is 404.
func (s *Server) logTile(w http.ResponseWriter, r *http.Request) {
	s.tileAt(w, r, "tile/"+r.PathValue("path"))
}

// tilePrefix is where the log's tiles are served.
const tilePrefix = "/log/tile/"

// tileRoute serves GET and HEAD /log/tile/… (logTile) ahead of next, the
// server's routes, without their matching: a tile read is most of what
// a busy log serves. A path the routes would redirect to its clean form
// (with //, /./ or /../) goes to them, as does every other request.
func (s *Server) tileRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(p, tilePrefix) && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
			s.tileAt(w, r, p[len("/log/"):]) // tile/…, without a copy
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tileAt answers logTile for the tile at /log/path (path: tile/…).
func (s *Server) tileAt(w http.ResponseWriter, r *http.Request, path string) {
	data, held, fail := s.tileFor(r.Context(), path, false)
	if fail != nil {
		if fail.noStore {
			w.Header().Set("Cache-Control", "no-store")
		}
		if fail.retry {
			w.Header().Set("Retry-After", "1")
		}
		httpError(w, fail.code, "%s", fail.msg)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrOctetStream
	h["Cache-Control"] = hdrImmutable
	h["Content-Length"] = held.length
	w.Write(data)
}

// tileFail is why a tile is not answered: the status and the message.
type tileFail struct {
	code           int
	msg            string
	noStore, retry bool // Cache-Control: no-store; Retry-After: 1
}

// tileFor returns the tile at path (tile/…) and what its answer needs,
// from memory or from the log, or why it is not answered. quick (the
// fast path) answers only a tile within the tree served now, and waits
// for nothing: a tile past it (a checkpoint to sign, a replica behind)
// is left to the route, which waits.
func (s *Server) tileFor(ctx context.Context, path string, quick bool) ([]byte, *heldTile, *tileFail) {
	// A tile never changes at its path (a partial one names its width),
	// so the hot ones are kept in memory, with the tile their path names
	// and their length: a tile read again is neither parsed nor measured.
	cache := s.tileCache(path)
	data, aux := cache.getAux(path) // main's tiles are kept by their path alone (logView.tiles)
	held, _ := aux.(*heldTile)
	var t tlog.Tile
	if held != nil {
		t = held.t
	} else {
		var err error
		t, err = torchwood.ParseTilePath(path)
		if err != nil || t.H != torchwood.TileHeight || torchwood.TilePath(t) != path {
			return nil, nil, &tileFail{code: http.StatusNotFound, msg: path + ": not a tile path (C2SP tlog-tiles: tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>])"}
		}
	}
	v, err := s.served(ctx)
	if quick && (err != nil || !tileWithin(t, v.Size)) {
		return nil, nil, &tileFail{code: http.StatusNotFound, msg: "past the tree served now"}
	}
	if err == nil && !tileWithin(t, v.Size) && s.ckpt != nil {
		// Past the checkpoint last signed: main may have moved since.
		_, _, v, err = s.signed(ctx)
	}
	if err == nil && !tileWithin(t, v.Size) && s.opts.Replica != nil {
		// Past the tree served: a client that read a newer checkpoint
		// from another replica waits for this one to catch up.
		if v, err = s.replicaTile(ctx, t); err == nil && !tileWithin(t, v.Size) {
			err = fmt.Errorf("%w: %s is past the tree of %d leaves it serves: ask again shortly", ErrBehind, path, v.Size)
		}
	}
	if err != nil {
		return nil, nil, &tileFail{code: http.StatusServiceUnavailable, msg: fmt.Sprintf("index: %v", err), noStore: true, retry: errors.Is(err, ErrBehind)}
	}
	if !tileWithin(t, v.Size) {
		return nil, nil, &tileFail{code: http.StatusNotFound, msg: fmt.Sprintf("%s: past the served tree of %d leaves", path, v.Size)}
	}
	if data == nil {
		if data, err = v.store.ReadTile(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &tileFail{code: http.StatusNotFound, msg: fmt.Sprintf("%s: %v", path, err)}
		} else if err != nil {
			return nil, nil, &tileFail{code: http.StatusInternalServerError, msg: fmt.Sprintf("%s: %v", path, err)}
		}
		cache.put(path, data)
	}
	if held == nil {
		held = &heldTile{t: t, length: []string{strconv.Itoa(len(data))}}
		cache.setAux(path, data, held)
	}
	return data, held, nil
}

// tileCache is the cache of the tile at path (tile/…): hash tiles and
// entry bundles are kept apart, each within its budget, so that the
// bundles (about 50 KB each, six times a hash tile) do not push out
// the hash tiles every proof reads, and the full bundles of a log of
// 100,000 records (33 MB) are all kept.
func (s *Server) tileCache(path string) *lightCache {
	if strings.HasPrefix(path, "tile/entries/") {
		return s.bundles
	}
	return s.tiles
}

// heldTile is what a tile's answer needs besides its bytes, kept with
// them in the tile cache (lightCache.setAux): the tile its path names,
// and the answer's Content-Length.
type heldTile struct {
	t      tlog.Tile
	length []string
}

// tileWithin says whether the tree of size leaves holds tile t (a hash
// tile at level t.L, or an entry bundle at t.L = -1), of its width.
func tileWithin(t tlog.Tile, size int64) bool {
	level := max(t.L, 0)
	if level > 7 || t.W < 1 || t.W > torchwood.TileWidth {
		return false
	}
	end := t.N*torchwood.TileWidth + int64(t.W)
	return end <= size>>(torchwood.TileHeight*level)
}

// LogFile is one file of the log in a light read: its leaf index, its
// entry line and its bytes.
type LogFile struct {
	Index   int64  `json:"index"`
	Entry   string `json:"entry"`
	Content []byte `json:"content"` // base64
}

// SubjectDoc is GET /api/v1/log/subject's answer: every file of a
// subject in the served tree, with the map proof against the served
// checkpoint's map root (docs/transparency.md, "Serving").
type SubjectDoc struct {
	Subject string            `json:"subject"`
	Size    int64             `json:"size"`
	Count   uint64            `json:"count"`
	Files   []LogFile         `json:"files"`
	Proof   translog.MapProof `json:"proof"`
}

// logSubject serves GET /api/v1/log/subject?s=SUBJECT[&size=N]: at the
// tree of size N if it is the latest checkpoint's or one of the few
// before it (else 410 Gone), at the latest checkpoint's without one.
func (s *Server) logSubject(w http.ResponseWriter, r *http.Request) {
	subject, size, ok := subjectAsked(w, r)
	if !ok {
		return
	}
	v, err := s.servedAt(r.Context(), size)
	if err != nil {
		readError(w, err)
		return
	}
	s.answerSubject(w, r, v, subject)
}

// subjectAsked reads a subject read's query, ?s=SUBJECT[&size=N]; if it
// is malformed, it answers 400 and returns false.
func subjectAsked(w http.ResponseWriter, r *http.Request) (subject string, size int64, ok bool) {
	subject = r.URL.Query().Get("s")
	if subject == "" || len(subject) > 1024 {
		httpError(w, http.StatusBadRequest, "name a subject: ?s=SUBJECT (such as \"package acme/fastjson\" or \"root\")")
		return "", 0, false
	}
	size, err := sizeAsked(r)
	if err != nil {
		readError(w, &sizeError{err})
		return "", 0, false
	}
	return subject, size, true
}

// answerSubject answers subject's document in the tree v.
func (s *Server) answerSubject(w http.ResponseWriter, r *http.Request, v logView, subject string) {
	body, err := s.subjectDoc(r.Context(), v, subject)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "subject %q: %v", subject, err)
		return
	}
	writeBody(w, body)
}

// MaxSubjects is how many subjects one POST /api/v1/log/subjects may
// ask for.
const MaxSubjects = 1000

// logSubjects serves POST /api/v1/log/subjects: the subjects named in
// the body, one a line (at most MaxSubjects), answered as
// {"size", "subjects": [SubjectDoc…]} in the order asked, every one of
// the same served tree (?size=N: that tree, as GET /api/v1/log/subject
// answers it), each with its own map proof: the answer of GET
// /api/v1/log/subject for each, in one response.
func (s *Server) logSubjects(w http.ResponseWriter, r *http.Request) {
	s.answerSubjects(w, r, func(size int64) (logView, error) {
		return s.servedAt(r.Context(), size)
	})
}

// answerSubjects answers a POST /api/v1/log/subjects from the tree view
// returns for the size asked (-1: none; its error answered by
// readError).
func (s *Server) answerSubjects(w http.ResponseWriter, r *http.Request, view func(size int64) (logView, error)) {
	size, err := sizeAsked(r)
	if err != nil {
		readError(w, &sizeError{err})
		return
	}
	var subjects []string
	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, MaxSubjects*1025))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if len(line) > 1024 {
			httpError(w, http.StatusBadRequest, "line %d: a subject of %d bytes: at most 1024", len(subjects)+1, len(line))
			return
		}
		if subjects = append(subjects, line); len(subjects) > MaxSubjects {
			httpError(w, http.StatusRequestEntityTooLarge, "more than %d subjects in one request: split it", MaxSubjects)
			return
		}
	}
	if err := sc.Err(); err != nil {
		httpError(w, http.StatusBadRequest, "reading the subjects asked for: %v", err)
		return
	}
	v, err := view(size)
	if err != nil {
		readError(w, err)
		return
	}
	// A client that asks for the compact encoding gets it; any other,
	// JSON.
	compact := translog.AcceptsSubjects(r.Header.Values("Accept"))
	// The documents first, then one body of their exact size: a body
	// grown document by document is copied again at every doubling.
	docs := make([][]byte, len(subjects))
	n := len(`{"size":,"subjects":[]}`) + 20 + len(subjects)
	for i, subject := range subjects {
		subjectDoc := s.subjectDoc
		if compact {
			subjectDoc = s.subjectCompact
		}
		doc, err := subjectDoc(r.Context(), v, subject)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "subject %q: %v", subject, err)
			return
		}
		docs[i] = doc
		n += len(doc)
	}
	if compact {
		body := translog.AppendSubjectsHeader(make([]byte, 0, n), v.Size, len(docs))
		for _, doc := range docs {
			body = append(body, doc...)
		}
		h := w.Header()
		h.Set("Content-Type", translog.SubjectsMedia)
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	body := make([]byte, 0, n)
	body = append(body, `{"size":`...)
	body = strconv.AppendInt(body, v.Size, 10)
	body = append(body, `,"subjects":[`...)
	for i, doc := range docs {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, doc...)
	}
	writeBody(w, append(body, "]}"...))
}

// maxKeptLeaf is the largest file of the log kept in memory.
const maxKeptLeaf = 64 << 10

// maxKeptSubject is the largest subject document kept in memory (the
// subject documents kept hold budgetSubjects bytes in all).
const maxKeptSubject = 1 << 20

// subjectDoc returns the JSON of subject's SubjectDoc in the tree v
// (without a final newline). It is a pure function of the tree, so it is
// kept, by subject and tree, for the next reader.
func (s *Server) subjectDoc(ctx context.Context, v logView, subject string) ([]byte, error) {
	key := fmt.Sprintf("%d %x %s", v.Size, v.Root[:], subject)
	if body := s.subjects.get(key); body != nil {
		return body, nil
	}
	value, leaves, _ := v.mapAt.Map.Get(subject)
	doc := SubjectDoc{Subject: subject, Size: v.Size, Count: value.Count, Files: make([]LogFile, 0, len(leaves)), Proof: v.mapAt.Map.Prove(subject)}
	for _, i := range leaves {
		f, err := s.logFile(ctx, v, i)
		if err != nil {
			return nil, err
		}
		doc.Files = append(doc.Files, f)
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if len(body) <= maxKeptSubject {
		s.subjects.put(key, body)
	}
	return body, nil
}

// subjectCompact returns subject's document in the tree v in the compact
// encoding of a batch (translog.AppendSubject), kept as subjectDoc keeps
// the JSON one.
func (s *Server) subjectCompact(ctx context.Context, v logView, subject string) ([]byte, error) {
	key := fmt.Sprintf("compact %d %x %s", v.Size, v.Root[:], subject)
	if body := s.subjects.get(key); body != nil {
		return body, nil
	}
	value, leaves, _ := v.mapAt.Map.Get(subject)
	doc := translog.SubjectDoc{Subject: subject, Size: v.Size, Count: value.Count, Files: make([]translog.SubjectFile, 0, len(leaves)), Proof: v.mapAt.Map.Prove(subject)}
	n := len(subject) + 64 + 40*len(doc.Proof.Siblings)
	for _, i := range leaves {
		f, err := s.logFile(ctx, v, i)
		if err != nil {
			return nil, err
		}
		doc.Files = append(doc.Files, translog.SubjectFile{Index: f.Index, Entry: []byte(f.Entry), Content: f.Content})
		n += len(f.Entry) + len(f.Content) + 16
	}
	body := translog.AppendSubject(make([]byte, 0, n), &doc)
	if len(body) <= maxKeptSubject {
		s.subjects.put(key, body)
	}
	return body, nil
}

// logRecord serves GET /api/v1/log/record/ID: a record's leaf in the
// served tree, for an inclusion proof the client computes from the tiles.
func (s *Server) logRecord(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, path, err := s.repo.Record(r.Context(), id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		httpError(w, http.StatusNotFound, "no record %s in this repository", id)
		return
	case err != nil:
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	v, err := s.served(r.Context())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
		return
	}
	subject, ok := index.SubjectOf(path)
	if !ok {
		httpError(w, http.StatusInternalServerError, "record %s at %s: no subject of the log's map", id, path)
		return
	}
	_, leaves, _ := v.mapAt.Map.Get(subject)
	for _, i := range leaves {
		text, err := s.entry(v, i)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "record %s: %v", id, err)
			return
		}
		e, err := translog.ParseEntry(text)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "record %s: leaf %d: %v", id, i, err)
			return
		}
		if e.Path != path {
			continue
		}
		f, err := s.logFile(r.Context(), v, i)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "record %s: %v", id, err)
			return
		}
		writeJSON(w, f)
		return
	}
	httpError(w, http.StatusNotFound, "record %s (%s) is not in the served tree of %d leaves yet", id, path, v.Size)
}

// logFile reads leaf i: its entry and the file's bytes at the commit that
// added it.
func (s *Server) logFile(ctx context.Context, v logView, i int64) (LogFile, error) {
	text, err := s.entry(v, i)
	if err != nil {
		return LogFile{}, err
	}
	e, err := translog.ParseEntry(text)
	if err != nil {
		return LogFile{}, fmt.Errorf("leaf %d: %w", i, err)
	}
	// A leaf's bytes never change (its entry names their sha256): the
	// small ones are kept, so that a subject read again at a new tree
	// reads only what was added.
	data := s.leaves.get(string(text))
	if data == nil {
		if data, err = s.repo.LeafFile(ctx, e.Commit, e.Path); err != nil {
			return LogFile{}, fmt.Errorf("leaf %d: %w", i, err)
		}
		if len(data) <= maxKeptLeaf {
			s.leaves.put(string(text), data)
		}
	}
	return LogFile{Index: i, Entry: string(text), Content: data}, nil
}

// entry returns the entry line of leaf i of the tree v, from its entry
// bundle as the tile reads serve it (kept in memory: the leaves of one
// subject are spread over many bundles, each read whole).
func (s *Server) entry(v logView, i int64) ([]byte, error) {
	if i < 0 || i >= v.Size {
		return nil, fmt.Errorf("entry %d: the served tree holds %d leaves: %w", i, v.Size, fs.ErrNotExist)
	}
	n := i / torchwood.TileWidth
	t := tlog.Tile{H: torchwood.TileHeight, L: -1, N: n, W: int(min(v.Size-n*torchwood.TileWidth, torchwood.TileWidth))}
	path := torchwood.TilePath(t)
	data := s.bundles.get(v.tiles + path)
	if data == nil {
		var err error
		if data, err = v.store.ReadTile(path); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		s.bundles.put(v.tiles+path, data)
	}
	rest := data
	for k := int64(0); ; k++ {
		e, r, err := torchwood.ReadTileEntry(rest)
		if err != nil {
			return nil, fmt.Errorf("entry %d: entry bundle %s: %w", i, path, err)
		}
		if k == i%torchwood.TileWidth {
			return e, nil
		}
		rest = r
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	writeBody(w, body)
}

// writeBody answers a JSON body (without its final newline).
func writeBody(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.Write(body)
	w.Write([]byte{'\n'})
}
