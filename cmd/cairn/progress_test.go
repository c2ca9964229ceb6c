package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cairn.dev/cairn/internal/install"
)

// TestProgressOnlyOnATerminal: progress is drawn on a terminal (a
// pseudo-terminal here) and nowhere else: not /dev/null (a character
// device, which a mode check took for a terminal), a file, a pipe or a
// buffer; and never with --json.
func TestProgressOnlyOnATerminal(t *testing.T) {
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal to test with: %v", err)
	}
	defer tty.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
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
	if !isTerminal(tty) || isTerminal(null) || isTerminal(file) || isTerminal(w) || isTerminal(&strings.Builder{}) {
		t.Fatalf("isTerminal: tty %v, /dev/null %v, file %v, pipe %v, buffer %v", isTerminal(tty), isTerminal(null), isTerminal(file), isTerminal(w), isTerminal(&strings.Builder{}))
	}
	if newProgress(null, false, true) != nil || newProgress(tty, true, true) != nil || newProgress(tty, false, true) == nil {
		t.Fatal("newProgress draws on something other than a terminal, or with --json")
	}
}

// countingWriter counts the writes that draw a frame (each begins a line
// again with a carriage return) and keeps the last.
type countingWriter struct {
	mu     sync.Mutex
	frames int
	all    strings.Builder
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.Contains(string(p), "packages") {
		w.frames++
	}
	w.all.Write(p)
	return len(p), nil
}

// TestProgressThrottled: one 150 MiB package reported in 32 KiB reads
// (4,800 reports over about a second) is redrawn at most ~10 times a
// second, not once per report; the last frame shows the whole, and the
// line is ended.
func TestProgressThrottled(t *testing.T) {
	out := &countingWriter{}
	p := &progress{w: out, bytes: true}
	report := installProgress(p)
	const total, chunk = 150 << 20, 32 << 10
	start := time.Now()
	for n := int64(0); n < total; n += chunk {
		report(install.Progress{Bytes: n, TotalBytes: total, TotalPackages: 1, Phase: "fetching"})
		if n%(16*chunk) == 0 {
			time.Sleep(3 * time.Millisecond)
		}
	}
	report(install.Progress{Bytes: total, TotalBytes: total, Packages: 1, TotalPackages: 1, Phase: "done"})
	p.done()
	elapsed := time.Since(start)
	if bound := 3 + int(elapsed/redrawEvery); out.frames > bound || out.frames < 2 {
		t.Fatalf("%d frames drawn in %s, want 2 to %d (at most one per %s)", out.frames, elapsed, bound, redrawEvery)
	}
	all := out.all.String()
	if !strings.Contains(all, "100%") || !strings.Contains(all, "(150/150 MiB") || !strings.Contains(all, "1/1 packages  done") || !strings.HasSuffix(all, "\n") {
		t.Fatalf("the last frames do not show the whole, or the line is not ended: %q", all[max(0, len(all)-300):])
	}
}
