package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"cairn.dev/cairn/internal/blob"
)

// Serving blobs from a store that is not files on this machine (an
// object store: cairn init --blobs): where the store signs URLs, a GET
// is redirected to it, and the client verifies what it reads there, as it
// does everything; otherwise the bytes pass through this server, verified
// on their way, and an object changed behind cairn's back is refused,
// never served whole.

// urlSigner is a store that can send a client to the object store
// itself (blob.Bucket); errors.ErrUnsupported when it cannot.
type urlSigner interface {
	SignedURL(ctx context.Context, ref blob.Ref, expiry time.Duration) (string, error)
}

// sizeLooker is a store that tells a blob's size from its digest
// (blob.Bucket), for a GET that names no ?size=.
type sizeLooker interface {
	Lookup(ctx context.Context, hex string) (blob.Ref, error)
}

// redirectExpiry is how long a signed URL a redirect sends a client to
// stays valid: long enough to follow it, short enough that a URL that
// leaks outlives no policy change by much.
const redirectExpiry = 5 * time.Minute

// hdrNoStore is a redirect's Cache-Control: its target is signed for a
// few minutes, and the server's policy may change its answer.
var hdrNoStore = []string{"no-store"}

// serveStored answers GET and HEAD /blobs/sha256/HEX from a store that
// is not files, blobGet's checks (the policy's gate) passed and its
// headers set. A small blob is read whole, verified and kept in memory
// (descriptors: most requests); a larger one is redirected to the store
// when it signs URLs (unless Options.NoBlobRedirect), and streamed through
// verification otherwise.
func (s *Server) serveStored(w http.ResponseWriter, r *http.Request, hex string) {
	h := w.Header()
	ref, err := s.storedRef(r, hex)
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
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == h.Get("Etag") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		h["Content-Length"] = []string{strconv.FormatInt(ref.Size, 10)}
		w.WriteHeader(http.StatusOK)
		return
	}
	if ref.Size <= smallBlob {
		data, err := blob.ReadAll(r.Context(), s.blobs, ref)
		if err != nil {
			s.storedFailed(w, ref, err)
			return
		}
		s.small.put(hex, data)
		serveHeld(w, r, data)
		return
	}
	if signer, ok := s.blobs.(urlSigner); ok && !s.opts.NoBlobRedirect {
		u, err := signer.SignedURL(r.Context(), ref, redirectExpiry)
		if err == nil {
			delete(h, "Etag")
			delete(h, "Content-Type")
			h["Cache-Control"] = hdrNoStore
			http.Redirect(w, r, u, http.StatusTemporaryRedirect)
			return
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			s.log.Warn("blob store: no signed URL, the bytes are served through", "sha256", hex, "err", err)
		}
	}
	rc, err := s.blobs.Open(r.Context(), ref)
	if err != nil {
		s.storedFailed(w, ref, err)
		return
	}
	defer rc.Close()
	h["Content-Length"] = []string{strconv.FormatInt(ref.Size, 10)}
	w.WriteHeader(http.StatusOK)
	if err := copyVerified(w, rc); err != nil {
		s.log.Error("blob store: the stored object is not the blob: its response cut before its last bytes", "sha256", hex, "err", err)
		panic(http.ErrAbortHandler) // the client sees the connection cut, short of Content-Length
	}
}

// storedRef is the blob a request asks for, as the store holds it: its
// ?size= if given, or the size the store knows. A blob the store lacks
// is fetched from upstream first (Options.Fallback), as from files.
func (s *Server) storedRef(r *http.Request, hex string) (blob.Ref, error) {
	find := func() (blob.Ref, error) {
		if v := r.URL.Query().Get("size"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return blob.Ref{}, fmt.Errorf("size %q: want a number of bytes ≥ 0", v)
			}
			ref := blob.Ref{SHA256: hex, Size: n}
			ok, err := s.blobs.Stat(r.Context(), ref)
			if err == nil && !ok {
				err = fmt.Errorf("not held with size %d: %w", n, fs.ErrNotExist)
			}
			return ref, err
		}
		if l, ok := s.blobs.(sizeLooker); ok {
			return l.Lookup(r.Context(), hex)
		}
		return blob.Ref{}, fmt.Errorf("this server's store needs the blob's size: ask for /blobs/sha256/%s?size=N: %w", hex, fs.ErrNotExist)
	}
	ref, err := find()
	if !errors.Is(err, fs.ErrNotExist) || s.opts.Fallback == nil {
		return ref, err
	}
	if err := s.fetchMissing(r, hex); err != nil {
		return blob.Ref{}, err
	}
	return find()
}

// storedFailed answers a read of the store that failed: a blob whose
// object is not its bytes is a security error, logged with its evidence.
func (s *Server) storedFailed(w http.ResponseWriter, ref blob.Ref, err error) {
	h := w.Header()
	delete(h, "Etag")
	delete(h, "Cache-Control")
	if errors.Is(err, blob.ErrMismatch) {
		s.log.Error("blob store: the stored object is not the blob: not served", "sha256", ref.SHA256, "err", err)
		httpError(w, http.StatusInternalServerError, "blob sha256:%s: not served: the store's copy is not the blob (changed behind the server's back): %v", ref.SHA256, err)
		return
	}
	code := http.StatusInternalServerError
	if errors.Is(err, fs.ErrNotExist) {
		code = http.StatusNotFound
	}
	httpError(w, code, "blob sha256:%s: %v", ref.SHA256, err)
}

// copyVerified copies a verifying reader (blob.VerifyReader) to w,
// holding back each chunk until the next read succeeds: the last bytes
// are written only once the whole blob verified, so bytes that are not
// the blob never reach a client whole. It returns the reader's error
// (a *blob.MismatchError) with the last chunk unwritten.
func copyVerified(w io.Writer, r io.Reader) error {
	bufs := [2][]byte{make([]byte, 128<<10), make([]byte, 128<<10)}
	var held []byte
	for i := 0; ; i ^= 1 {
		n, err := io.ReadFull(r, bufs[i])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return err
		}
		if len(held) > 0 {
			if _, werr := w.Write(held); werr != nil {
				return werr
			}
		}
		held = bufs[i][:n]
		if err != nil { // the end, verified
			if len(held) > 0 {
				_, err := w.Write(held)
				return err
			}
			return nil
		}
	}
}
