package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Limits bound every request in time and the server in concurrency, so
// that slow or many clients cannot hold its connections and git
// processes. The zero value of each field means its default.
//
// Time: a request's headers must arrive within HeaderTimeout; its body
// must arrive at MinRate bytes a second on average, after a first
// SlowTimeout (a body that stalls, or trickles, is cut: the connection is
// closed and its git process killed), and each write of a response must
// drain at MinRate, after the same SlowTimeout; no request lasts longer
// than RequestTimeout; an idle keep-alive connection is closed after
// IdleTimeout. A large push or download at a sane rate is never cut by a
// fixed body timeout.
//
// Concurrency: at most MaxGit git processes run at once (a request that
// finds them all busy waits up to GitWait, then is answered 503 with
// Retry-After), and one client address uploads (blob PUTs and pushes) at
// most MaxClientUploads at once (more are answered 429). Behind a proxy,
// every client has the proxy's address: set MaxClientUploads to what the
// proxy may send at once, and bound clients in the proxy.
type Limits struct {
	HeaderTimeout    time.Duration // request line and headers (default 10 s)
	IdleTimeout      time.Duration // an idle keep-alive connection (default 2 min)
	RequestTimeout   time.Duration // a whole request, body and response (default 1 h)
	SlowTimeout      time.Duration // how far a transfer may lag behind MinRate (default 30 s)
	MinRate          int64         // bytes a second a body or response must sustain (default 16 KiB/s)
	MaxGit           int           // git processes at once (default 4 per CPU, at least 16)
	GitWait          time.Duration // how long a request waits for a git process slot (default 2 s)
	MaxClientUploads int           // concurrent uploads per client address (default 4)
}

// check refuses negative bounds.
func (l Limits) check() error {
	for _, f := range []struct {
		flag string
		v    int64
	}{
		{"header-timeout", int64(l.HeaderTimeout)}, {"idle-timeout", int64(l.IdleTimeout)}, {"request-timeout", int64(l.RequestTimeout)},
		{"slow-timeout", int64(l.SlowTimeout)}, {"min-rate", l.MinRate}, {"max-git", int64(l.MaxGit)},
		{"max-client-uploads", int64(l.MaxClientUploads)}, {"git wait", int64(l.GitWait)},
	} {
		if f.v < 0 {
			return fmt.Errorf("--%s is negative: give a positive bound, or 0 for the default", f.flag)
		}
	}
	return nil
}

// withDefaults fills in the zero fields.
func (l Limits) withDefaults() Limits {
	if l.HeaderTimeout == 0 {
		l.HeaderTimeout = 10 * time.Second
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = 2 * time.Minute
	}
	if l.RequestTimeout == 0 {
		l.RequestTimeout = time.Hour
	}
	if l.SlowTimeout == 0 {
		l.SlowTimeout = 30 * time.Second
	}
	if l.MinRate == 0 {
		l.MinRate = 16 << 10
	}
	if l.MaxGit == 0 {
		l.MaxGit = max(16, 4*runtime.GOMAXPROCS(0))
	}
	if l.GitWait == 0 {
		l.GitWait = 2 * time.Second
	}
	if l.MaxClientUploads == 0 {
		l.MaxClientUploads = 4
	}
	return l
}

// ErrSlowClient is the family of errors of a request cut for being slower
// than the server's limits allow.
var ErrSlowClient = errors.New("client too slow")

// limit bounds each request in time (see Limits), counts its uploads
// against its client's, and closes the connection of a request whose
// body was cut, once the handler has answered (and the answer is logged).
func (s *Server) limit(next http.Handler) http.Handler {
	l := s.opts.Limits
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		end := start.Add(l.RequestTimeout)
		ctx, cancel := context.WithDeadline(r.Context(), end)
		defer cancel()
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(end) // each write arms its own, never later
		dw := &deadlineWriter{ResponseWriter: w, rc: rc, end: end, grace: l.SlowTimeout, rate: l.MinRate}
		var body *rateReader
		if r.Body != nil && r.Body != http.NoBody {
			body = &rateReader{r: r.Body, rc: rc, start: start, end: end, grace: l.SlowTimeout, rate: l.MinRate}
			r.Body = body
		}
		if isUpload(r) {
			ip := clientIP(r)
			if !s.uploads.acquire(ip, l.MaxClientUploads) {
				w.Header().Set("Retry-After", "5")
				httpError(w, http.StatusTooManyRequests, "%s already has %d uploads in progress, this server's limit per client (cairn serve --max-client-uploads): wait for one to finish", ip, l.MaxClientUploads)
				return
			}
			defer s.uploads.release(ip)
		}
		next.ServeHTTP(dw, r.WithContext(ctx))
		if err := body.cut(); err != nil {
			s.log.Warn("client cut", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			if w.Header().Get("Connection") != "close" {
				// The handler did not answer it (408, then close): close
				// the connection now, without a logged stack.
				panic(http.ErrAbortHandler)
			}
		}
	})
}

// isUpload tells the requests that bring data to store: blob uploads and
// pushes.
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPut || (r.Method == http.MethodPost && isReceivePack(r))
}

func isReceivePack(r *http.Request) bool {
	return len(r.URL.Path) >= len("/git-receive-pack") && r.URL.Path[len(r.URL.Path)-len("/git-receive-pack"):] == "/git-receive-pack"
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// rateReader is a request body that must arrive at rate bytes a second,
// after grace: the connection's read deadline for the next byte is
// start + grace + received/rate (never after end). A body that stalls or
// trickles meets the deadline and reads fail with ErrSlowClient.
type rateReader struct {
	r           io.ReadCloser
	rc          *http.ResponseController
	start, end  time.Time
	grace       time.Duration
	rate        int64
	mu          sync.Mutex
	n           int64
	err         error // the read that was cut, if one was
	noDeadlines bool  // the connection takes none (a test's recorder)
	abandoned   bool  // the handler wants no more
}

func (b *rateReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.abandoned {
		b.mu.Unlock()
		return 0, errAbandoned
	}
	if !b.noDeadlines {
		d := b.start.Add(b.grace + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)))
		if d.After(b.end) {
			d = b.end
		}
		if err := b.rc.SetReadDeadline(d); errors.Is(err, http.ErrNotSupported) {
			b.noDeadlines = true
		}
	}
	b.mu.Unlock()
	n, err := b.r.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !b.abandoned {
		err = fmt.Errorf("%w: request body of %d bytes so far, slower than %d bytes/s after %s (cairn serve --min-rate, --slow-timeout): %w", ErrSlowClient, b.n, b.rate, b.grace, err)
		b.err = err
	}
	return n, err
}

// abandon ends the reads: one in progress returns at once, and none
// after it counts as the client's failure.
func (b *rateReader) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.abandoned = true
	b.rc.SetReadDeadline(time.Now())
}

// errAbandoned is what reads of an abandoned body return.
var errAbandoned = errors.New("request body abandoned")

func (b *rateReader) Close() error { return b.r.Close() }

// cut returns the error of the read that was cut, if one was.
func (b *rateReader) cut() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// deadlineWriter gives each write of a response a deadline: now + grace
// + its size at rate bytes a second (never after end), so that a client
// that stops reading is cut, and one reading slowly is not.
type deadlineWriter struct {
	http.ResponseWriter
	rc          *http.ResponseController
	end         time.Time
	grace       time.Duration
	rate        int64
	noDeadlines bool
}

func (w *deadlineWriter) arm(size int64) {
	if w.noDeadlines {
		return
	}
	d := time.Now().Add(w.grace + time.Duration(float64(size)/float64(w.rate)*float64(time.Second)))
	if d.After(w.end) {
		d = w.end
	}
	if err := w.rc.SetWriteDeadline(d); errors.Is(err, http.ErrNotSupported) {
		w.noDeadlines = true
	}
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.arm(int64(len(p)))
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile for files, a chunk at a time, each with its
// own deadline: a client that stops reading a large file is cut after
// about grace + chunk/rate, not size/rate.
func (w *deadlineWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	lr, limited := src.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	var total int64
	for lr.N > 0 {
		chunk := &io.LimitedReader{R: lr.R, N: min(lr.N, writeChunk)}
		w.arm(chunk.N)
		n, err := rf.ReadFrom(chunk)
		total += n
		lr.N -= n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break // the source ended early
		}
	}
	return total, nil
}

// writeChunk is how much of a file one deadline covers.
const writeChunk = 1 << 20

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes (git's responses stream).
func (w *deadlineWriter) Flush() {
	w.arm(0)
	w.rc.Flush()
}

// clients counts what each client address has in progress.
type clients struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *clients) acquire(ip string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[ip] >= limit {
		return false
	}
	c.n[ip]++
	return true
}

func (c *clients) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip]--; c.n[ip] <= 0 {
		delete(c.n, ip)
	}
}

// slots is a semaphore: at most cap(slots) holders at once.
type slots chan struct{}

// acquire takes a slot, waiting up to wait (or until ctx is done).
func (s slots) acquire(ctx context.Context, wait time.Duration) bool {
	select {
	case s <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (s slots) release() { <-s }

// retryAfter is the Retry-After of a busy answer, in seconds.
var retryAfter = strconv.Itoa(2)
