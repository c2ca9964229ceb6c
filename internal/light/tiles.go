package light

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

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
//
// The tiles saved together are kept in one file (a tile pack: each
// tile's path and length on a line, then its bytes), not a file each:
// a file costs more to create than to fill. A view that Open is
// verifying holds them (hold) until it is verified (release), then
// keeps them all in one pack. Tiles kept one file each, by path (an
// older cairn's), are read too.
type keptTiles struct {
	dir    string               // StateDir/<introduction>.tiles/<tree>; "" keeps nothing
	server torchwood.TileReader // nil offline

	mu      sync.Mutex
	packs   map[string][]byte // the tiles of the packs kept in dir, by path (read once)
	read    bool              // packs was read
	none    bool              // dir was missing then: no tile kept in a file of its own either
	holding bool              // SaveTiles holds tiles in held, kept by release
	held    map[string][]byte
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

// tilePackSuffix ends the names of tile packs.
const tilePackSuffix = ".tiles"

// kept returns a tile kept in dir: in a pack, or in a file of its own.
// t.mu is held.
func (t *keptTiles) kept(tile tlog.Tile) ([]byte, bool) {
	if !t.read {
		t.read = true
		t.packs, t.none = readTilePacks(t.dir)
	}
	if b, ok := t.packs[torchwood.TilePath(tile)]; ok {
		return b, true
	}
	if t.none {
		return nil, false
	}
	b, err := os.ReadFile(t.path(tile))
	return b, err == nil
}

// readTilePacks reads the tiles of the packs in dir, by path, and says
// whether dir was missing (nothing kept). What does not parse is left
// out (every tile read is checked again).
func readTilePacks(dir string) (_ map[string][]byte, none bool) {
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out, errors.Is(err, fs.ErrNotExist)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), tilePackSuffix) || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for len(data) > 0 {
			line, rest, ok := bytes.Cut(data, []byte("\n"))
			if !ok {
				break
			}
			path, size, ok := strings.Cut(string(line), " ")
			n, err := strconv.Atoi(size)
			if !ok || err != nil || n < 0 || n > len(rest) {
				break
			}
			out[path] = rest[:n:n]
			data = rest[n:]
		}
	}
	return out, false
}

// ReadTiles reads each tile from those kept, else from the server.
func (t *keptTiles) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	var missing []tlog.Tile
	var at []int
	t.mu.Lock()
	for i, tile := range tiles {
		if t.dir != "" {
			if b, ok := t.kept(tile); ok {
				data[i] = b
				continue
			}
		}
		missing = append(missing, tile)
		at = append(at, i)
	}
	t.mu.Unlock()
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

// SaveTiles keeps tiles the hash reader confirmed, best effort: those
// not kept yet, in one pack, or held until release.
func (t *keptTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	if t.server != nil {
		t.server.SaveTiles(tiles, data)
	}
	if t.dir == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	add := map[string][]byte{}
	for i, tile := range tiles {
		if _, ok := t.kept(tile); !ok {
			add[torchwood.TilePath(tile)] = data[i]
		}
	}
	if t.holding {
		for p, b := range add {
			t.held[p] = b
		}
		return
	}
	t.write(add)
}

// hold makes SaveTiles hold the tiles it is given until release.
func (t *keptTiles) hold() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.holding, t.held = true, map[string][]byte{}
}

// release keeps the tiles held, in one pack, and those saved later.
func (t *keptTiles) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.write(t.held)
	t.holding, t.held = false, nil
}

// write keeps tiles (by path) in one pack, and reads them from it. t.mu
// is held.
func (t *keptTiles) write(tiles map[string][]byte) {
	if len(tiles) == 0 || t.dir == "" {
		return
	}
	paths := slices.Sorted(maps.Keys(tiles))
	var body []byte
	for _, p := range paths {
		body = fmt.Appendf(body, "%s %d\n", p, len(tiles[p]))
		body = append(body, tiles[p]...)
	}
	sum := sha256.Sum256(body)
	if os.MkdirAll(t.dir, 0o755) != nil {
		return
	}
	if safefile.Write(filepath.Join(t.dir, hex.EncodeToString(sum[:16])+tilePackSuffix), body, safefile.Options{Perm: 0o644, NoSync: true}) == nil {
		if t.packs == nil {
			t.packs = map[string][]byte{}
		}
		for p, b := range tiles {
			t.packs[p] = b
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
