package light

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/safefile"
)

// keptTiles is a view's tile reader: it keeps, in the client's StateDir,
// the tiles a hash reader confirmed against the view's tree (SaveTiles),
// and reads them from there before asking the server, so that a
// consistency proof computed online (a lock's older checkpoint against
// the one verified) can be computed again offline. They are kept by tree
// (size and root): a tile confirmed against one tree is never read for
// another (a fork's tiles differ from the honest log's at the same
// paths). Nothing kept is trusted: every tile read is checked again
// against the tree (torchwood.TileHashReaderWithContext). Every read of
// a view's tiles is for its own tree.
type keptTiles struct {
	dir    string               // StateDir/<introduction>.tiles/<tree>; "" keeps nothing
	server torchwood.TileReader // nil offline
}

var _ torchwood.TileReader = (*keptTiles)(nil)

// ErrTileNotKept is the parent of the errors of a proof offline that
// needs a tile this machine never read online.
var ErrTileNotKept = errors.New("a tile of the server's log this machine never read online")

// tiles returns the tile reader of a view of tree cp: server's (nil
// offline), with the tiles kept in StateDir for that tree.
func (c *Client) tiles(server torchwood.TileReader, cp checkpoint.Checkpoint) *keptTiles {
	t := &keptTiles{server: server}
	if c.StateDir != "" {
		t.dir = filepath.Join(c.StateDir, c.Introduction+".tiles", treeDir(cp))
	}
	return t
}

func (t *keptTiles) path(tile tlog.Tile) string {
	return filepath.Join(t.dir, filepath.FromSlash(torchwood.TilePath(tile)))
}

// ReadTiles reads each tile from those kept, else from the server.
func (t *keptTiles) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	var missing []tlog.Tile
	var at []int
	for i, tile := range tiles {
		if t.dir != "" {
			if b, err := os.ReadFile(t.path(tile)); err == nil {
				data[i] = b
				continue
			}
		}
		missing = append(missing, tile)
		at = append(at, i)
	}
	if len(missing) == 0 {
		return data, nil
	}
	if t.server == nil {
		return nil, fmt.Errorf("%w (%s): run without --offline", ErrTileNotKept, torchwood.TilePath(missing[0]))
	}
	got, err := t.server.ReadTiles(ctx, missing)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		data[i] = got[j]
	}
	return data, nil
}

// SaveTiles keeps tiles the hash reader confirmed, best effort.
func (t *keptTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	if t.server != nil {
		t.server.SaveTiles(tiles, data)
	}
	if t.dir == "" {
		return
	}
	for i, tile := range tiles {
		p := t.path(tile)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
			safefile.Write(p, data[i], safefile.Options{Perm: 0o644, NoSync: true})
		}
	}
}

// ReadEndpoint reads an endpoint from the server; offline, none.
func (t *keptTiles) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	if t.server == nil {
		return nil, fmt.Errorf("%s: offline", path)
	}
	return t.server.ReadEndpoint(ctx, path)
}
