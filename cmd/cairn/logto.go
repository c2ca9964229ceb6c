package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/remote"
)

// publishEvery is cairn serve --log-to: every interval, it has the
// server sign a checkpoint of main's verified head if main moved (a read
// of its own /log/checkpoint, in process), and when the checkpoint
// changed, publishes the log to the store (remote.PublishLog, with the
// checkpoint the server signed). A failure is logged; the next round
// tries again.
func publishEvery(ctx context.Context, dir string, h http.Handler, to string, every time.Duration, log *slog.Logger) {
	r, err := index.Open(ctx, dir)
	if err != nil {
		log.Error("log publish: opening the repository", "err", err)
		return
	}
	defer r.Close()
	dst, name, err := openLogStore(ctx, to)
	if err != nil {
		log.Error("log publish: opening the store", "err", err)
		return
	}
	defer dst.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	var last []byte
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/log/checkpoint", nil)
		h.ServeHTTP(discardResponse{}, req)
		note, err := os.ReadFile(filepath.Join(r.LocalDir(), "checkpoint"))
		if err != nil {
			log.Warn("log publish: no checkpoint signed yet", "err", err)
		} else if !bytes.Equal(note, last) {
			p, err := remote.PublishLog(ctx, r, dst, name, remote.PublishOptions{})
			if err != nil {
				log.Warn("log publish: not published; trying again later", "to", name, "err", err)
			} else {
				last = p.Checkpoint
				log.Info("log published", "to", name, "size", p.Size, "head", p.Head, "tiles", p.Tiles)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// discardResponse is a response nobody reads.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}
