package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/install"
)

// TestProgressBar: the bar is drawn on a terminal only, redraws in place
// (a carriage return, and blanks over a longer previous line), and ends
// its line when done.
func TestProgressBar(t *testing.T) {
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0) // a pseudo-terminal's master: a character device
	if err != nil {
		t.Fatalf("no pseudo-terminal to test with: %v", err)
	}
	defer tty.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if !isTerminal(tty) || isTerminal(file) || isTerminal(w) || isTerminal(&strings.Builder{}) {
		t.Fatalf("isTerminal: tty %v, file %v, pipe %v, buffer %v", isTerminal(tty), isTerminal(file), isTerminal(w), isTerminal(&strings.Builder{}))
	}

	var out strings.Builder
	b := &progressBar{w: &out}
	b.update(install.Progress{Bytes: 3 << 20, TotalBytes: 12 << 20, Packages: 1, TotalPackages: 4, Phase: "fetching"})
	first := out.String()
	if first != "\r[#######.......................] 3.0 MiB / 12.0 MiB  1/4 packages  fetching" {
		t.Fatalf("first frame %q", first)
	}
	out.Reset()
	b.update(install.Progress{Bytes: 12 << 20, TotalBytes: 12 << 20, Packages: 4, TotalPackages: 4, Phase: "done"})
	second := out.String()
	if !strings.HasPrefix(second, "\r[##############################] 12.0 MiB / 12.0 MiB  4/4 packages  done") || len(second) < len(first) {
		t.Fatalf("second frame %q does not cover the first (%d < %d)", second, len(second), len(first))
	}
	out.Reset()
	b.done()
	if out.String() != "\n" {
		t.Fatalf("done wrote %q", out.String())
	}
}
