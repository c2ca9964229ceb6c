package light

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/translog"
)

// staticFirst reads tiles from a static copy of the server's log first
// (Client.TilesURL: what cairn log publish wrote, behind a CDN), and
// from the server when the copy lacks one (published later than the
// server signed) or serves one that is not the tree's. The copy is
// trusted no more than a mirror: its tiles are checked, here, against
// the tree the server claims (a tile changed on the copy, an HTML error
// page answered 200) and refused as the copy's fault, with a warning
// naming it; the server's tiles are then read and judged as if there
// were no copy. Either way, the tiles returned are checked again
// against the signed tree they are read for.
type staticFirst struct {
	static, server torchwood.TileReader
	url            string    // the copy's, for the warning
	tree           tlog.Tree // the tree the server claims
	warn           func(string)
	// confirmed holds the copy's tiles confirmed against tree (tlog.Tile:
	// []byte), which checks of later reads need again (the parents).
	confirmed *sync.Map
}

var _ torchwood.TileReader = staticFirst{}

// ErrBadCopy is the parent of the errors of a tile of the static copy
// that is not the tree's.
var ErrBadCopy = errors.New("the static copy of the log serves a tile that is not the server's tree's")

func (f staticFirst) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	data, err := f.static.ReadTiles(ctx, tiles)
	if err == nil {
		err = f.check(ctx, tiles, data)
		if err == nil {
			return data, nil
		}
		if errors.Is(err, ErrBadCopy) && ctx.Err() == nil {
			f.warn(fmt.Sprintf("%s: %v: read from the server instead; whoever keeps the copy should mend it (cairn log publish --check rewrites every tile it holds that differs from the log's)", f.url, err))
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return f.server.ReadTiles(ctx, tiles)
}

// errOutside says a tile lies past the tree checked against: it is read
// from the server, quietly (it cannot be judged here).
var errOutside = errors.New("past the tree")

// check checks tiles read from the copy against f.tree: the hash tiles
// with the tile hash reader (the tiles it needs besides, from the copy
// too), an entry bundle's leaves against the level-0 hashes it proves.
func (f staticFirst) check(ctx context.Context, tiles []tlog.Tile, data [][]byte) error {
	got := map[tlog.Tile][]byte{}
	var indexes []int64
	type bundle struct {
		tile  tlog.Tile
		data  []byte
		first int // in indexes
	}
	var bundles []bundle
	for i, t := range tiles {
		if t.L < 0 {
			n := t.N << uint(t.H)
			if n+int64(t.W) > f.tree.N {
				return errOutside
			}
			bundles = append(bundles, bundle{t, data[i], len(indexes)})
			for k := range int64(t.W) {
				indexes = append(indexes, tlog.StoredHashIndex(0, n+k))
			}
			continue
		}
		if len(data[i]) != t.W*tlog.HashSize {
			return fmt.Errorf("%w: %s has %d bytes, not %d", ErrBadCopy, torchwood.TilePath(t), len(data[i]), t.W*tlog.HashSize)
		}
		level := t.L * t.H
		n := t.N<<uint(t.H) + int64(t.W) - 1
		if (n+1)<<uint(level) > f.tree.N {
			return errOutside
		}
		got[t] = data[i]
		indexes = append(indexes, tlog.StoredHashIndex(level, n))
	}
	r := &checkedTiles{got: got, more: f.static, kept: f.confirmed, confirmed: map[tlog.Tile][]byte{}}
	hashes, err := torchwood.TileHashReaderWithContext(ctx, f.tree, r).ReadHashes(indexes)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errCopyLacks):
		return errOutside
	case errors.Is(err, ErrBadCopy):
		return err
	default:
		return fmt.Errorf("%w: %v", ErrBadCopy, err)
	}
	for i, t := range tiles {
		if t.L < 0 {
			continue
		}
		if !r.confirms(t, data[i]) {
			return fmt.Errorf("%w: %s has other hashes", ErrBadCopy, torchwood.TilePath(t))
		}
	}
	for _, b := range bundles {
		rest := b.data
		for k := range b.tile.W {
			var text []byte
			if text, rest, err = torchwood.ReadTileEntry(rest); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrBadCopy, torchwood.TilePath(b.tile), err)
			}
			if translog.LeafHash(text) != hashes[b.first+k] {
				return fmt.Errorf("%w: %s: entry %d is not the tree's leaf", ErrBadCopy, torchwood.TilePath(b.tile), k)
			}
		}
		if len(rest) != 0 {
			return fmt.Errorf("%w: %s: %d bytes past its %d entries", ErrBadCopy, torchwood.TilePath(b.tile), len(rest), b.tile.W)
		}
	}
	return nil
}

// checkedTiles serves the tile hash reader the copy's tiles being
// checked (got), reads any other it needs from those confirmed before
// (kept) or the copy (more), and keeps those it confirms.
type checkedTiles struct {
	got       map[tlog.Tile][]byte
	more      torchwood.TileReader
	kept      *sync.Map
	confirmed map[tlog.Tile][]byte
}

func (c *checkedTiles) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	var missing []tlog.Tile
	var at []int
	for i, t := range tiles {
		if b, ok := c.got[t]; ok {
			data[i] = b
			continue
		}
		if b, ok := c.kept.Load(t); ok {
			data[i] = b.([]byte)
			continue
		}
		missing, at = append(missing, t), append(at, i)
	}
	if len(missing) > 0 {
		more, err := c.more.ReadTiles(ctx, missing)
		if err != nil {
			// A copy published before the server's latest tree lacks
			// its newest tiles: read from the server, quietly.
			return nil, fmt.Errorf("%w: %v", errCopyLacks, err)
		}
		for j, i := range at {
			if t := missing[j]; t.L >= 0 && len(more[j]) != t.W*tlog.HashSize {
				return nil, fmt.Errorf("%w: %s has %d bytes, not %d", ErrBadCopy, torchwood.TilePath(t), len(more[j]), t.W*tlog.HashSize)
			}
			data[i] = more[j]
		}
	}
	return data, nil
}

// errCopyLacks says the static copy did not serve a tile a check
// needed (not published there yet, most often).
var errCopyLacks = errors.New("the static copy does not serve a tile")

func (c *checkedTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		c.confirmed[t] = data[i]
		c.kept.Store(t, data[i])
	}
}

func (c *checkedTiles) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	return nil, fmt.Errorf("%s: not read from a static copy", path)
}

// confirms reports whether data, tile t's, is what a confirmed tile
// holds: t itself, or a wider tile of the same place (t a prefix of it).
func (c *checkedTiles) confirms(t tlog.Tile, data []byte) bool {
	for u, b := range c.confirmed {
		if u.H == t.H && u.L == t.L && u.N == t.N && u.W >= t.W {
			return bytes.Equal(b[:t.W*tlog.HashSize], data)
		}
	}
	return false
}

func (f staticFirst) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// ReadEndpoint reads an endpoint from the server: the copy may lag it.
func (f staticFirst) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	return f.server.ReadEndpoint(ctx, path)
}

// tileSource returns where the client reads the tiles of tree (the one
// the server claims): server, or the static copy at TilesURL first.
func (c *Client) tileSource(server torchwood.TileReader, tree tlog.Tree) (torchwood.TileReader, error) {
	if c.TilesURL == "" {
		return server, nil
	}
	base := strings.TrimSuffix(c.TilesURL, "/")
	staticFetcher, err := torchwood.NewTileFetcher(base+"/", torchwood.WithHTTPClient(c.tileHTTP()), torchwood.WithUserAgent("cairn"))
	if err != nil {
		return nil, err
	}
	static := boundedTiles{staticFetcher}
	warn := c.Warn
	if warn == nil {
		warn = func(msg string) { slog.Warn(msg) }
	}
	return staticFirst{static: static, server: server, url: base, tree: tree, warn: warn, confirmed: &sync.Map{}}, nil
}
