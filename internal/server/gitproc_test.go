package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// failingBody is a request body that fails, as a client that goes away
// mid-push, once the file ready exists.
type failingBody struct{ ready string }

func (b failingBody) Read([]byte) (int, error) {
	for {
		if _, err := os.Stat(b.ready); err == nil {
			return 0, errors.New("the client went away")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (failingBody) Close() error { return nil }

// When a request's body fails, the runner still sends all of what the
// program had written, not only what it had buffered (32 KiB): git's
// output is read to its end before the process is reaped, which closes
// the pipe.
func TestGitProcessErrorAnswerWhole(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid to start the writer in a session of its own")
	}
	const size = 40 << 10 // over the runner's 32 KiB buffer, under a pipe's 64 KiB
	dir := t.TempDir()
	script := filepath.Join(dir, "cgi")
	// The answer is written, once the body has ended, by a process in a
	// session of its own (made before the body fails), which outlives the
	// killed group: the runner must read it to its end.
	ready := filepath.Join(dir, "ready")
	body := `setsid sh -c 'touch ` + ready + `; cat >/dev/null; printf "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"; head -c ` + strconv.Itoa(size) + ` /dev/zero | tr "\0" x' &
wait
exit 1
`
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(ctx context.Context, env []string) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, script)
		cmd.Env = env
		return cmd, nil
	}
	g := &gitProcess{start: start, root: "/index.git", slots: make(slots, 1), wait: time.Second, maxPush: 1 << 20, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r := httptest.NewRequest("POST", "/index.git/git-receive-pack", failingBody{ready})
	r.ContentLength = -1
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { g.ServeHTTP(w, r); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not answer within 10 s")
	}
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want the program's 500", w.Code)
	}
	if got := w.Body.String(); len(got) != size || strings.Trim(got, "x") != "" {
		t.Fatalf("the answer has %d bytes, want all %d the program wrote", len(got), size)
	}
}

// A path git http-backend would refuse (an encoded "..", a backslash) is
// answered 404 with a reason before any git process starts: it was a
// bare 500, a process spent on a scanner's probe.
func TestGitProcessRefusesPathsOutside(t *testing.T) {
	started := 0
	start := func(ctx context.Context, env []string) (*exec.Cmd, error) {
		started++
		return exec.CommandContext(ctx, "sh", "-c", `printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok'`), nil
	}
	g := &gitProcess{start: start, root: "/index.git", slots: make(slots, 1), wait: time.Second, maxPush: 1 << 20, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, target := range []string{
		"/index.git/objects/%2e%2e/%2e%2e/cairn.json",
		"/index.git/%2e%2e",
		"/index.git/objects/..%2f..%2fcairn.json",
		"/index.git/objects/%5c..%5ccairn.json",
		"/index.git//info/refs",
		"/index.git/./info/refs",
	} {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "no such path in the index's git repository") {
			t.Errorf("GET %s: %d %q, want 404 naming the path", target, w.Code, w.Body.String())
		}
	}
	if started != 0 {
		t.Fatalf("%d git processes started for paths outside the repository", started)
	}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/index.git/info/refs?service=git-upload-pack", nil))
	if w.Code != http.StatusOK || started != 1 {
		t.Fatalf("a repository's path: %d, %d processes; want git's 200", w.Code, started)
	}
}

// When git fails, what it said goes to the operator's log (it went
// nowhere: a push refused for a full disk left no trace).
func TestGitProcessLogsWhatGitSaid(t *testing.T) {
	start := func(ctx context.Context, env []string) (*exec.Cmd, error) {
		return exec.CommandContext(ctx, "sh", "-c", `echo 'fatal: unable to write loose object file: No space left on device' >&2; printf 'Status: 500 Internal Server Error\r\n\r\n'; exit 128`), nil
	}
	var log strings.Builder
	g := &gitProcess{start: start, root: "/index.git", slots: make(slots, 1), wait: time.Second, maxPush: 1 << 20, log: slog.New(slog.NewTextHandler(&log, nil))}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("POST", "/index.git/git-receive-pack", strings.NewReader("x")))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want git's 500", w.Code)
	}
	if got := log.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "No space left on device") {
		t.Fatalf("the log says %q, want a warning with what git said", got)
	}
}
