package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/remote"
)

// publishEvery is cairn serve --log-to: every interval, it has the
// server sign a checkpoint of main's verified head if main moved (a read
// of its own /log/checkpoint, in process), and when the checkpoint
// changed, publishes the log to the store (remote.PublishLog, with the
// checkpoint the server signed). A failure is logged; the next round
// tries again.
func publishEvery(ctx context.Context, dir string, h http.Handler, to string, every time.Duration, log *slog.Logger, m *logPublishMetrics) {
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
				m.failures.Inc()
				log.Warn("log publish: not published; trying again later", "to", name, "err", err)
			} else {
				last = p.Checkpoint
				m.published.Set(float64(p.Size))
				m.at.SetToCurrentTime()
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

// logPublishMetrics are cairn serve --log-to's, in /metrics: a copy that
// stops being published is seen there before its checkpoint grows too
// old for its readers (--max-age).
type logPublishMetrics struct {
	published, at prometheus.Gauge
	failures      prometheus.Counter
}

func newLogPublishMetrics() *logPublishMetrics {
	return &logPublishMetrics{
		published: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_log_published_size", Help: "The tree size of the checkpoint --log-to last published (0 before the first)."}),
		at:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_log_published_timestamp_seconds", Help: "When --log-to last published the log, in Unix seconds (0 before the first)."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_log_publish_failures_total", Help: "Rounds of --log-to that did not publish (see the log); each is tried again the next round."}),
	}
}

// discardResponse is a response nobody reads.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}
