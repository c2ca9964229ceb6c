package light

import (
	"context"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// staticFirst reads tiles from a static copy of the server's log first
// (Client.TilesURL: what cairn log publish wrote, behind a CDN), and
// from the server when the copy lacks one (published later than the
// server signed). Where a tile comes from changes nothing of its trust:
// every tile is checked against the signed tree it is read for.
type staticFirst struct {
	static, server torchwood.TileReader
}

var _ torchwood.TileReader = staticFirst{}

func (f staticFirst) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	if data, err := f.static.ReadTiles(ctx, tiles); err == nil {
		return data, nil
	} else if ctx.Err() != nil {
		return nil, err
	}
	return f.server.ReadTiles(ctx, tiles)
}

func (f staticFirst) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// ReadEndpoint reads an endpoint from the server: the copy may lag it.
func (f staticFirst) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	return f.server.ReadEndpoint(ctx, path)
}

// tileSource returns where the client reads its tiles: server, or the
// static copy at TilesURL first.
func (c *Client) tileSource(server *torchwood.TileFetcher) (torchwood.TileReader, error) {
	if c.TilesURL == "" {
		return server, nil
	}
	static, err := torchwood.NewTileFetcher(strings.TrimSuffix(c.TilesURL, "/")+"/", torchwood.WithHTTPClient(c.http()), torchwood.WithUserAgent("cairn"))
	if err != nil {
		return nil, err
	}
	return staticFirst{static: static, server: server}, nil
}
