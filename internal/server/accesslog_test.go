package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// The access lines written directly (Options.AccessLog) are the bytes
// slog's JSON handler writes for the same record, escapes and all (a
// line that needs them is slog's own), as a server writes them.
func TestAccessLogDirect(t *testing.T) {
	at := time.Date(2026, 12, 1, 4, 27, 0, 322629000, time.UTC)
	for _, x := range []struct {
		method, path, remote string
		code                 int
		n                    int64
		d                    time.Duration
		when                 time.Time
	}{
		{"GET", "/log/tile/0/x001/000", "127.0.0.1:42770", 200, 8192, 7331 * time.Nanosecond, at},
		{"HEAD", "/blobs/sha256/ab", "[::1]:1", 404, 0, time.Hour, at.Add(678 * time.Nanosecond)},
		{"GET", "/a b/<&>'", "10.0.0.1:80", 500, -1, 0, time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))},
		{"GET", `/quote"d`, "r", 200, 1, 1, at},
		{"GET", `/back\slash`, "r", 200, 1, 1, at},
		{"GET", "/tab\there", "r", 200, 1, 1, at},
		{"GET", "/caf\u00e9", "r", 200, 1, 1, at},
		{"GET", "/bad\xff", "r", 200, 1, 1, at},
		{"GET", "/line\u2028sep", "r", 200, 1, 1, at},
		{"GET", "/del\x7f", "r", 200, 1, 1, at},
	} {
		var want strings.Builder
		line := slog.NewRecord(x.when, slog.LevelInfo, "request", 0)
		line.AddAttrs(slog.String("method", x.method), slog.String("path", x.path), slog.Int("status", x.code),
			slog.Int64("bytes", x.n), slog.Duration("duration", x.d), slog.String("remote", x.remote))
		slog.NewJSONHandler(&want, nil).Handle(t.Context(), line)
		got, ok := appendAccessLine(nil, x.when, x.method, x.path, x.code, x.n, x.d, x.remote)
		plain := !strings.ContainsAny(x.path, "\"\\\t\x7f") && !strings.ContainsFunc(x.path, func(r rune) bool { return r > 0x7e })
		if ok != plain {
			t.Errorf("%q: written directly %v, want %v", x.path, ok, plain)
		}
		if ok && string(got) != want.String() {
			t.Errorf("%q:\n got %s\nwant %s", x.path, got, want.String())
		}
	}

	// Through a server: lines written directly and slog's, in one
	// stream, each as slog writes it.
	var out syncBuffer
	f := newFixture(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&out, nil))
		o.AccessLog = &out
	})
	for _, p := range []string{"/log/tile/0/000", "/blobs/sha256/%22quoted%22", "/healthz"} {
		resp, _ := f.do("GET", p, nil, nil)
		resp.Body.Close()
	}
	var lines int
	for l := range strings.SplitSeq(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if rec["msg"] != "request" {
			continue
		}
		lines++
		when, _ := time.Parse(time.RFC3339Nano, rec["time"].(string))
		d := time.Duration(rec["duration"].(float64))
		var want strings.Builder
		line := slog.NewRecord(when, slog.LevelInfo, "request", 0)
		line.AddAttrs(slog.String("method", rec["method"].(string)), slog.String("path", rec["path"].(string)), slog.Int("status", int(rec["status"].(float64))),
			slog.Int64("bytes", int64(rec["bytes"].(float64))), slog.Duration("duration", d), slog.String("remote", rec["remote"].(string)))
		slog.NewJSONHandler(&want, nil).Handle(t.Context(), line)
		if l+"\n" != want.String() {
			t.Errorf("access line\n got %s\nwant %s", l, want.String())
		}
	}
	if lines < 3 {
		t.Fatalf("%d access lines for 3 requests in:\n%s", lines, out.String())
	}
}

// appendLogTime writes a time as time.RFC3339Nano does, whatever its
// second, fraction and zone, including a second and zone it wrote just
// before.
func FuzzAppendLogTime(f *testing.F) {
	f.Add(int64(1796110381), uint32(322629000), int16(0))
	f.Add(int64(1796110381), uint32(0), int16(60))
	f.Add(int64(1796110381), uint32(1), int16(-330))
	f.Add(int64(0), uint32(999999999), int16(0))
	f.Add(int64(253402300799), uint32(100), int16(840))
	f.Fuzz(func(t *testing.T, sec int64, nsec uint32, offset int16) {
		zones := []*time.Location{time.UTC, time.Local, time.FixedZone("x", int(offset)*60)}
		for _, loc := range zones {
			at := time.Unix(sec, int64(nsec%1e9)).In(loc)
			if y := at.Year(); y < 0 || y >= 10000 {
				return
			}
			want := at.AppendFormat(nil, time.RFC3339Nano)
			for range 2 { // the second formatted, then kept
				if got := appendLogTime(nil, at); string(got) != string(want) {
					t.Fatalf("appendLogTime(%v) = %s, want %s", at, got, want)
				}
			}
		}
	})
}

// A server error (a 5xx but 503, a limit) is logged at ERROR with what
// the client was told: a blob upload that failed for a full disk showed
// only "status":500 at INFO.
func TestAccessLogServerErrors(t *testing.T) {
	var out syncBuffer
	f := newFixture(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&out, nil))
	})
	h := f.srv.accessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			httpError(w, http.StatusServiceUnavailable, "the server is busy")
			return
		}
		httpError(w, http.StatusInternalServerError, "storing sha256:%s: write blobs/tmp/blob-1: no space left on device", strings.Repeat("0", 64))
	}))
	for _, p := range []string{"/blobs/sha256/x", "/busy"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PUT", p, nil))
	}
	var errs []map[string]any
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			var line map[string]any
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
			errs = append(errs, line)
		}
	}
	if len(errs) != 1 {
		t.Fatalf("%d ERROR lines, want one (the 500, not the 503):\n%s", len(errs), out.String())
	}
	if e := errs[0]; e["path"] != "/blobs/sha256/x" || e["status"] != 500.0 || !strings.Contains(e["err"].(string), "no space left on device") {
		t.Fatalf("ERROR line %v, want the path, 500 and the reason", e)
	}
}
