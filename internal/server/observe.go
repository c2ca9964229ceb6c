package server

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	uploads  prometheus.Counter
	routes   [nRoutes]routeSeries // the series of each route, bound once
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_http_requests_total", Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cairn_http_request_duration_seconds", Help: "HTTP request durations by route.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"route"}),
		bytes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_http_response_bytes_total", Help: "Bytes sent by route."}, []string{"route"}),
		uploads:  prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_blob_uploads_total", Help: "Blob uploads accepted."}),
	}
	reg.MustRegister(m.requests, m.duration, m.bytes, m.uploads)
	return m
}

// The routes of the metrics: a request is named by one of these, without
// its variable parts (routeOf).
const (
	routeGit = iota
	routeBlob
	routeBlobBatch
	routePackage
	routeRecord
	routeGo
	routeCheckpoint
	routeHead
	routeHealthz
	routeMetrics
	routeOther
	nRoutes
)

var routeNames = [nRoutes]string{"git", "blob", "blob_batch", "package", "record", "go", "api/v1/checkpoint", "api/v1/head", "healthz", "metrics", "other"}

// routeOf names a request for metrics, without its variable parts: one
// of the route constants.
func routeOf(r *http.Request) int { return routeOfPath(r.URL.Path) }

// routeOfPath is routeOf of a request for path p.
func routeOfPath(p string) int {
	switch {
	case strings.HasPrefix(p, "/index.git/"):
		return routeGit
	case strings.HasPrefix(p, "/blobs/sha256/"):
		return routeBlob
	case p == "/blobs/batch":
		return routeBlobBatch
	case strings.HasPrefix(p, "/api/v1/packages/"):
		return routePackage
	case strings.HasPrefix(p, "/api/v1/records/"):
		return routeRecord
	case strings.HasPrefix(p, "/go/"):
		return routeGo
	case p == "/api/v1/checkpoint":
		return routeCheckpoint
	case p == "/api/v1/head":
		return routeHead
	case p == "/healthz":
		return routeHealthz
	case p == "/metrics":
		return routeMetrics
	}
	return routeOther
}

// routeSeries are the metrics' series of one route, bound to its labels
// the first time the route is served (a series appears once it counts
// something, as WithLabelValues makes it), so that a request finds its
// series without hashing its labels.
type routeSeries struct {
	duration atomic.Pointer[prometheus.Observer]
	bytes    atomic.Pointer[prometheus.Counter]
	codes    [600]atomic.Pointer[prometheus.Counter] // requests by status code (< 600)
}

// count records one request of route rt answered code, with n bytes, in d.
func (m *metrics) count(rt, code int, n int64, d time.Duration) {
	rs := &m.routes[rt]
	name := routeNames[rt]
	var requests prometheus.Counter
	if code >= 0 && code < len(rs.codes) {
		c := rs.codes[code].Load()
		if c == nil {
			v := m.requests.WithLabelValues(name, strconv.Itoa(code))
			c = &v
			rs.codes[code].Store(c)
		}
		requests = *c
	} else {
		requests = m.requests.WithLabelValues(name, strconv.Itoa(code))
	}
	requests.Inc()
	o := rs.duration.Load()
	if o == nil {
		v := m.duration.WithLabelValues(name)
		o = &v
		rs.duration.Store(o)
	}
	(*o).Observe(d.Seconds())
	b := rs.bytes.Load()
	if b == nil {
		v := m.bytes.WithLabelValues(name)
		b = &v
		rs.bytes.Store(b)
	}
	(*b).Add(float64(n))
}

type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
	// fault is the start of a server error's answer (a 5xx: what the
	// server could not do, and why), for the operator's log.
	fault []byte
}

// maxFault is how much of a server error's answer the log keeps.
const maxFault = 512

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if r.code >= 500 && len(r.fault) < maxFault {
		r.fault = append(r.fault, p[:min(len(p), maxFault-len(r.fault))]...)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// smallBody is the size up to which a file is copied rather than sent
// with sendfile.
const smallBody = 16 << 10

// ReadFrom keeps sendfile for files served through the recorder.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	var n int64
	var err error
	if lr, ok := src.(*io.LimitedReader); ok && lr.N <= smallBody {
		// A small body goes out with the headers in one write; sendfile
		// would cost a write for the headers and a call for the body.
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	} else if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (for
// flushing, and for sendfile through ReadFrom).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// accessLog logs one structured line per request and counts it.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, ok := startOf(w)
		if !ok {
			start = time.Now()
		}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		s.logServed(r.Context(), start, r.Method, r.URL.Path, rec.code, rec.bytes, r.RemoteAddr)
		if rec.code >= 500 && rec.code != http.StatusServiceUnavailable {
			// A fault the operator must look at (a full disk, a store
			// that refuses writes), said as the client was told it; 503
			// is a limit reached, not a fault.
			s.log.Error("server error", "method", r.Method, "path", clip(r.URL.Path, maxEcho), "status", rec.code, "err", strings.TrimSpace(string(rec.fault)))
		}
	})
}

// logServed counts a request answered (begun at start, with code and n
// bytes of body) in the metrics and writes its access line.
func (s *Server) logServed(ctx context.Context, start time.Time, method, path string, code int, n int64, remote string) {
	d := time.Since(start)
	s.metrics.count(routeOfPath(path), code, n, d)
	h := s.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	path = clip(path, maxEcho)
	now := start.Add(d) // without asking the clock again
	if out := s.opts.AccessLog; out != nil {
		bp := lineBufs.Get().(*[]byte)
		line, ok := appendAccessLine((*bp)[:0], now, method, path, code, n, d, remote)
		if ok {
			out.Write(line)
		}
		*bp = line[:0]
		lineBufs.Put(bp)
		if ok {
			return
		}
	}
	// The record goes to the handler as LogAttrs would send it, less
	// the caller's program counter (runtime.Callers on every request):
	// an access line's source would be this line.
	line := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	line.AddAttrs(slog.String("method", method), slog.String("path", path), slog.Int("status", code),
		slog.Int64("bytes", n), slog.Duration("duration", d), slog.String("remote", remote))
	h.Handle(ctx, line)
}

// startOf returns when limit began the request w answers, if it did.
func startOf(w http.ResponseWriter) (time.Time, bool) {
	if rw, ok := w.(*rateWriter); ok && !rw.start.IsZero() {
		return rw.start, true
	}
	return time.Time{}, false
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendAccessLine appends a request's access line as slog's JSON
// handler (slog.NewJSONHandler(w, nil)) writes the record accessLog
// makes: the same bytes, without slog's machinery. It reports false,
// having appended something else, for a line that needs escapes (a
// string with a control character, a quote, a backslash or a byte past
// ASCII), which is left to slog.
func appendAccessLine(b []byte, t time.Time, method, path string, status int, n int64, d time.Duration, remote string) ([]byte, bool) {
	if y := t.Year(); y < 0 || y >= 10000 || !plainJSON(method) || !plainJSON(path) || !plainJSON(remote) {
		return b, false
	}
	b = append(b, `{"time":"`...)
	b = appendLogTime(b, t)
	b = append(b, `","level":"INFO","msg":"request","method":"`...)
	b = append(b, method...)
	b = append(b, `","path":"`...)
	b = append(b, path...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(d), 10)
	b = append(b, `,"remote":"`...)
	b = append(b, remote...)
	b = append(b, "\"}\n"...)
	return b, true
}

// logSecond is the text of one second of one location in a time's
// RFC 3339 form: the date and time up to the second, and the zone.
type logSecond struct {
	sec    int64
	loc    *time.Location
	prefix []byte // 2006-01-02T15:04:05
	zone   []byte // Z07:00
}

// lastLogSecond is the second the access lines were written in last.
var lastLogSecond atomic.Pointer[logSecond]

// appendLogTime appends t as t.AppendFormat(b, time.RFC3339Nano) does
// (slog's JSON handler's form), from the text of its second, formatted
// once a second rather than once a line, and its nanoseconds.
func appendLogTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	ls := lastLogSecond.Load()
	if ls == nil || ls.sec != sec || ls.loc != loc {
		ls = &logSecond{sec: sec, loc: loc, prefix: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastLogSecond.Store(ls)
	}
	b = append(b, ls.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		// A fraction of nine digits, less its trailing zeros.
		var d [10]byte
		d[0] = '.'
		for i := 9; i > 0; i-- {
			d[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(d)
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return append(b, ls.zone...)
}

// plainJSON says whether s is written in a JSON string as it is: every
// byte printable ASCII, none a quote or a backslash.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// slogAdapter turns a slog.Logger into the log.Logger the CGI handler
// wants.
func slogAdapter(l *slog.Logger) *log.Logger { return slog.NewLogLogger(l.Handler(), slog.LevelWarn) }

// maxEcho is the most of a client's path the server repeats in an
// access line: a path can be as long as a request head (64 KiB).
const maxEcho = 1 << 10

// clip returns s, or its first n bytes (a UTF-8 sequence whole) and how
// many were left out.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "… (" + strconv.Itoa(len(s)-i) + " bytes more)"
}
