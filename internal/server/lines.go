package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"

	"filippo.io/torchwood"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
)

// An organisation's server follows upstream lines (index.UpstreamLine:
// each upstream's main, verified against the upstream's own
// introduction, with its own transparency log). With
// Options.UpstreamCheckpoint it serves each line's log under
// /upstreams/UP/ as main's is served under /: the upstream's own signed
// checkpoint (the one the last sync checked) at
// /upstreams/UP/log/checkpoint, its tiles at /upstreams/UP/log/tile/…,
// and light reads at /upstreams/UP/api/v1/log/subject (and subjects, in
// batches). A light client
// of the organisation reads an upstream's packages there, pinned by the
// introduction of the organisation's declaration (docs/transparency.md,
// "Upstream lines").

// lineView returns an upstream line's log at its verified head, the
// upstream's signed checkpoint of that tree and the key that signed it.
// fs.ErrNotExist: no such upstream followed, never synced, or no
// checkpoint kept.
func (s *Server) lineView(ctx context.Context, name string) (logView, []byte, string, error) {
	if s.opts.UpstreamCheckpoint == nil {
		return logView{}, nil, "", fmt.Errorf("this server serves no upstream lines: %w", fs.ErrNotExist)
	}
	ups, err := s.repo.Followed(ctx)
	if err != nil {
		return logView{}, nil, "", err
	}
	var u *index.Upstream
	for _, f := range ups {
		if f.Name == name {
			u = f
		}
	}
	if u == nil {
		return logView{}, nil, "", fmt.Errorf("this repository follows no upstream %q: %w", name, fs.ErrNotExist)
	}
	line := s.repo.UpstreamLine(u)
	if head, _, err := line.VerifiedHead(); err != nil {
		return logView{}, nil, "", err
	} else if head == "" {
		return logView{}, nil, "", fmt.Errorf("upstream %s was never synced here: %w", name, fs.ErrNotExist)
	}
	// Brings the line's log to its verified head (nothing to replay).
	if _, err := s.repo.VerifyLine(ctx, line, false); err != nil {
		return logView{}, nil, "", fmt.Errorf("upstream %s: %w", name, err)
	}
	note, key, err := s.opts.UpstreamCheckpoint(ctx, u)
	if err != nil {
		return logView{}, nil, "", fmt.Errorf("upstream %s's checkpoint: %w", name, err)
	}
	st, err := s.repo.StoreOf(line)
	if err != nil {
		return logView{}, nil, "", fmt.Errorf("upstream %s's transparency log: %w", name, err)
	}
	v, err := viewOf(st)
	if err != nil {
		return v, nil, "", err
	}
	v.tiles = "upstreams/" + name + "/"
	c, err := checkpoint.Claimed(note)
	if err != nil {
		return logView{}, nil, "", fmt.Errorf("upstream %s's checkpoint: %w", name, err)
	}
	if c.Size != v.Size || c.Root != v.Root || c.Head != v.Head {
		// A sync between the two reads: the next request sees both moved.
		return logView{}, nil, "", fmt.Errorf("upstream %s: the checkpoint kept (%d leaves, head %.12s) is not of the line's log (%d leaves, head %.12s): a sync is under way, try again", name, c.Size, c.Head, v.Size, v.Head)
	}
	return v, note, key, nil
}

// lineError answers an error of reading a tree to serve: 404 for what is
// not served (fs.ErrNotExist: a line never synced), else 503.
func lineError(w http.ResponseWriter, err error) {
	w.Header().Set("Cache-Control", "no-store")
	if errors.Is(err, ErrBehind) {
		w.Header().Set("Retry-After", "1")
	}
	if errors.Is(err, fs.ErrNotExist) {
		httpError(w, http.StatusNotFound, "%v", err)
		return
	}
	httpError(w, http.StatusServiceUnavailable, "%v", err)
}

// lineCheckpoint serves GET /upstreams/UP/log/checkpoint: the upstream's
// signed checkpoint (with the cosignatures it came with) of the line's
// verified tree, and the key that signed it as the checkpoint's hint.
func (s *Server) lineCheckpoint(w http.ResponseWriter, r *http.Request) {
	_, note, key, err := s.lineView(r.Context(), r.PathValue("up"))
	if err != nil {
		lineError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(CheckpointKeyHeader, key)
	w.Write(note)
}

// lineTile serves GET /upstreams/UP/log/tile/…: the line's tiles, as
// logTile serves main's.
func (s *Server) lineTile(w http.ResponseWriter, r *http.Request) {
	path := "tile/" + r.PathValue("path")
	t, err := torchwood.ParseTilePath(path)
	if err != nil || t.H != torchwood.TileHeight || torchwood.TilePath(t) != path {
		httpError(w, http.StatusNotFound, "%s: not a tile path (C2SP tlog-tiles: tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>])", path)
		return
	}
	v, _, _, err := s.lineView(r.Context(), r.PathValue("up"))
	if err != nil {
		lineError(w, err)
		return
	}
	if !tileWithin(t, v.Size) {
		httpError(w, http.StatusNotFound, "%s: past the served tree of %d leaves", path, v.Size)
		return
	}
	cache := s.tileCache(path)
	data := cache.get(v.tiles + path)
	if data == nil {
		if data, err = v.store.ReadTile(path); errors.Is(err, fs.ErrNotExist) {
			httpError(w, http.StatusNotFound, "%s: %v", path, err)
			return
		} else if err != nil {
			httpError(w, http.StatusInternalServerError, "%s: %v", path, err)
			return
		}
		cache.put(v.tiles+path, data)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", immutable)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// lineSubject serves GET /upstreams/UP/api/v1/log/subject?s=SUBJECT[&size=N]:
// a subject of the line's map, as logSubject serves main's (a size other
// than the line's: 410 Gone).
func (s *Server) lineSubject(w http.ResponseWriter, r *http.Request) {
	subject, size, ok := subjectAsked(w, r)
	if !ok {
		return
	}
	v, err := s.lineAt(r.Context(), r.PathValue("up"), size)
	if err != nil {
		readError(w, err)
		return
	}
	s.answerSubject(w, r, v, subject)
}

// lineAt returns an upstream line's log at its verified head if size is
// its size or -1, else a *GoneError: a line is answered at the tree of
// the upstream's checkpoint its last sync kept, only.
func (s *Server) lineAt(ctx context.Context, name string, size int64) (logView, error) {
	v, _, _, err := s.lineView(ctx, name)
	if err == nil && size >= 0 && size != v.Size {
		return logView{}, &GoneError{Size: size, Served: []int64{v.Size}}
	}
	return v, err
}

// lineSubjects serves POST /upstreams/UP/api/v1/log/subjects: subjects
// of the line's map in one answer, as logSubjects serves main's.
func (s *Server) lineSubjects(w http.ResponseWriter, r *http.Request) {
	s.answerSubjects(w, r, func(size int64) (logView, error) {
		return s.lineAt(r.Context(), r.PathValue("up"), size)
	})
}
