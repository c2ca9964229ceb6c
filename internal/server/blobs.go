package server

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
)

// MaxBatch is how many blobs one batch request may ask for.
const MaxBatch = 1280

// BatchContentType is the media type of a batch response: for each
// requested blob, in order, a line "sha256:HEX SIZE" followed by exactly
// SIZE bytes, or a line "sha256:HEX missing".
const BatchContentType = "application/vnd.cairn.blob-batch.v1"

// blobGet serves GET and HEAD /blobs/sha256/HEX: the stored file as it
// is, with Range, an ETag and immutable caching (a digest's bytes never
// change). A blob the store lacks is looked for upstream. From a store
// that is not files (an object store), see serveStored: a redirect to
// the store where it signs URLs, its bytes verified on their way through
// otherwise.
func (s *Server) blobGet(w http.ResponseWriter, r *http.Request) {
	hex := r.PathValue("hex")
	if !blob.IsDigest(hex) {
		httpError(w, http.StatusBadRequest, "%q is not a lowercase hex sha256", hex)
		return
	}
	if s.gate != nil {
		bv, err := s.blobVerdict(r.Context(), hex)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "blob sha256:%s: judging it by the server's policy: %v", hex, err)
			return
		}
		if bv.shadowed {
			httpError(w, http.StatusNotFound, "blob sha256:%s: %v", hex, shadowedError(bv.what))
			return
		}
		if bv.ref != nil {
			s.refuse(w, r, "blob", bv.what, bv.name, bv.ref)
			return
		}
		s.countWarnings(r, "blob", bv.what, bv.allowed)
	}
	h := w.Header()
	h["Etag"] = []string{`"sha256:` + hex + `"`}
	h["Cache-Control"] = hdrImmutable
	if s.gate != nil {
		h["Cache-Control"] = hdrNoCache // the bytes never change, the policy's verdict may
	}
	h["Content-Type"] = hdrOctetStream
	h["X-Content-Type-Options"] = hdrNosniff
	if data := s.heldBlob(hex); data != nil {
		serveHeld(w, r, data)
		return
	}
	if s.fsBlobs == nil {
		s.serveStored(w, r, hex)
		return
	}
	// Larger, or not stored here (then looked for upstream).
	f, err := s.openBlob(r, hex)
	if err != nil {
		delete(h, "Etag")
		delete(h, "Cache-Control")
		code := http.StatusInternalServerError
		if errors.Is(err, fs.ErrNotExist) {
			code = http.StatusNotFound
		}
		httpError(w, code, "blob sha256:%s: %v", hex, err)
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() <= smallBlob {
		// A small blob just fetched from upstream is kept in memory too.
		data := make([]byte, fi.Size())
		if _, err := io.ReadFull(f, data); err == nil {
			s.small.put(hex, data)
			serveHeld(w, r, data)
			return
		}
		f.Seek(0, io.SeekStart)
	}
	http.ServeContent(w, r, "", time.Time{}, f)
}

// Header values a handler sets as they are, one shared slice each: no
// allocation per response. net/http copies a response's header map before
// it writes it and never appends to a value in place, nor does cairn.
var (
	hdrImmutable   = []string{immutable}
	hdrNoCache     = []string{"no-cache"}
	hdrOctetStream = []string{"application/octet-stream"}
	hdrNosniff     = []string{"nosniff"}
	hdrBytes       = []string{"bytes"}
)

// serveHeld answers r with data, immutable bytes held in memory, exactly
// as http.ServeContent answers it (without a modification time: ranges,
// If-Match and If-None-Match against the ETag set), without its copies
// when r asks for the whole of it unconditionally, as most do.
func serveHeld(w http.ResponseWriter, r *http.Request, data []byte) {
	if r.Header["Range"] != nil || r.Header["If-Match"] != nil || r.Header["If-None-Match"] != nil {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		return
	}
	h := w.Header()
	h["Accept-Ranges"] = hdrBytes
	h["Content-Length"] = []string{strconv.Itoa(len(data))}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Write(data)
}

// smallBlob is the size up to which blobs are kept in memory once read
// (with the cache's 4,096 entries, at most 64 MiB).
const smallBlob = 16 << 10

// smallBufs are buffers of smallBlob+1 bytes, for readSmallBlob.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBlob+1); return &b }}

// readSmallBlob reads a stored blob of at most smallBlob bytes whole, to
// keep in memory: its bytes never change, and a later read costs no
// system call. One open, read and close, no os.File and no stat (a
// small blob past the memory cache is read so on every request). It
// reports false for a larger blob and for one it cannot read (one not
// stored here: openBlob looks for it upstream and says what is wrong).
// A larger blob so costs a second open, and a read of smallBlob+1 bytes
// it does not keep: little beside serving the rest of it.
func (s *Server) readSmallBlob(hex string) ([]byte, bool) {
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	n, err := s.fsBlobs.ReadFileInto(hex, *bp)
	if err != nil || n > smallBlob {
		return nil, false
	}
	return bytes.Clone((*bp)[:n]), true
}

// openBlob opens a stored blob, fetching it from the upstreams' mirrors
// (verified, then kept) when it is not stored here — unless versions name
// it and the server serves none of them (an upstream's under an internal
// name): those bytes are never fetched.
func (s *Server) openBlob(r *http.Request, hex string) (*os.File, error) {
	f, err := s.fsBlobs.OpenFile(hex)
	if !errors.Is(err, fs.ErrNotExist) || s.opts.Fallback == nil {
		return f, err
	}
	if err := s.fetchMissing(r, hex); err != nil {
		return nil, err
	}
	return s.fsBlobs.OpenFile(hex)
}

// fetchMissing fetches a blob the store lacks from the upstreams'
// mirrors (Options.Fallback, not nil), verified, into the store — unless
// versions name it and the server serves none of them. The size is the
// request's ?size=, if given. A blob not fetched wraps fs.ErrNotExist.
func (s *Server) fetchMissing(r *http.Request, hex string) error {
	var err error
	if s.gate == nil { // with a gate, blobGet asked blobVerdict
		served, named, err := s.servedArtifactOf(r.Context(), hex)
		if err != nil {
			return err
		}
		if len(served) == 0 && named != nil {
			return shadowedError(named.name + "@" + named.version)
		}
	}
	size := int64(-1)
	if v := r.URL.Query().Get("size"); v != "" {
		if size, err = strconv.ParseInt(v, 10, 64); err != nil || size < 0 {
			return fmt.Errorf("size %q: %w", v, fs.ErrNotExist)
		}
	}
	if err := s.opts.Fallback(r.Context(), hex, size); err != nil {
		// A blob no upstream refers to is simply not here (an upload's
		// HEAD asks first); an upstream that failed to give one is news.
		var fe *blob.FetchError
		if errors.As(err, &fe) || !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("blob not found upstream", "sha256", hex, "err", err)
		}
		return fmt.Errorf("blob sha256:%s: %w", hex, fs.ErrNotExist)
	}
	return nil
}

// shadowedError says that a blob is the artifact only of versions the
// server does not serve, what being the first of them.
func shadowedError(what string) error {
	return fmt.Errorf("an artifact only of versions this server does not serve (%s and any others: an upstream's under a name internal to this repository, or another line's); not fetched from upstream: %w", what, fs.ErrNotExist)
}

// blobBatch serves POST /blobs/batch: a body of lines "sha256:HEX SIZE"
// (up to MaxBatch), answered with every blob in one stream.
func (s *Server) blobBatch(w http.ResponseWriter, r *http.Request) {
	var refs []blob.Ref
	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, MaxBatch*100))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ref, err := parseRefLine(line)
		if err != nil {
			httpError(w, http.StatusBadRequest, "line %d: %v", len(refs)+1, err)
			return
		}
		refs = append(refs, ref)
		if len(refs) > MaxBatch {
			httpError(w, http.StatusRequestEntityTooLarge, "more than %d blobs in one batch: split the request", MaxBatch)
			return
		}
	}
	if err := sc.Err(); err != nil {
		httpError(w, http.StatusBadRequest, "reading the batch: %v", err)
		return
	}
	// The server's policy: an artifact only refused versions name, or
	// only versions the server does not serve, is answered missing (the
	// batch format has no refusal; GET /blobs/sha256/HEX of it says why).
	refused := map[string]bool{}
	for _, ref := range refs {
		if s.gate == nil {
			break
		}
		if refused[ref.SHA256] {
			continue
		}
		bv, err := s.blobVerdict(r.Context(), ref.SHA256)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "blob sha256:%s: judging it by the server's policy: %v", ref.SHA256, err)
			return
		}
		if bv.shadowed {
			refused[ref.SHA256] = true
		}
		if bv.ref != nil {
			refused[ref.SHA256] = true
			s.countRefusal(r, "blob", bv.what, bv.ref)
		}
		s.countWarnings(r, "blob", bv.what, bv.allowed)
	}
	w.Header().Set("Content-Type", BatchContentType)
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	for _, ref := range refs {
		if refused[ref.SHA256] {
			fmt.Fprintf(bw, "sha256:%s missing\n", ref.SHA256)
			continue
		}
		if s.fsBlobs == nil {
			rc, err := s.blobs.Open(r.Context(), ref)
			if err != nil {
				fmt.Fprintf(bw, "sha256:%s missing\n", ref.SHA256)
				continue
			}
			fmt.Fprintf(bw, "sha256:%s %d\n", ref.SHA256, ref.Size)
			err = copyVerified(bw, rc)
			rc.Close()
			if err != nil {
				// Its last bytes were held back: the client sees a short
				// stream, never the whole of other bytes.
				s.log.Error("batch: the store's object is not the blob: cut", "sha256", ref.SHA256, "err", err)
				return
			}
			continue
		}
		f, err := s.fsBlobs.OpenFile(ref.SHA256)
		if err != nil {
			fmt.Fprintf(bw, "sha256:%s missing\n", ref.SHA256)
			continue
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() != ref.Size {
			f.Close()
			fmt.Fprintf(bw, "sha256:%s missing\n", ref.SHA256)
			continue
		}
		fmt.Fprintf(bw, "sha256:%s %d\n", ref.SHA256, ref.Size)
		_, err = io.CopyN(bw, f, ref.Size)
		f.Close()
		if err != nil {
			s.log.Error("batch: blob cut short", "sha256", ref.SHA256, "err", err)
			return // the client sees a short stream and retries elsewhere
		}
	}
}

func parseRefLine(line string) (blob.Ref, error) {
	d, sz, ok := strings.Cut(line, " ")
	d, hasPrefix := strings.CutPrefix(d, "sha256:")
	n, err := strconv.ParseInt(sz, 10, 64)
	if !ok || !hasPrefix || err != nil || !blob.IsDigest(d) || n < 0 {
		return blob.Ref{}, fmt.Errorf("%q: want \"sha256:HEX SIZE\"", line)
	}
	return blob.Ref{SHA256: d, Size: n}, nil
}

// blobPut serves PUT /blobs/sha256/HEX: an upload signed by a key the
// root granted a publish or certify scope (artifacts, evidence), over the blob's digest, size and the
// time. The bytes are verified before they are stored; an upload that no
// record comes to reference is collected after the grace period.
func (s *Server) blobPut(w http.ResponseWriter, r *http.Request) {
	hex := r.PathValue("hex")
	ref := blob.Ref{SHA256: hex, Size: r.ContentLength}
	if !blob.IsDigest(hex) {
		httpError(w, http.StatusBadRequest, "%q is not a lowercase hex sha256", hex)
		return
	}
	if r.ContentLength < 0 {
		httpError(w, http.StatusLengthRequired, "an upload states its size in Content-Length")
		return
	}
	if r.ContentLength > s.opts.MaxUpload {
		httpError(w, http.StatusRequestEntityTooLarge, "blob of %d bytes: this server takes uploads up to %d bytes", r.ContentLength, s.opts.MaxUpload)
		return
	}
	holder, err := s.authorizeUpload(r, ref)
	if err != nil {
		httpError(w, http.StatusForbidden, "upload of sha256:%s refused: %v", hex, err)
		return
	}
	// Only an upload that writes the object is this server's to collect
	// (markUpload): one the store held already may be another index's, in
	// a bucket they share, or a referenced blob of this one. One the store
	// cannot tell about is counted as held: a blob never collected wastes
	// room, one collected wrongly breaks an index.
	held, err := s.blobs.Stat(r.Context(), ref)
	held = held || err != nil
	if err := s.blobs.Put(r.Context(), ref, http.MaxBytesReader(w, r.Body, ref.Size+1)); err != nil {
		var me *blob.MismatchError
		if errors.As(err, &me) {
			w.Header().Set(blob.HeaderGot, blob.GotHeader(me))
			httpError(w, http.StatusUnprocessableEntity, "%v", err)
			return
		}
		if errors.Is(err, ErrSlowClient) {
			w.Header().Set("Connection", "close")
			httpError(w, http.StatusRequestTimeout, "upload of sha256:%s cut: %v", hex, err)
			return
		}
		httpError(w, http.StatusInternalServerError, "storing sha256:%s: %v", hex, err)
		return
	}
	if err := s.markUpload(hex, !held); err != nil {
		s.log.Error("upload marker", "sha256", hex, "err", err)
	}
	s.metrics.uploads.Inc()
	s.log.Info("blob uploaded", "sha256", hex, "size", ref.Size, "holder", holder)
	w.WriteHeader(http.StatusCreated)
}

// authorizeUpload checks an upload's signature and that its key may
// publish or certify now (a certification's evidence is a blob too); it
// returns the key's holder.
func (s *Server) authorizeUpload(r *http.Request, ref blob.Ref) (string, error) {
	id, ts, sig64 := r.Header.Get(blob.HeaderKey), r.Header.Get(blob.HeaderTime), r.Header.Get(blob.HeaderSignature)
	if id == "" || ts == "" || sig64 == "" {
		return "", fmt.Errorf("unsigned: an upload carries %s, %s and %s headers (cairn push signs them with your key)", blob.HeaderKey, blob.HeaderTime, blob.HeaderSignature)
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", blob.HeaderTime, ts, err)
	}
	// Uploads and pushed commits are judged by one window of this
	// server's clock (cairn serve --max-clock-skew, SkewEnv).
	skew, err := clockSkew()
	if err != nil {
		return "", err
	}
	now := time.Now()
	if t.Before(now.Add(-skew)) || t.After(now.Add(skew)) {
		return "", fmt.Errorf("signed at %s, more than %s from this server's clock (%s)", ts, skew, now.UTC().Format(time.RFC3339))
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil {
		return "", fmt.Errorf("%s: %w", blob.HeaderSignature, err)
	}
	head, err := s.repo.Head(r.Context(), index.MainRef)
	if err != nil {
		return "", err
	}
	st, err := s.repo.State(r.Context(), head)
	if err != nil {
		return "", err
	}
	k, err := st.Key(id)
	if err != nil {
		return "", err
	}
	if k == nil {
		return "", fmt.Errorf("key %s is not granted in this repository", id)
	}
	if k.RevokedBy != "" {
		return "", fmt.Errorf("key %s was revoked (record %.16s)", id, k.RevokedBy)
	}
	if !ed25519.Verify(k.Pub, blob.UploadMessage(ref, t), sig) {
		return "", fmt.Errorf("the signature does not verify under key %s", id)
	}
	for _, g := range k.Active(now) {
		for _, sc := range g.Scopes {
			if sc.Action == "publish" || sc.Action == "certify" {
				return g.Holder, nil
			}
		}
	}
	return "", fmt.Errorf("key %s holds no active publish or certify scope", id)
}

// uploadsDir holds one empty file per upload not yet referenced, dated
// by its upload.
func (s *Server) uploadsDir() string { return filepath.Join(s.repo.LocalDir(), "uploads") }

// markUpload notes an upload of hex: written says it wrote the object.
// An upload that wrote nothing (the store held the blob) only renews the
// grace of one this server noted before: the collector deletes only
// objects this server wrote.
func (s *Server) markUpload(hex string, written bool) error {
	p := filepath.Join(s.uploadsDir(), hex)
	now := time.Now()
	if err := os.Chtimes(p, now, now); err == nil || !written {
		return nil
	}
	if err := os.MkdirAll(s.uploadsDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, nil, 0o644)
}
