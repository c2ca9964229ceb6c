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
