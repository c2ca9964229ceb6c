package server

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestAccessLog: one JSON line per request, with what was asked, what
// was answered, and by whom, in the logger's own format (its attributes
// too).
func TestAccessLog(t *testing.T) {
	var out syncBuffer
	f := newFixture(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&out, nil)).With("server", "test")
	})
	missing := "/blobs/sha256/" + strings.Repeat("0", 64)
	start := time.Now().Add(-time.Second)
	resp, body := f.do("GET", missing, nil, nil)
	if resp.StatusCode != 404 {
		t.Fatalf("GET %s: %s", missing, resp.Status)
	}
	var line map[string]any
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, missing) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("access line %q: %v", l, err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no access line for GET %s in:\n%s", missing, out.String())
	}
	when, err := time.Parse(time.RFC3339Nano, line["time"].(string))
	if err != nil || when.Before(start) || when.After(time.Now()) {
		t.Errorf("time %v: %v", line["time"], err)
	}
	want := map[string]any{"level": "INFO", "server": "test", "method": "GET", "path": missing, "status": 404.0, "bytes": float64(len(body))}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s: %v (%T), want %v", k, line[k], line[k], v)
		}
	}
	if d, ok := line["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration %v, want a positive number of nanoseconds", line["duration"])
	}
	if r, _ := line["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
		t.Errorf("remote %v, want the client's address", line["remote"])
	}
	if len(line) != len(want)+4 { // and time, msg, duration, remote
		t.Errorf("access line %v: want exactly %d keys (no source)", line, len(want)+4)
	}
}
