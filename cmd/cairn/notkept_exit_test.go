package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/plan"
)

// Offline, a package this machine never read at the checkpoint it
// verified last is neither a lock to distrust nor ranges to change: a
// plain error (not exit 3) whose hint is to run once online.
func TestClassifyNotKeptOffline(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("%w: reading package acme/app: %w (size 36): run without --offline", plan.ErrUnresolvable, light.ErrNotKept),
		fmt.Errorf("checking cairn.lock: package acme/app@1.0.0: %w", light.ErrNotKept),
	} {
		code, hint := classify(err)
		if code != exitError || !strings.Contains(hint, "once online") {
			t.Errorf("classify(%v) = %d, %q; want exit %d and the hint to run once online", err, code, hint, exitError)
		}
	}
}

// A server that cannot be read (refused, a redirect loop, a bad URL) is
// said so, with what to check.
func TestClassifyUnreachable(t *testing.T) {
	_, err := http.Get("http://127.0.0.1:1/log/checkpoint")
	if err == nil {
		t.Fatal("a GET of port 1 succeeded")
	}
	code, hint := classify(fmt.Errorf("fetching the checkpoint: %w", err))
	if code != exitError || !strings.Contains(hint, "the server could not be read") {
		t.Errorf("classify(%v) = %d, %q", err, code, hint)
	}
}
