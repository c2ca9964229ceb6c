// Package servertest serves test indexes over HTTP as cairn serve does,
// for the tests of the packages that talk to a server (remote, plan,
// install, certifier). It sits above both index/indextest, which builds
// the indexes, and server, so that neither of those imports the other.
package servertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/witness"
)

// Main runs a test binary's tests; run as the pre-receive hook that the
// servers of Serve install (the binary stands in for cairn), it checks
// the push instead. A package whose tests push to a server calls it from
// TestMain.
//
// Under -race, the hooks exit at once: the race detector would sleep a
// second at every exit (GORACE's atexit_sleep_ms) for reports of races
// still in flight, a second a push; a race is still reported, and fails
// the hook, when it happens.
func Main(m *testing.M) {
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	if len(os.Args) == 5 && os.Args[1] == "hook" {
		if err := server.PreReceive(context.Background(), os.Args[4], os.Stdin, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "cairn: error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Serve serves w's index on a real HTTP server and returns its URL; the
// server stops with the test. The first call grants w.Checkpointer, a
// new key, the checkpoint scope, and the server signs its checkpoints
// with it. Pushes to the server run the test binary as their hook: the
// package's TestMain calls Main.
func Serve(w *indextest.World) string {
	w.T.Helper()
	return ServeWith(w, server.Options{})
}

// ServeWith is Serve with options (an upstream line's checkpoint, …):
// its Exe, CheckpointKey and Logger are set as Serve sets them.
func ServeWith(w *indextest.World, o server.Options) string {
	w.T.Helper()
	if w.Checkpointer == nil {
		w.Checkpointer = indextest.NewSigner()
		w.Grant(w.Checkpointer, "server", "checkpoint")
	}
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		w.T.Fatal(err)
	}
	o.Exe, o.CheckpointKey, o.Logger = exe, w.Checkpointer, slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(w.Repo, o)
	if err != nil {
		w.T.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	w.T.Cleanup(func() { ts.Close(); srv.Close() })
	return ts.URL
}

// Witness starts cairn's witness, named name, witnessing w's log (signed
// by w.Checkpointer, which must be set), on a real HTTP server that stops
// with the test. It returns the server's URL and the witness's verifier
// key.
func Witness(w *indextest.World, name string) (url, vkey string) {
	w.T.Helper()
	st, err := witness.OpenState(w.T.TempDir())
	if err != nil {
		w.T.Fatal(err)
	}
	origin := checkpoint.Origin(w.Intro)
	if _, err := st.AddLog(origin, checkpoint.VKey(origin, w.Checkpointer.Public())); err != nil {
		w.T.Fatal(err)
	}
	ws, err := witness.NewServer(name, indextest.NewSigner(), st, nil)
	if err != nil {
		w.T.Fatal(err)
	}
	ts := httptest.NewServer(ws)
	w.T.Cleanup(ts.Close)
	return ts.URL, ws.VerifierKey()
}
