package server

import (
	"io"
	"log"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	uploads  prometheus.Counter
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

// route names a request for metrics, without its variable parts.
func route(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/index.git/"):
		return "git"
	case strings.HasPrefix(p, "/blobs/sha256/"):
		return "blob"
	case p == "/blobs/batch":
		return "blob_batch"
	case strings.HasPrefix(p, "/api/v1/packages/"):
		return "package"
	case strings.HasPrefix(p, "/api/v1/records/"):
		return "record"
	case strings.HasPrefix(p, "/go/"):
		return "go"
	case p == "/api/v1/checkpoint", p == "/api/v1/head", p == "/healthz", p == "/metrics":
		return p[1:]
	}
	return "other"
}

type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
}

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
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		d := time.Since(start)
		rt := route(r)
		s.metrics.requests.WithLabelValues(rt, strconv.Itoa(rec.code)).Inc()
		s.metrics.duration.WithLabelValues(rt).Observe(d.Seconds())
		s.metrics.bytes.WithLabelValues(rt).Add(float64(rec.bytes))
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.code),
			slog.Int64("bytes", rec.bytes), slog.Duration("duration", d), slog.String("remote", r.RemoteAddr))
	})
}

// slogAdapter turns a slog.Logger into the log.Logger the CGI handler
// wants.
func slogAdapter(l *slog.Logger) *log.Logger { return slog.NewLogLogger(l.Handler(), slog.LevelWarn) }
