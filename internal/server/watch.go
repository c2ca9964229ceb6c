package server

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"cairn.dev/cairn/internal/index"
)

// changes wakes the requests waiting for main to move.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// maxHeadWait bounds how long GET /api/v1/head holds a request.
const maxHeadWait = 60 * time.Second

// headGet serves GET /api/v1/head?after=COMMIT&wait=SECONDS: main's head,
// at once when it is not COMMIT, else as soon as a push moves it, or
// after the wait (at most 60 s) whichever comes first. It is a wake-up
// call for followers (a certifier), not a statement to trust: they pull
// and verify, and check the signed checkpoint, as always.
func (s *Server) headGet(w http.ResponseWriter, r *http.Request) {
	after := r.URL.Query().Get("after")
	wait := time.Duration(0)
	if v := r.URL.Query().Get("wait"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 {
			httpError(w, http.StatusBadRequest, "wait=%q: want seconds", v)
			return
		}
		wait = min(time.Duration(secs*float64(time.Second)), maxHeadWait)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Taken before reading the head: a push that lands after the
		// read closes it.
		moved := s.changes.wait()
		head, err := s.repo.Head(r.Context(), index.MainRef)
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "index: %v", err)
			return
		}
		if head != after || wait == 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprintln(w, head)
			return
		}
		select {
		case <-moved:
		case <-time.After(2 * time.Second): // main moved by other means (the CLI on the same directory)
		case <-deadline.C:
			wait = 0
		case <-s.shutdown: // the server is stopping: answer now
			wait = 0
		case <-r.Context().Done():
			return
		}
	}
}
