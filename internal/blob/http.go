package blob

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cairn.dev/cairn/internal/transport"
)

// HTTP is a blob store on a cairn server (or any mirror that serves
// /blobs/sha256/HEX). What it returns is verified as it is read: a
// mirror that sends other bytes, or more than the size, is cut off with a
// *MismatchError. Put uploads, signed by Signer.
type HTTP struct {
	URL string // the server's base URL
	// Client defaults to transport.Client(): connect and stall timeouts
	// on every request, so a mirror that trickles or never answers is
	// cut, and a chain tries the next one.
	Client *http.Client
	Signer Signer // signs uploads; a key the server's root granted a publish or certify scope
}

// Signer signs uploads: the key of a publisher or certifier, which the
// server looks up by KeyID in its index. blob owns this interface so that
// the store does not depend on how keys are kept; a keys.Signer becomes one
// through a two-line adapter in the caller.
//
// KeyID returns the key's OpenSSH SHA256 fingerprint ("SHA256:…"). Sign
// returns a raw 64-byte ed25519 signature over msg. Implementations are
// safe for concurrent use.
type Signer interface {
	KeyID() string
	Sign(msg []byte) ([]byte, error)
}

var _ Store = (*HTTP)(nil)

func (h *HTTP) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return transport.Client()
}

// String returns the mirror's URL, which a chain's errors name, without
// its credentials.
func (h *HTTP) String() string { return transport.RedactString(h.URL) }

func (h *HTTP) url(ref Ref) string {
	return fmt.Sprintf("%s/blobs/sha256/%s?size=%d", strings.TrimSuffix(h.URL, "/"), ref.SHA256, ref.Size)
}

// Open implements Store.
func (h *HTTP) Open(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ref.Check(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url(ref), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(resp, ref)
	}
	return struct {
		io.Reader
		io.Closer
	}{VerifyReader(resp.Body, ref), resp.Body}, nil
}

// Stat implements Store.
func (h *HTTP) Stat(ctx context.Context, ref Ref) (bool, error) {
	if err := ref.Check(); err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, h.url(ref), nil)
	if err != nil {
		return false, err
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.ContentLength == ref.Size, nil
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	}
	return false, responseError(resp, ref)
}

// Put implements Store: an upload signed by h.Signer over the digest,
// size and time. The server checks the signature and the key's grant, and
// the bytes against ref, before it stores anything.
func (h *HTTP) Put(ctx context.Context, ref Ref, r io.Reader) error {
	if err := ref.Check(); err != nil {
		return err
	}
	if h.Signer == nil {
		return fmt.Errorf("uploading to %s needs a signing key", h.URL)
	}
	now := time.Now().UTC().Truncate(time.Second)
	sig, err := h.Signer.Sign(UploadMessage(ref, now))
	if err != nil {
		return err
	}
	// The source is verified as it is sent, and its last byte held back
	// until the whole of it has matched ref: bytes that are not the blob
	// fail the request before the server has a whole body to store.
	var body io.Reader = &sealedReader{v: VerifyReader(r, ref), left: ref.Size}
	if ref.Size == 0 {
		if _, err := io.ReadAll(VerifyReader(r, ref)); err != nil {
			return err
		}
		// A request body of length 0 is sent without Content-Length
		// unless it is NoBody.
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, h.url(ref), body)
	if err != nil {
		return err
	}
	req.ContentLength = ref.Size
	req.Header.Set(HeaderKey, h.Signer.KeyID())
	req.Header.Set(HeaderTime, now.Format(time.RFC3339))
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := h.client().Do(req)
	if err != nil {
		var me *MismatchError
		if errors.As(err, &me) {
			return fmt.Errorf("upload to %s: %w", h.URL, me)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return responseError(resp, ref)
	}
	return nil
}

// sealedReader passes on the left bytes of a verifying reader but the
// last one only once the reader has ended in io.EOF, that is once the
// source has been hashed whole and found to be the blob and no longer.
// A source that is not the blob ends it with the *MismatchError.
type sealedReader struct {
	v    io.Reader // a VerifyReader
	left int64
	err  error
}

func (s *sealedReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.left > 1 {
		if int64(len(p)) >= s.left {
			p = p[:s.left-1]
		}
		n, err := s.v.Read(p)
		s.left -= int64(n)
		s.err = err // a VerifyReader ends in io.EOF only after the whole blob
		return n, err
	}
	// The last byte: read the verifier to its end (two bytes at most,
	// as it stops at size+1), which checks the digest and the size.
	rest, err := io.ReadAll(s.v)
	if err != nil {
		s.err = err
		return 0, err
	}
	if int64(len(rest)) != s.left {
		s.err = fmt.Errorf("blob upload: %d bytes at the end where %d were due", len(rest), s.left)
		return 0, s.err
	}
	s.err = io.EOF
	return copy(p, rest), io.EOF
}

// ErrRefused is the parent of errors a server answers an upload with.
var ErrRefused = errors.New("refused by the server")

// ErrBusy is the parent of a server's "busy" answers (429 Too Many
// Requests, 503 Service Unavailable): nothing is wrong with the request;
// send it again later, after the server's Retry-After if it gave one.
var ErrBusy = errors.New("server busy")

// StatusError is a server's answer other than success to a blob request.
// It unwraps to fs.ErrNotExist (404), ErrRefused (403, 413, 422),
// ErrBusy (429, 503), or, for an upload whose bytes the server found not
// to be the blob (422 with its evidence), to that *MismatchError: the
// family every Store's Put answers a mismatch with.
type StatusError struct {
	Method string // GET, HEAD, PUT, POST
	URL    string // redacted
	Code   int    // the HTTP status code
	Status string // the status line, "503 Service Unavailable"
	Body   string // what the server said, up to 4 KiB, trimmed
	// RetryAfter is how long the server asked to wait (its Retry-After,
	// in seconds or as a date); 0 when it did not say.
	RetryAfter time.Duration
	// Mismatch is the server's evidence when it refused an upload's
	// bytes as not the blob (422 with HeaderGot); nil otherwise.
	Mismatch *MismatchError
	ref      Ref
}

func (e *StatusError) Error() string {
	where := e.Method + " " + e.URL
	switch {
	case e.Code == http.StatusNotFound:
		return fmt.Sprintf("blob %s: %s: %v", e.ref, where, fs.ErrNotExist)
	case errors.Is(e, ErrRefused):
		return fmt.Sprintf("%v: %s: %s: %s", ErrRefused, where, e.Status, e.Body)
	case errors.Is(e, ErrBusy):
		s := fmt.Sprintf("%v: %s: %s: %s", ErrBusy, where, e.Status, e.Body)
		if e.RetryAfter > 0 {
			s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
		}
		return s
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Status, e.Body)
}

// Unwrap returns the family of the answer, or nil.
func (e *StatusError) Unwrap() error {
	if e.Mismatch != nil {
		return e.Mismatch
	}
	switch e.Code {
	case http.StatusNotFound:
		return fs.ErrNotExist
	case http.StatusForbidden, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge:
		return ErrRefused
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return ErrBusy
	}
	return nil
}

// Busy reports whether err is a server's busy answer (a *StatusError
// that is ErrBusy), and how long the server asked to wait before the
// next try (0 if it did not say).
func Busy(err error) (retryAfter time.Duration, ok bool) {
	var se *StatusError
	if errors.As(err, &se) && errors.Is(se, ErrBusy) {
		return se.RetryAfter, true
	}
	return 0, false
}

// maxRetryAfter bounds the Retry-After a StatusError keeps.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3): a
// number of seconds, or an HTTP date. It returns 0 for none, a date
// past, or a value it cannot read.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now).Round(time.Second), maxRetryAfter)
	}
	return 0
}

func responseError(resp *http.Response, ref Ref) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var mismatch *MismatchError
	if v := resp.Header.Get(HeaderGot); v != "" && resp.StatusCode == http.StatusUnprocessableEntity {
		mismatch, _ = parseGot(ref, v)
	}
	return &StatusError{
		Mismatch:   mismatch,
		Method:     resp.Request.Method,
		URL:        resp.Request.URL.Redacted(),
		Code:       resp.StatusCode,
		Status:     resp.Status,
		Body:       strings.TrimSpace(string(msg)),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		ref:        ref,
	}
}

// Batch fetches many blobs from a cairn server in one request (up to
// 1,280) and stores each into dst, verified. It returns the blobs the
// server did not send; a blob whose bytes do not match ends the stream
// with a *MismatchError and nothing of it stored.
func (h *HTTP) Batch(ctx context.Context, refs []Ref, dst Store) (missing []Ref, err error) {
	var body bytes.Buffer
	for _, r := range refs {
		fmt.Fprintf(&body, "sha256:%s %d\n", r.SHA256, r.Size)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(h.URL, "/")+"/blobs/batch", &body)
	if err != nil {
		return nil, err
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, responseError(resp, Ref{})
	}
	br := newLineReader(resp.Body)
	for _, ref := range refs {
		line, err := br.line()
		if err != nil {
			return nil, fmt.Errorf("batch from %s: stream ended before sha256:%s: %w", h.URL, ref.SHA256, err)
		}
		switch line {
		case fmt.Sprintf("sha256:%s missing", ref.SHA256):
			missing = append(missing, ref)
			continue
		case fmt.Sprintf("sha256:%s %d", ref.SHA256, ref.Size):
		default:
			return nil, fmt.Errorf("batch from %s: got %q where sha256:%s was due", h.URL, line, ref.SHA256)
		}
		if err := dst.Put(ctx, ref, io.LimitReader(br, ref.Size)); err != nil {
			return nil, err
		}
	}
	return missing, nil
}
