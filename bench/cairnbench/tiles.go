package main

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// benchServeTiles: `cairn serve`'s C2SP tlog-tiles reads under /log/
// against nginx serving the log's own directory, which is the same tile
// tree on disk: every full hash tile of the served tree, in turn, and
// every full entry bundle, in turn.
func benchServeTiles(cairnURL, ngxURL, work string, compare func(name, unit, goal string, conns int, path, script string, per func(wrkResult) float64) error) error {
	resp, err := http.Get(cairnURL + "/log/checkpoint")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		fmt.Println("# serve_tiles: skipped: this cairn serve has no /log/checkpoint")
		return nil
	}
	note, err := httpGet(cairnURL + "/log/checkpoint")
	if err != nil {
		return err
	}
	text, _, _ := strings.Cut(string(note), "\n\n")
	c, err := torchwood.ParseCheckpoint(text + "\n")
	if err != nil {
		return fmt.Errorf("cairn serve's /log/checkpoint: %w\n%s", err, note)
	}
	var hashTiles, bundles []string
	for level := 0; c.N>>(torchwood.TileHeight*(level+1)) > 0; level++ {
		for n := int64(0); n < c.N>>(torchwood.TileHeight*(level+1)); n++ {
			hashTiles = append(hashTiles, "/log/"+torchwood.TilePath(tlog.Tile{H: torchwood.TileHeight, L: level, N: n, W: torchwood.TileWidth}))
		}
	}
	for n := int64(0); n < c.N/torchwood.TileWidth; n++ {
		bundles = append(bundles, "/log/"+torchwood.TilePath(tlog.Tile{H: torchwood.TileHeight, L: -1, N: n, W: torchwood.TileWidth}))
	}
	if len(bundles) == 0 {
		return fmt.Errorf("serve_tiles: the served tree has %d leaves, not one full tile", c.N)
	}
	// Both serve the same bytes, or the comparison means nothing.
	var size [2]int
	for k, paths := range [][]string{hashTiles, bundles} {
		for _, p := range paths {
			ours, err := httpGet(cairnURL + p)
			if err != nil {
				return err
			}
			theirs, err := httpGet(ngxURL + p)
			if err != nil {
				return fmt.Errorf("nginx: %w", err)
			}
			if !bytes.Equal(ours, theirs) {
				return fmt.Errorf("serve_tiles: %s differs between cairn serve (%d bytes) and the log's file (%d bytes)", p, len(ours), len(theirs))
			}
			size[k] += len(ours)
		}
	}
	reqs := func(w wrkResult) float64 { return w.reqs }
	for k, x := range []struct {
		name  string
		paths []string
	}{{"serve_tiles", hashTiles}, {"serve_tile_entries", bundles}} {
		script := filepath.Join(work, x.name+".lua")
		if err := writeLua(script, x.paths); err != nil {
			return err
		}
		goal := "(" + strconv.Itoa(len(x.paths)) + " tiles of " + strconv.Itoa(size[k]/len(x.paths)) + " bytes on average, in turn; goal ≥ 0.80)"
		if err := compare(x.name, "req/s", goal, 32, "", script, reqs); err != nil {
			return err
		}
	}
	return nil
}
