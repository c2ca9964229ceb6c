package remote

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/server"
)

// A server started without a checkpoint key is told apart from one whose
// checkpoint is wrong: a *NoCheckpointError (ErrNoCheckpoint) naming the
// server, never a *CheckpointError, which says tampering. A remote added
// with InsecureNoCheckpoint still pulls from it.
func TestServerSignsNoCheckpoints(t *testing.T) {
	w := newWorld(t)
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(w.repo, server.Options{Exe: exe, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })

	c, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "c"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := Add(c, Remote{Name: "origin", URL: ts.URL, Introduction: w.intro}); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(w.ctx, c, "origin", Options{})
	var nc *NoCheckpointError
	if !errors.As(err, &nc) || !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("pull from a server without a checkpoint key: err = %v, want a *NoCheckpointError", err)
	}
	var ce *CheckpointError
	if errors.As(err, &ce) || strings.Contains(err.Error(), "SECURITY ERROR") {
		t.Fatalf("a server that signs no checkpoints is reported as tampering: %v", err)
	}
	if nc.URL != ts.URL || !strings.Contains(err.Error(), "remote origin ("+ts.URL+") signs no checkpoints") {
		t.Fatalf("the error does not name the server: %v", err)
	}
	if got, _ := c.Head(w.ctx, index.MainRef); got != "" {
		t.Fatalf("main was created at %s by a refused pull", got)
	}

	// Accepted, knowingly.
	rm, _ := Get(c, "origin")
	rm.InsecureNoCheckpoint = true
	if err := Set(c, *rm); err != nil {
		t.Fatal(err)
	}
	p, err := Pull(w.ctx, c, "origin", Options{})
	if err != nil {
		t.Fatalf("pull with InsecureNoCheckpoint: %v", err)
	}
	if head, _ := w.repo.Head(w.ctx, index.MainRef); p.Head != head || p.Checkpoint != nil {
		t.Fatalf("pulled %s (checkpoint %v), want %s and none", p.Head, p.Checkpoint, head)
	}
}

// The answer a client reads as "signs no checkpoints" is the one the
// server sends; a 404 without it (another server, a proxy that does not
// know the endpoint) is a missing checkpoint, a security error.
func TestNoCheckpointAnswer(t *testing.T) {
	w := newWorld(t)
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, "this server signs no checkpoints", http.StatusNotFound)
	}))
	t.Cleanup(ts.Close)
	c, err := index.InitReplica(w.ctx, filepath.Join(w.dir, "c"), w.intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := Add(c, Remote{Name: "origin", URL: ts.URL, Introduction: w.intro}); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(w.ctx, c, "origin", Options{})
	var ce *CheckpointError
	if !errors.As(err, &ce) || errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("a 404 without %s: err = %v, want a *CheckpointError", checkpoint.NoneHeader, err)
	}
}
