package light

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"sync"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/translog"
)

// MapLeaf is the last leaf of a checkpoint's tree, proved: the map leaf
// of the checkpoint's head (docs/transparency.md, "Leaves"), which binds
// the checkpoint's cairn-map and cairn-head into the tree that witnesses
// cosign.
type MapLeaf struct {
	Index int64  // the checkpoint's size - 1
	Text  []byte // the entry line
	Entry translog.MapEntry
	Proof tlog.RecordProof // its inclusion path in the checkpoint's tree
}

// MapLeafError is a security error: a checkpoint's last leaf is not the
// map leaf of the map root and head the checkpoint names. The log's key
// signed a map that its tree does not hold, so witnesses, which check only
// the tree, did not cover it (a map that omits a record, shown under a
// tree they cosigned). The error that carries it (a *ProofError, an
// offline proof's refusal) carries the signed checkpoint.
type MapLeafError struct {
	Index  int64
	Leaf   string    // the last leaf's entry line, as the tree holds it (or as served)
	Map    tlog.Hash // the checkpoint's cairn-map
	Head   string    // the checkpoint's cairn-head
	Reason string
	// Unproved: the server's tiles do not prove the leaf served in the
	// checkpoint's tree (Reason says which read failed): the bytes
	// served are wrong, not the checkpoint.
	Unproved bool
}

func (e *MapLeafError) Error() string {
	if e.Unproved {
		return fmt.Sprintf("the server's log does not prove the checkpoint's last leaf (%d) in the tree the checkpoint signs: %s: its tiles or its entry bundle are not that tree's (changed on their way, by a mirror or a cache, or by the server), whatever the checkpoint says", e.Index, e.Reason)
	}
	return fmt.Sprintf("the checkpoint's last leaf (%d) is not the map leaf of its cairn-map %s and cairn-head %s: %s; leaf %d is %q: the key that signed the checkpoint names a map its tree does not hold, which witnesses (who check only the tree) never saw",
		e.Index, hex.EncodeToString(e.Map[:]), e.Head, e.Reason, e.Index, e.Leaf)
}

// CheckMapLeaf checks that l, proved by its inclusion path, is leaf
// size-1 of cp's tree and is the map leaf of cp's cairn-map and
// cairn-head. A leaf that is not in the tree, or names another map root
// or head, is a *MapLeafError.
func CheckMapLeaf(cp checkpoint.Checkpoint, text []byte, proof tlog.RecordProof) (*MapLeaf, error) {
	refuse := func(format string, args ...any) (*MapLeaf, error) {
		return nil, &MapLeafError{Index: cp.Size - 1, Leaf: string(text), Map: cp.Map, Head: cp.Head, Reason: fmt.Sprintf(format, args...)}
	}
	if cp.Size < 1 {
		return refuse("a tree of no leaves holds no map leaf, and every index's first commit adds one")
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Root, cp.Size-1, translog.LeafHash(text)); err != nil {
		return refuse("its inclusion path does not lead to the checkpoint's root (%v)", err)
	}
	e, err := translog.ParseMapEntry(text)
	if err != nil {
		return refuse("it is not a map leaf (%v)", err)
	}
	if e.Root != cp.Map || e.Commit != cp.Head {
		return refuse("it names map root %s and commit %s", hex.EncodeToString(e.Root[:]), e.Commit)
	}
	return &MapLeaf{Index: cp.Size - 1, Text: bytes.Clone(text), Entry: e, Proof: proof}, nil
}

// proveMapLeaf reads the last leaf of cp's tree from the server (its entry
// bundle, as any tlog-tiles client) with its inclusion path (from the
// hash tiles, cached: a consistency proof reads the same right edge) and
// checks it (CheckMapLeaf). The level-0 tile of the right edge is
// computed from the bundle, not fetched: one request more than the
// consistency proof's.
func proveMapLeaf(ctx context.Context, tiles *tileCache, cp checkpoint.Checkpoint) (*MapLeaf, error) {
	if cp.Size < 1 {
		return CheckMapLeaf(cp, nil, nil)
	}
	last := cp.Size - 1
	bt := tlog.Tile{H: torchwood.TileHeight, L: -1, N: last / torchwood.TileWidth}
	bt.W = int(cp.Size - bt.N*torchwood.TileWidth)
	data, err := tiles.ReadTiles(ctx, []tlog.Tile{bt})
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint's last leaf (entry bundle %s): %w", torchwood.TilePath(bt), err)
	}
	rest := data[0]
	var text []byte
	hashes := make([]byte, 0, bt.W*tlog.HashSize)
	for k := 0; k < bt.W; k++ {
		if text, rest, err = torchwood.ReadTileEntry(rest); err != nil {
			return nil, &MapLeafError{Index: last, Map: cp.Map, Head: cp.Head, Unproved: true,
				Reason: fmt.Sprintf("entry bundle %s: entry %d: %v", torchwood.TilePath(bt), k, err)}
		}
		h := translog.LeafHash(text)
		hashes = append(hashes, h[:]...)
	}
	if len(rest) != 0 {
		return nil, &MapLeafError{Index: last, Leaf: string(text), Map: cp.Map, Head: cp.Head, Unproved: true,
			Reason: fmt.Sprintf("entry bundle %s holds more than its %d entries", torchwood.TilePath(bt), bt.W)}
	}
	// The bundle's leaf hashes are the level-0 hash tile of the right
	// edge; the tile hash reader authenticates it against the root.
	tiles.seed(tlog.Tile{H: bt.H, L: 0, N: bt.N, W: bt.W}, hashes)
	proof, err := tlog.ProveRecord(cp.Size, last, torchwood.TileHashReaderWithContext(ctx, cp.Tree(), tiles))
	if err != nil && notServed(err) {
		return nil, fmt.Errorf("proving the checkpoint's last leaf: %w", err)
	}
	if err != nil {
		return nil, &MapLeafError{Index: last, Leaf: string(text), Map: cp.Map, Head: cp.Head, Unproved: true,
			Reason: fmt.Sprintf("entry bundle %s and the hash tiles above it: %v", torchwood.TilePath(bt), err)}
	}
	ml, err := CheckMapLeaf(cp, text, proof)
	if err == nil {
		// The bundle is confirmed too (its leaves' hashes are): kept
		// with the hash tiles, for a proof offline (keptTiles).
		tiles.SaveTiles([]tlog.Tile{bt}, data)
	}
	return ml, err
}

// tileCache is a TileReader that keeps the tiles read (and confirmed by a
// tile hash reader) of one log, so that the proofs of one view read each
// tile once. Tiles are immutable: a tile of a given width never changes.
type tileCache struct {
	tr torchwood.TileReader
	mu sync.Mutex
	m  map[tlog.Tile][]byte

	// warming is closed when warm's reads end; pre holds the tiles they
	// read, not confirmed: a read takes them as it would from the
	// server, and the tile hash reader checks them as any.
	warming chan struct{}
	pre     map[tlog.Tile][]byte
}

// warm reads ahead, in the background, the tiles that proving cp's last
// leaf and a consistency proof from the tree of size old (0: none) will
// read: those reads start as soon as the checkpoint's size is known,
// while its key is read and its signature checked. Nothing is confirmed
// nor kept here: the proofs check and keep them later, in their order.
// Reads wait for warm to end (it reads what they would).
func (c *tileCache) warm(ctx context.Context, cp checkpoint.Checkpoint, old int64) {
	if cp.Size < 1 {
		return
	}
	c.warming = make(chan struct{})
	go func() {
		defer close(c.warming)
		w := &warmReader{c: c}
		last := cp.Size - 1
		bt := tlog.Tile{H: torchwood.TileHeight, L: -1, N: last / torchwood.TileWidth}
		bt.W = int(cp.Size - bt.N*torchwood.TileWidth)
		data, err := w.ReadTiles(ctx, []tlog.Tile{bt})
		if err != nil {
			return
		}
		rest, hashes := data[0], make([]byte, 0, bt.W*tlog.HashSize)
		for k := 0; k < bt.W; k++ {
			var text []byte
			if text, rest, err = torchwood.ReadTileEntry(rest); err != nil {
				return
			}
			h := translog.LeafHash(text)
			hashes = append(hashes, h[:]...)
		}
		c.mu.Lock()
		c.pre[tlog.Tile{H: bt.H, L: 0, N: bt.N, W: bt.W}] = hashes
		c.mu.Unlock()
		hr := torchwood.TileHashReaderWithContext(ctx, cp.Tree(), w)
		if _, err := tlog.ProveRecord(cp.Size, last, hr); err != nil {
			return
		}
		if old > 0 && old < cp.Size {
			tlog.ProveTree(cp.Size, old, hr)
		}
	}()
}

// warmed waits for warm's reads to end (none started: at once).
func (c *tileCache) warmed() {
	if c.warming != nil {
		<-c.warming
	}
}

// warmReader reads tiles into the cache's pre, confirming and keeping
// none.
type warmReader struct{ c *tileCache }

func (w *warmReader) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	var missing []tlog.Tile
	var at []int
	w.c.mu.Lock()
	for i, t := range tiles {
		if d, ok := w.c.m[t]; ok {
			data[i] = d
		} else if d, ok := w.c.pre[t]; ok {
			data[i] = d
		} else {
			missing, at = append(missing, t), append(at, i)
		}
	}
	w.c.mu.Unlock()
	if len(missing) == 0 {
		return data, nil
	}
	read, err := w.c.tr.ReadTiles(ctx, missing)
	if err != nil {
		return nil, err
	}
	w.c.mu.Lock()
	for j, i := range at {
		data[i] = read[j]
		w.c.pre[missing[j]] = read[j]
	}
	w.c.mu.Unlock()
	return data, nil
}

func (w *warmReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func (w *warmReader) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	return nil, fmt.Errorf("%s: not read ahead", path)
}

// maxCachedTiles bounds a view's tile cache (8 KiB a hash tile).
const maxCachedTiles = 1024

func newTileCache(tr torchwood.TileReader) *tileCache {
	return &tileCache{tr: tr, m: map[tlog.Tile][]byte{}, pre: map[tlog.Tile][]byte{}}
}

// ReadTiles returns the tiles, from the cache or read.
func (c *tileCache) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	if c.warming != nil {
		<-c.warming
	}
	data := make([][]byte, len(tiles))
	var missing []tlog.Tile
	c.mu.Lock()
	for i, t := range tiles {
		if d, ok := c.m[t]; ok {
			data[i] = d
		} else if d, ok := c.pre[t]; ok {
			data[i] = d
		} else {
			missing = append(missing, t)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return data, nil
	}
	read, err := c.tr.ReadTiles(ctx, missing)
	if err != nil {
		return nil, err
	}
	for i := range data {
		if data[i] == nil {
			data[i], read = read[0], read[1:]
		}
	}
	return data, nil
}

// SaveTiles keeps the tiles a hash reader confirmed.
func (c *tileCache) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, t := range tiles {
		if len(c.m) >= maxCachedTiles {
			break
		}
		c.m[t] = data[i]
	}
	c.tr.SaveTiles(tiles, data)
}

// seed puts a tile computed by the client in the cache; a hash reader
// authenticates it as it would one read.
func (c *tileCache) seed(t tlog.Tile, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[t] = data
}

// ReadEndpoint reads any other path of the log.
func (c *tileCache) ReadEndpoint(ctx context.Context, path string) ([]byte, error) {
	return c.tr.ReadEndpoint(ctx, path)
}
