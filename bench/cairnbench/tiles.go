package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// benchServeTiles: `cairn serve`'s C2SP tlog-tiles reads under /log/
// against nginx serving the log's own directory, which is the same tile
// tree on disk: every full hash tile of the served tree, in turn, and
// every full entry bundle, in turn. With them, for reference, Go's
// net/http alone serving the same bytes from memory (in this process),
// no limits, logs or metrics: what a net/http server's requests cost at
// least, which tells how far cairn's ratio can go; and, when bench/run
// built it (FASTHTTP_REF), the same files served from memory by
// github.com/valyala/fasthttp, a Go HTTP/1.1 server that is not
// net/http (bench/ref/fasthttp, a module of its own).
func benchServeTiles(cairnURL, ngxURL, work, logDir string, compare func(name, unit, goal string, conns int, path, script string, per func(wrkResult) float64, refs []reference) error) error {
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
	files := map[string][]byte{}
	for k, paths := range [][]string{hashTiles, bundles} {
		for _, p := range paths {
			ours, err := httpGet(cairnURL + p)
			if err != nil {
				return err
			}
			files[p] = ours
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
	bare, stopBare, err := serveFromMemory(files)
	if err != nil {
		return err
	}
	defer stopBare()
	fast := ""
	if bin := os.Getenv("FASTHTTP_REF"); bin != "" {
		ready := filepath.Join(work, "fasthttp-ref.url")
		cmd := exec.Command(bin, "-root", filepath.Join(logDir, "tile"), "-prefix", "/log/tile/", "-ready", ready)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		defer stop(cmd)
		if fast, err = waitReady(cmd, ready); err != nil {
			return err
		}
		for p, ours := range files {
			theirs, err := httpGet(fast + p)
			if err != nil {
				return fmt.Errorf("fasthttp-ref: %w", err)
			}
			if !bytes.Equal(ours, theirs) {
				return fmt.Errorf("serve_tiles: %s differs between cairn serve (%d bytes) and fasthttp-ref (%d bytes)", p, len(ours), len(theirs))
			}
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
		refs := []reference{{name: "ref_nethttp_" + strings.TrimPrefix(x.name, "serve_"), url: bare,
			note: "REFERENCE, not a floor: Go's net/http alone, the same bytes from memory (Content-Type and Content-Length set), no limits, log or metrics, alternating with the floor, median of 3"}}
		if fast != "" {
			refs = append(refs, reference{name: "ref_fasthttp_" + strings.TrimPrefix(x.name, "serve_"), url: fast,
				note: "REFERENCE, not a floor: github.com/valyala/fasthttp (bench/ref/fasthttp), the same files from memory, no limits, log or metrics: a Go server that is not net/http, alternating with the floor, median of 3"})
		}
		if err := compare(x.name, "req/s", goal, 32, "", script, reqs, refs); err != nil {
			return err
		}
	}
	return nil
}

// serveFromMemory serves files, by URL path, with net/http alone, and
// returns its URL and how to stop it.
func serveFromMemory(files map[string][]byte) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	lengths := map[string][]string{}
	for p, b := range files {
		lengths[p] = []string{strconv.Itoa(len(b))}
	}
	octets := []string{"application/octet-stream"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h["Content-Type"] = octets
		h["Content-Length"] = lengths[r.URL.Path]
		w.Write(b)
	})}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}
