package gitx

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"cairn.dev/cairn/internal/transport"
)

// A cancelled git is gone with its children: a fetch from a server that
// never answers is cut by its context, and neither git nor the
// git-remote-http it started outlives the call (before: git was killed
// alone, its helper held the standard error pipe open, and Fetch waited
// for the helper's own stall timeout, minutes later).
func TestFetchCancelledLeavesNoProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the processes in /proc")
	}
	t.Setenv(transport.EnvStall, "10m") // only the context may cut the fetch
	token := "hang" + strconv.FormatInt(time.Now().UnixNano(), 36)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer s.Close()
	defer close(release)

	r, err := InitBare(filepath.Join(t.TempDir(), "r.git"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- r.Fetch(ctx, FetchOptions{URL: s.URL + "/" + token + ".git", Refspecs: []string{"+refs/heads/main:refs/heads/in"}})
	}()
	select {
	case <-arrived:
	case err := <-done:
		t.Fatalf("fetch ended before the server was asked: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("git never asked the server")
	}
	before := processesNaming(t, token)
	if len(before) < 2 {
		t.Fatalf("processes naming the URL while git waits: %v; want git and its git-remote-http", before)
	}
	t.Cleanup(func() { // a failing run leaves nothing behind either
		for _, p := range processesNaming(t, token) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})

	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled fetch: no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Fetch still waiting 30s after its context was cancelled; running: %v", processesNaming(t, token))
	}
	if left := processesNaming(t, token); len(left) > 0 {
		t.Fatalf("processes outlived the cancelled fetch: %v (before the cancel: %v)", left, before)
	}
}

type process struct {
	pid     int
	cmdline string
}

func (p process) String() string { return fmt.Sprintf("%d %q", p.pid, p.cmdline) }

// processesNaming returns the live processes (zombies have no command
// line) whose command line contains token.
func processesNaming(t *testing.T, token string) []process {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	var ps []process
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(token)) {
			continue
		}
		ps = append(ps, process{pid, string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))})
	}
	return ps
}
