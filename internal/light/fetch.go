package light

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/translog"
)

// tileDeadline bounds one read of tiles or of an endpoint (an entry
// bundle) from a server, its retries included: torchwood's fetcher
// retries a 5xx, a 429 and a failed read four times, up to minutes
// apart, and a server that keeps failing would hold a lock that long.
var tileDeadline = 30 * time.Second

// The largest answers a tile read may take: a hash tile of 256 hashes;
// an entry bundle of 256 entries, each of the longest line with its
// length prefix. A longer answer (or one that inflates: answers are
// asked for as they are, never compressed) is no tile.
const (
	maxHashTile    = 256 * tlog.HashSize
	maxEntryBundle = 256 * (2 + translog.MaxEntry)
)

// tileHTTP is the client torchwood's fetchers read tiles with: c's, each
// answer asked for uncompressed and cut at the largest a tile can be,
// and a server's Retry-After not heeded (the fetcher would wait as long
// as it says: a day, say).
func (c *Client) tileHTTP() *http.Client {
	hc := c.http()
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: tileTransport{base}, CheckRedirect: hc.CheckRedirect, Jar: hc.Jar, Timeout: hc.Timeout}
}

type tileTransport struct{ base http.RoundTripper }

func (t tileTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Accept-Encoding", "identity") // no transparent gzip: a small answer cannot inflate
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Header.Del("Retry-After")
	limit := int64(maxHashTile)
	if strings.Contains(req.URL.Path, "/tile/entries/") || !strings.Contains(req.URL.Path, "/tile/") {
		limit = maxEntryBundle
	}
	if resp.ContentLength > limit {
		// Said at once, as a status the fetcher does not retry.
		resp.Body.Close()
		return &http.Response{StatusCode: http.StatusRequestEntityTooLarge, Status: fmt.Sprintf("%d an answer of %d bytes, more than any tile", http.StatusRequestEntityTooLarge, resp.ContentLength),
			Proto: resp.Proto, ProtoMajor: resp.ProtoMajor, ProtoMinor: resp.ProtoMinor, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: limit, limit: limit, url: req.URL.Redacted()}
	return resp, nil
}

// cappedBody is an answer that fails past limit bytes.
type cappedBody struct {
	io.ReadCloser
	left, limit int64
	url         string
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("GET %s: the answer is over %d bytes, more than any tile: %w", b.url, b.limit, errTooLarge)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

var errTooLarge = errors.New("answer too large")

// boundedTiles is a server's tile fetcher whose every read ends within
// tileDeadline.
type boundedTiles struct{ *torchwood.TileFetcher }

func (b boundedTiles) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	c, cancel := context.WithTimeout(ctx, tileDeadline)
	defer cancel()
	data, err := b.TileFetcher.ReadTiles(c, tiles)
	return data, unavailable(late(ctx, c, err))
}

func (b boundedTiles) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	c, cancel := context.WithTimeout(ctx, tileDeadline)
	defer cancel()
	data, err := b.TileFetcher.ReadEndpoint(c, path)
	return data, unavailable(late(ctx, c, err))
}

// ErrUnavailable is the parent of the errors of a read of tiles that the
// server did not answer (a status, the network, a deadline, a cancel):
// nothing arrived to check, so nothing is proved wrong either. Tiles
// that arrived and do not hash to the tree are a security error.
var ErrUnavailable = errors.New("the server did not serve the tiles")

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// notServed says whether a proof failed for want of tiles (not served,
// or offline not kept), not because the tiles read are not the tree's.
func notServed(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTileNotKept) || errors.Is(err, context.Canceled)
}

// late says so when a read's own deadline, not its caller's, ended it.
func late(parent, c context.Context, err error) error {
	if err != nil && parent.Err() == nil && errors.Is(c.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the server did not answer the read of its tiles within %s, retries included: %w", tileDeadline, err)
	}
	return err
}
