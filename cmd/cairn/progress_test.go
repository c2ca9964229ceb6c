package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	if !strings.Contains(all, "100%") || !strings.Contains(all, "(150/150 MiB") || !strings.Contains(all, "install: 1/1 packages  done") || !strings.HasSuffix(all, "\n") {
		t.Fatalf("the last frames do not show the whole, or the line is not ended: %q", all[max(0, len(all)-300):])
	}
}

// TestVerifyProgressDrawn: verify --full draws its progress on a
// terminal (a pseudo-terminal's other end reads it), and writes none to
// a file.
func TestVerifyProgressDrawn(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal to test with: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	read := make(chan string)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil || strings.Contains(string(all), "\n") {
				read <- string(all)
				return
			}
		}
	}()

	dir := t.TempDir()
	ctx := context.Background()
	var out bytes.Buffer
	if code := run(ctx, []string{"key", "new", filepath.Join(dir, "root.key")}, &out, &out); code != exitOK {
		t.Fatal(out.String())
	}
	repo := filepath.Join(dir, "repo")
	if code := run(ctx, []string{"init", repo, "--root-key", filepath.Join(dir, "root.key")}, &out, &out); code != exitOK {
		t.Fatal(out.String())
	}
	if code := run(ctx, []string{"verify", "--full", "--repo", repo}, &out, tty); code != exitOK {
		t.Fatalf("verify --full: exit %d", code)
	}
	select {
	case drawn := <-read:
		if !strings.Contains(drawn, "100%") || !strings.Contains(drawn, "(1/1)") || !strings.Contains(drawn, "verifying main") {
			t.Fatalf("the terminal shows %q, want verifying main at 1/1 commits", drawn)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress on the terminal")
	}
	logf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if code := run(ctx, []string{"verify", "--full", "--repo", repo}, &out, logf); code != exitOK {
		t.Fatalf("verify --full: exit %d", code)
	}
	if data, _ := os.ReadFile(logf.Name()); len(data) != 0 {
		t.Fatalf("progress written to a file: %q", data)
	}
}

// TestProgressSteps: each step draws its own line, ended when the next
// begins; a step cut short (an error) is left as far as it got, not
// shown complete; a step of no known size draws no spinner behind the
// work's back.
func TestProgressSteps(t *testing.T) {
	out := &countingWriter{}
	p := &progress{w: out}
	p.set(0, 0, "fetching remote origin", "")
	p.set(3, 10, "verifying remote origin", "")
	p.done()
	time.Sleep(3 * redrawEvery)
	all := out.all.String()
	lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "fetching remote origin") || !strings.Contains(lines[1], "(3/10) verifying remote origin") || strings.Contains(lines[1], "100%") || !strings.HasSuffix(all, "\n") {
		t.Fatalf("steps drawn as %q", all)
	}
	if again := out.all.String(); again != all {
		t.Fatalf("drawn after done: %q", strings.TrimPrefix(again, all))
	}
}

// TestProgressThrottledUnknownTotal: a step of unknown size (a bar whose
// max is -1) is redrawn at most ~10 times a second too, whatever the
// library does with such a bar, and its line ends showing the last state
// reported.
func TestProgressThrottledUnknownTotal(t *testing.T) {
	out := &countingWriter{}
	p := &progress{w: out}
	report := installProgress(p)
	const reports = 3000
	start := time.Now()
	for n := int64(1); n <= reports; n++ {
		report(install.Progress{Bytes: n, TotalPackages: 1, Phase: "fetching"})
		if n%100 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	report(install.Progress{Bytes: reports + 7, Packages: 1, TotalPackages: 1, Phase: "unpacked"})
	p.done()
	elapsed := time.Since(start)
	if bound := 3 + int(elapsed/redrawEvery); out.frames > bound || out.frames < 2 {
		t.Fatalf("%d frames drawn in %s for %d reports of unknown total, want 2 to %d (at most one per %s)", out.frames, elapsed, reports, bound, redrawEvery)
	}
	all := out.all.String()
	if !strings.Contains(all, "3007") || !strings.Contains(all, "install: 1/1 packages  unpacked") || !strings.HasSuffix(all, "\n") {
		t.Fatalf("the last frame does not show the last state, or the line is not ended: %q", all[max(0, len(all)-300):])
	}
}
