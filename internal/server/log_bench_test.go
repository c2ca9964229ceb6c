package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// benchLogServer serves, with signed checkpoints, a repository of 150
// packages (a few full tiles), and returns its URL and its log's tile
// paths under /log/: the hash tiles and the entry bundles of the signed
// tree, full and partial, and the log's directory.
func benchLogServer(b *testing.B) (url string, tiles, bundles []string, logDir string) {
	b.Helper()
	ctx := b.Context()
	root, alice, ckpt := keysFor(b), keysFor(b), keysFor(b)
	r, _, err := index.Init(ctx, filepath.Join(b.TempDir(), "repo"), []keys.Signer{root}, nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	for _, g := range []author.KeyGrant{
		{Key: alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}},
		{Key: ckpt.Public(), Holder: "server", Scopes: []string{"checkpoint"}},
	} {
		if _, err := author.Grant(ctx, r, g, root); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 150; i++ {
		dir := b.TempDir()
		name := fmt.Sprintf("acme/pkg%d", i)
		os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: "+name+"\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "src.tar.gz"), []byte(name), 0o644)
		if _, err := author.Publish(ctx, r, dir, alice); err != nil {
			b.Fatal(err)
		}
	}
	logf, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(r, Options{Logger: slog.New(slog.NewJSONHandler(logf, nil)), CheckpointKey: ckpt})
	if err != nil {
		b.Fatal(err)
	}
	// Served as cairn serve serves: Serve, its connections and limits.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	b.Cleanup(func() { stop(); <-done; srv.Close(); logf.Close() })
	url = "http://" + l.Addr().String()

	resp, err := http.Get(url + "/log/checkpoint")
	if err != nil {
		b.Fatal(err)
	}
	note, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("/log/checkpoint: %s %v", resp.Status, err)
	}
	text, _, _ := strings.Cut(string(note), "\n\n")
	c, err := torchwood.ParseCheckpoint(text + "\n")
	if err != nil {
		b.Fatalf("/log/checkpoint: %v", err)
	}
	for _, t := range tlog.NewTiles(torchwood.TileHeight, 0, c.N) {
		tiles = append(tiles, "/log/"+torchwood.TilePath(t))
		if t.L == 0 {
			t.L = -1
			bundles = append(bundles, "/log/"+torchwood.TilePath(t))
		}
	}
	return url, tiles, bundles, r.Main().LogDir()
}

// BenchmarkLogTile is one GET of a C2SP tlog-tiles tile (hash tiles and
// entry bundles in turn) from cairn's handler, and, as its floor in the
// same run, from Go's static file server over the log's own directory,
// which is the same tile tree.
func BenchmarkLogTile(b *testing.B) {
	url, tiles, bundles, dir := benchLogServer(b)
	files := httptest.NewServer(http.StripPrefix("/log/", http.FileServer(http.Dir(dir))))
	b.Cleanup(files.Close)
	paths := append(tiles, bundles...)
	for _, x := range []struct{ name, base string }{{"cairn", url}, {"fileserver", files.URL}} {
		b.Run(x.name, func(b *testing.B) {
			var urls []string
			for _, p := range paths {
				urls = append(urls, x.base+p)
			}
			benchGets(b, urls)
			b.ReportMetric(float64(len(paths)), "tiles")
		})
	}
}

// BenchmarkLogCheckpoint is one GET /log/checkpoint while main does not
// move (answered from the view of main found last: main's ref read, no
// verification, no log reload), against one GET of a tile.
func BenchmarkLogCheckpoint(b *testing.B) {
	url, tiles, _, _ := benchLogServer(b)
	for _, x := range []struct{ name, path string }{{"checkpoint", "/log/checkpoint"}, {"tile", tiles[0]}} {
		b.Run(x.name, func(b *testing.B) { benchGets(b, []string{url + x.path}) })
	}
}
