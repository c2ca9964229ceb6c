package light_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/server/servertest"
)

// TestOlderOffline: a lock's older checkpoint is proved extended by the
// one verified last offline too, from the tiles kept when this machine
// proved it online; a machine that never read those tiles says so, and a
// kept tile that was changed on disk proves nothing.
func TestOlderOffline(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	url := servertest.Serve(w)
	dir := t.TempDir()
	old := open(t, newClient(w, url, dir)).Note
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.1.0"})
	if v := open(t, newClient(w, url, dir)); v.Checkpoint.Size <= 0 || string(v.Note) == string(old) {
		t.Fatal("the server did not move")
	}
	offline, err := newClient(w, url, dir).OpenOffline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offline.Older(ctx, old); err != nil {
		t.Fatalf("offline, an older checkpoint proved online before: %v", err)
	}

	// Another machine verified only the new checkpoint.
	fresh := t.TempDir()
	open(t, newClient(w, url, fresh))
	offline, err = newClient(w, url, fresh).OpenOffline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offline.Older(ctx, old); !errors.Is(err, light.ErrTileNotKept) {
		t.Fatalf("offline, tiles never read: %v, want ErrTileNotKept", err)
	}

	// A kept tile changed on disk.
	tiles := keptFiles(t, dir, "tile", func(p string) bool { return strings.Contains(p, ".tiles"+string(filepath.Separator)) })
	for _, p := range tiles {
		// The last byte: a tile's own (its pack's last tile's), not the
		// pack's line that names it.
		b, _ := os.ReadFile(p)
		b[len(b)-1] ^= 1
		os.WriteFile(p, b, 0o644)
	}
	offline, err = newClient(w, url, dir).OpenOffline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offline.Older(ctx, old); err == nil || errors.Is(err, light.ErrTileNotKept) {
		t.Fatalf("a changed kept tile: %v, want it refused as proving nothing", err)
	}
}

// Tiles kept one file each, by path, as an older cairn kept them, are
// read offline as the packs are.
func TestOlderOfflineTilesByPath(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	url := servertest.Serve(w)
	dir := t.TempDir()
	old := open(t, newClient(w, url, dir)).Note
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.1.0"})
	open(t, newClient(w, url, dir))
	// Every pack unpacked into files by path, then removed.
	packs := keptFiles(t, dir, "tile pack", func(p string) bool { return strings.HasSuffix(p, ".tiles") })
	for _, p := range packs {
		data, _ := os.ReadFile(p)
		for len(data) > 0 {
			line, rest, _ := strings.Cut(string(data), "\n")
			path, size, _ := strings.Cut(line, " ")
			n, err := strconv.Atoi(size)
			if err != nil || n > len(rest) {
				t.Fatalf("pack %s: line %q", p, line)
			}
			f := filepath.Join(filepath.Dir(p), filepath.FromSlash(path))
			os.MkdirAll(filepath.Dir(f), 0o755)
			os.WriteFile(f, []byte(rest[:n]), 0o644)
			data = []byte(rest[n:])
		}
		os.Remove(p)
	}
	offline, err := newClient(w, url, dir).OpenOffline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offline.Older(ctx, old); err != nil {
		t.Fatalf("offline, from tiles kept by path: %v", err)
	}
}

// keptFiles returns the files under a client's state dir whose paths
// match, failing the test if there are none (what names them).
func keptFiles(t *testing.T, dir, what string, match func(string) bool) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && match(p) {
			found = append(found, p)
		}
		return nil
	})
	if len(found) == 0 {
		t.Fatalf("no %s kept in %s", what, dir)
	}
	return found
}
