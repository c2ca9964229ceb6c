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
	"strings"
	"time"

	"cairn.dev/cairn/internal/keys"
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
	Signer keys.Signer // signs uploads; a key the server's root granted a publish or certify scope
}

var _ Store = (*HTTP)(nil)

func (h *HTTP) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return transport.Client()
}

// String returns the mirror's URL, which a chain's errors name.
func (h *HTTP) String() string { return h.URL }

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
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.ContentLength == ref.Size, nil
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("HEAD %s: %s", h.url(ref), resp.Status)
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
	body := io.LimitReader(r, ref.Size)
	if ref.Size == 0 {
		// A request body of length 0 is sent without Content-Length
		// unless it is NoBody.
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, h.url(ref), body)
	if err != nil {
		return err
	}
	req.ContentLength = ref.Size
	req.Header.Set(HeaderKey, keys.ID(h.Signer.Public()))
	req.Header.Set(HeaderTime, now.Format(time.RFC3339))
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := h.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return responseError(resp, ref)
	}
	return nil
}

// ErrRefused is the parent of errors a server answers an upload with.
var ErrRefused = errors.New("refused by the server")

func responseError(resp *http.Response, ref Ref) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(msg))
	where := resp.Request.Method + " " + resp.Request.URL.Redacted()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("blob %s: %s: %w", ref, where, fs.ErrNotExist)
	case http.StatusForbidden, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %s: %s: %s", ErrRefused, where, resp.Status, text)
	}
	return fmt.Errorf("%s: %s: %s", where, resp.Status, text)
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
