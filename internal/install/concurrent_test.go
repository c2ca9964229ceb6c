//go:build unix

package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/safefile"
)

// installWaiting locks the project and installs it into dir, telling
// waiting when another install holds dir.
func (w *world) installWaiting(ctx context.Context, dir string, waiting func(string)) (*Result, error) {
	return w.installWith(ctx, dir, false, Options{Waiting: waiting})
}

// Installs into one directory at once (two CI steps sharing a
// workspace, make -j) run one after the other. Each removed the other's
// staging directory as an interrupted install's leftover and swapped in
// a tree that lacked whole packages its manifest listed, every one of
// them saying it had installed everything; or failed on cairn's own
// staging files.
func TestConcurrentInstallsIntoOneDirectory(t *testing.T) {
	w := newWorld(t)
	var pkgs strings.Builder
	var names []string
	for i := range 6 {
		files := map[string]string{}
		for j := range 150 {
			files[fmt.Sprintf("f%03d/file%03d.txt", j%10, j)] = strings.Repeat(fmt.Sprintf("package %d file %d\n", i, j), 40)
		}
		name := fmt.Sprintf("acme/pkg%d", i)
		w.Publish(indextest.Package{Name: name, Version: "1.0.0", Files: files})
		names = append(names, name)
		fmt.Fprintf(&pkgs, "  %s: ^1.0\n", name)
	}
	w.onDisk("packages:\n" + pkgs.String())
	into := filepath.Join(t.TempDir(), "deps")
	for round := range 3 {
		os.RemoveAll(filepath.Join(w.cache, "blobs", "sha256")) // a cold cache: the longest window
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { _, errs[i] = w.installWaiting(context.Background(), into, nil) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: install %d of 4 at once: %v", round, i, err)
			}
		}
		m, err := ReadManifest(into)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Packages {
			for _, f := range p.Files {
				if _, err := os.Stat(filepath.Join(into, filepath.FromSlash(f.Path))); err != nil {
					t.Fatalf("round %d: the manifest lists %s of %s, which the install lacks: %v", round, f.Path, p.Name, err)
				}
			}
		}
		if len(m.Packages) != len(names) {
			t.Fatalf("round %d: the manifest lists %d packages, want %d", round, len(m.Packages), len(names))
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(into), ".deps.cairn-staging-*")); len(left) > 0 {
			t.Fatalf("round %d: staging directories left: %v", round, left)
		}
	}

	// An install that finds another holding the directory says so and
	// waits for it to end; one whose context ends meanwhile gives up,
	// naming the lock.
	f, err := os.OpenFile(filepath.Join(filepath.Dir(into), ".deps.cairn-lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("the lock file beside the install: %v", err)
	}
	if ok, err := safefile.TryLock(f); !ok || err != nil {
		t.Fatalf("taking the lock: %v, %v", ok, err)
	}
	waited := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, err := w.installWaiting(context.Background(), into, func(name string) { waited <- name })
		done <- err
	}()
	select {
	case name := <-waited:
		if !strings.HasSuffix(name, ".deps.cairn-lock") {
			t.Errorf("waiting for %s", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an install into a held directory did not say it waits")
	}
	select {
	case err := <-done:
		t.Fatalf("an install into a held directory ended (%v) before the holder did", err)
	case <-time.After(300 * time.Millisecond):
	}
	f.Close()
	if err := <-done; err != nil {
		t.Fatalf("the install once the holder ended: %v", err)
	}

	f, _ = os.OpenFile(filepath.Join(filepath.Dir(into), ".deps.cairn-lock"), os.O_RDWR, 0)
	defer f.Close()
	safefile.TryLock(f)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := w.installWaiting(ctx, into, nil); err == nil || !strings.Contains(err.Error(), "waiting for another cairn install into "+into) {
		t.Fatalf("an install given up while waiting: %v", err)
	}
}
