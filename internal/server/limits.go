package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound every request in time and the server in concurrency, so
// that slow or many clients cannot hold its connections and git
// processes. The zero value of each field means its default.
//
// Time: a request's headers must arrive within HeaderTimeout; while the
// server waits on the client, for its body's bytes or for room to write
// its response, the client must keep up with MinRate bytes a second, and
// one that falls SlowTimeout behind is cut (a body that stalls or
// trickles: the connection is closed and its git process killed; a
// response it stopped reading: its writes fail); no request lasts longer
// than RequestTimeout (the requests of a keep-alive connection that
// follow one another closely may share the first one's deadline, up to
// a 64th of RequestTimeout earlier than their own); an idle keep-alive
// connection is closed after
// IdleTimeout. A large push or download at a sane rate is never cut by a
// fixed body timeout, nor a client for the server's own delays (its work
// between reads or writes, a loaded machine).
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
	// TrustedProxies are the addresses of the proxies in front of the
	// server (a load balancer; for a writer, its read replicas, which
	// forward pushes and uploads): a request from one of them is counted
	// against the client its X-Forwarded-For names (ClientAddr). Empty:
	// every request is its peer's.
	TrustedProxies []netip.Prefix
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
		// What a request holds, in one allocation.
		x := &exchange{ctx: deadlineCtx{parent: r.Context(), end: end}, rc: *http.NewResponseController(w)}
		defer x.ctx.close()
		rc := &x.rc
		c, _ := r.Context().Value(connKey{}).(net.Conn)
		hc, _ := c.(*heldConn)
		// A connection that takes no deadlines (a test's recorder) cannot
		// be cut: it is not paced. One whose deadline, set by the request
		// before this one, is at most a 64th of RequestTimeout earlier
		// than this one's keeps it.
		paced := hc != nil && hc.keepWriteDeadline(end, l.RequestTimeout/64) ||
			!errors.Is(rc.SetWriteDeadline(end), http.ErrNotSupported)
		var conn net.Conn
		if paced {
			conn = c
		}
		rw := &x.rw
		rw.ResponseWriter, rw.rc, rw.start = w, rc, start
		// A request without a body (nothing to answer 100 Continue to)
		// has its response held until its handler returns or flushes: it
		// goes out in one write (heldconn.go).
		if hc != nil && r.ProtoMajor == 1 && r.TLS == nil && (r.Body == nil || r.Body == http.NoBody) {
			hc.hold()
			rw.held = hc
			defer hc.release() // however the handler ends
			// Its background read waits until the handler asks whether
			// the request is over (heldconn.go).
			hc.lazyReads()
			x.ctx.conn = hc
		} else if hc != nil {
			hc.readsNow()
		}
		if hc != nil {
			defer hc.doneReads()
		}
		if paced {
			// All the server wrote was taken (conn's queues): it is the
			// server that is late (descheduled, its disk slow), not the
			// client.
			x.pace.init(l, rc, false, conn)
			x.pace.held = hc // its timer is the connection's, for its requests in turn
			rw.pace = &x.pace
			defer rw.pace.stop()
		}
		var body *rateReader
		if r.Body != nil && r.Body != http.NoBody {
			body = &rateReader{r: r.Body, rc: rc}
			if paced {
				rc.SetReadDeadline(end)
				// The client's bytes are there, not yet read (conn's
				// queues): it is the server that is late.
				body.pace = new(pace)
				body.pace.init(l, rc, true, conn)
				defer body.pace.stop()
			}
			r.Body = body
		}
		if isUpload(r) {
			ip := ClientAddr(r, l.TrustedProxies)
			if !s.uploads.acquire(ip, l.MaxClientUploads) {
				w.Header().Set("Retry-After", "5")
				httpError(w, http.StatusTooManyRequests, "%s already has %d uploads in progress, this server's limit per client (cairn serve --max-client-uploads): wait for one to finish", ip, l.MaxClientUploads)
				return
			}
			defer s.uploads.release(ip)
		}
		next.ServeHTTP(rw, r.WithContext(&x.ctx))
		whole := rw.release()
		if err := rw.cut(); err != nil {
			s.log.Warn("client cut", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		} else if paced && !whole {
			// What the server still holds (its buffer, the end of a
			// chunked body) goes out once the handler has returned, no
			// longer paced: it has its own deadline, for as much.
			tail := time.Now().Add(l.SlowTimeout + time.Duration(float64(tailBytes)/float64(l.MinRate)*float64(time.Second)))
			if tail.Before(end) {
				rc.SetWriteDeadline(tail)
			}
		}
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

// exchange is what limit holds for one request, allocated at once: its
// context, its response controller, and its paced response.
type exchange struct {
	ctx  deadlineCtx
	rc   http.ResponseController
	rw   rateWriter
	pace pace // rw's, when paced
}

// deadlineCtx is a request's context: its parent's, with the request's
// deadline (Limits.RequestTimeout), and canceled once the request is
// over (close), exactly as context.WithDeadline(parent, end) and its
// cancel at the request's end. The context.WithDeadline it stands for (a
// timer, a child registered with the parent) is made only when it is
// needed: when something waits on the request (Done), or asks it after
// its deadline passed, its parent ended or it was closed. Most requests
// end without any of these, and cost none of it.
type deadlineCtx struct {
	parent context.Context
	end    time.Time

	conn   *heldConn   // its connection's background read waits until Done or Err is asked (nil: it reads)
	asked  atomic.Bool // Done or Err was asked
	made   atomic.Bool // ctx is made
	closed atomic.Bool // the request is over
	mu     sync.Mutex  // guards the making of ctx, and close
	ctx    context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*deadlineCtx)(nil)

// real returns the context.WithDeadline c stands for, made once (and
// canceled at once if the request is already over).
func (c *deadlineCtx) real() context.Context {
	if c.made.Load() {
		return c.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.made.Load() {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.end)
		if c.closed.Load() {
			c.cancel()
		}
		c.made.Store(true)
	}
	return c.ctx
}

// ask says the handler looks for the request's end: its connection's
// background read reads from now on, to see the client leave (which
// ends the parent).
func (c *deadlineCtx) ask() {
	if c.conn != nil && !c.asked.Load() && !c.asked.Swap(true) {
		c.conn.readsNow()
	}
}

// settled says whether c's answers may differ from its parent's: it is
// made, over, past its deadline, or its parent ended.
func (c *deadlineCtx) settled() bool {
	return c.made.Load() || c.closed.Load() || c.parent.Err() != nil || !time.Now().Before(c.end)
}

// Deadline is the earlier of the parent's deadline and the request's.
func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.end) {
		return d, true
	}
	return c.end, true
}

// Done makes the real context: something waits on the request.
func (c *deadlineCtx) Done() <-chan struct{} {
	c.ask()
	return c.real().Done()
}

func (c *deadlineCtx) Err() error {
	c.ask()
	if c.settled() {
		return c.real().Err()
	}
	return nil
}

func (c *deadlineCtx) Value(key any) any {
	if c.settled() {
		// The real context answers context.Cause as its Err.
		return c.real().Value(key)
	}
	return c.parent.Value(key)
}

// close ends the request: c is canceled, as context.WithDeadline's
// cancel would.
func (c *deadlineCtx) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed.Store(true)
	if c.made.Load() {
		c.cancel()
	}
}

// connKey is the key of a request's connection in its context.
type connKey struct{}

// withConn puts a connection in its requests' contexts, where limit finds
// it (http.Server's ConnContext).
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// tailBytes bounds what net/http still writes of a response once its
// handler has returned (its buffers).
const tailBytes = 8 << 10

// longAgo is a deadline in the past: it ends a read or write at once.
var longAgo = time.Unix(1, 0)

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

// ClientAddr returns the address a request is counted against: its
// peer's, unless the peer is one of trusted, the proxies in front of the
// server; then the last address in its X-Forwarded-For (each proxy
// appends its own peer) that is not a trusted proxy's. A client cannot
// pass for another by sending X-Forwarded-For itself: a header is
// believed only as far as trusted proxies wrote it.
func ClientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := clientIP(r)
	isTrusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if len(trusted) == 0 || !isTrusted(peer) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if !isTrusted(h) {
			if _, err := netip.ParseAddr(h); err != nil {
				return peer // not an address: the header is not a proxy's
			}
			return h
		}
	}
	return peer // every hop a trusted proxy's
}

// pace holds one direction of a request's transfer (its body, or its
// response) to a minimum rate. The client is charged only while the
// server waits on it — a read of the body blocked for bytes, a write of
// the response blocked for room — at rate bytes a second, and each byte
// it moves pays one back; a client that falls grace behind (rate × grace
// bytes) is cut: the wait in progress ends at once (cutNow sets a
// deadline in the past) and every later one fails.
//
// Only a client that really is slow is cut. What the server does between
// waits (starting git, checking a signature, waiting for a slot, before
// the first byte) is not charged. Nor is the server's own lateness within
// a wait: a timer settles the lag every tick, and a tick at which the
// client is seen to have done its part (clients: the kernel holds no byte
// written that the client has not taken, or holds bytes it sent that the
// server has not read) is not charged; one that comes late (the machine
// was loaded, the process descheduled, while a remote client went on
// reading) charges at most two ticks. A deadline set ahead of time could
// not tell either from a slow client.
type pace struct {
	rate  float64 // bytes a second
	limit float64 // bytes of lag that cut: rate × grace
	grace time.Duration
	tick  time.Duration
	chunk int64                    // the most one wait covers: a small part of limit
	rc    *http.ResponseController // ends the wait in progress (cutNow)
	read  bool                     // the pace of a request body (else of a response)
	conn  net.Conn                 // the client's connection, whose queues tell whose the wait is (nil: taken to be the client's)
	held  *heldConn                // the connection whose timer this pace uses (nil: its own)

	mu      sync.Mutex
	waiting bool      // a wait is in progress
	since   time.Time // the lag is settled up to since
	lag     float64   // bytes behind
	moved   int64     // bytes moved so far
	timer   *time.Timer
	armed   bool // the timer will fire
	cut     bool
	stopped bool
}

// init readies p to pace a request's body (read) or its response, on the
// connection conn (nil: unknown) that rc controls.
func (p *pace) init(l Limits, rc *http.ResponseController, read bool, conn net.Conn) {
	*p = pace{rate: float64(l.MinRate), grace: l.SlowTimeout, rc: rc, read: read, conn: conn}
	p.limit = p.rate * l.SlowTimeout.Seconds()
	p.tick = min(max(l.SlowTimeout/8, 10*time.Millisecond), time.Second)
	// A client at the minimum rate moves a chunk while it falls a
	// quarter of the limit behind, never the whole of it.
	p.chunk = min(max(int64(p.limit/4), 1<<10), 1<<20)
}

// cutNow ends the wait in progress: a deadline in the past.
func (p *pace) cutNow() {
	if p.read {
		p.rc.SetReadDeadline(longAgo)
	} else {
		p.rc.SetWriteDeadline(longAgo)
	}
}

// clients says whether the wait is still the client's: the kernel holds
// bytes the server wrote that the client has not taken (a response), or
// holds none the client sent that the server has not read (a body).
// Without the connection's queues, it is taken to be.
func (p *pace) clients() bool {
	if p.conn == nil {
		return true
	}
	queues := connQueues(p.conn)
	if queues == nil {
		return true
	}
	out, in, ok := queues()
	if !ok {
		return true
	}
	if p.read {
		return in == 0
	}
	return out > 0
}

// begin starts a wait on the client.
func (p *pace) begin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiting = true
	p.since = time.Now()
	if p.stopped || p.armed {
		return
	}
	p.armed = true
	switch {
	case p.held != nil:
		p.timer = p.held.paceTimer(p)
		p.held.armPaces(p.tick)
	case p.timer != nil:
		p.timer.Reset(p.tick)
	default:
		p.timer = time.AfterFunc(p.tick, p.check)
	}
}

// end ends a wait in which the client moved n bytes, and tells whether
// the client was cut.
func (p *pace) end(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settle(time.Now())
	p.waiting = false
	p.moved += int64(n)
	p.lag = max(p.lag-float64(n), 0)
	return p.cut
}

// settle charges the wait since the last settlement, at most two ticks.
func (p *pace) settle(now time.Time) {
	if !p.waiting {
		return
	}
	d := min(now.Sub(p.since), 2*p.tick)
	if d > 0 {
		p.lag += p.rate * d.Seconds()
	}
	p.since = now
}

// check runs every tick while the client is waited on, and cuts it once
// it is too far behind.
func (p *pace) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || !p.waiting {
		p.armed = false
		return
	}
	now := time.Now()
	if !p.clients() {
		p.since = now // the server's own delay: not charged
	}
	p.settle(now)
	if p.lag > p.limit {
		p.cut, p.armed = true, false
		p.cutNow()
		return
	}
	if p.held != nil {
		p.held.armPaces(p.tick)
		return
	}
	p.timer.Reset(p.tick)
}

// stop ends the pacing: the client is not cut after it.
func (p *pace) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.timer != nil && p.held == nil {
		p.timer.Stop() // a connection's timer is left to fire (armPaces)
	}
}

// wasCut tells whether the client was cut, and how much it had moved.
func (p *pace) wasCut() (bool, int64) {
	if p == nil {
		return false, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut, p.moved
}

// rateReader is a request body that must keep up with its pace: a body
// that stalls, or trickles, is cut and reads fail with ErrSlowClient.
type rateReader struct {
	r         io.ReadCloser
	rc        *http.ResponseController
	pace      *pace // nil: the connection takes no deadlines
	mu        sync.Mutex
	err       error // the read that was cut, if one was
	abandoned bool  // the handler wants no more
}

func (b *rateReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.abandoned {
		b.mu.Unlock()
		return 0, errAbandoned
	}
	if b.err != nil {
		b.mu.Unlock()
		return 0, b.err
	}
	b.mu.Unlock()
	if b.pace == nil {
		return b.r.Read(p)
	}
	b.pace.begin()
	n, err := b.r.Read(p)
	cut := b.pace.end(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.abandoned {
		return n, err
	}
	_, moved := b.pace.wasCut()
	switch {
	case cut && err != nil:
		err = fmt.Errorf("%w: request body of %d bytes so far, more than %s behind %d bytes/s (cairn serve --min-rate, --slow-timeout): %w", ErrSlowClient, moved, b.pace.grace, int64(b.pace.rate), err)
	case cut:
		err = fmt.Errorf("%w: request body of %d bytes so far, more than %s behind %d bytes/s (cairn serve --min-rate, --slow-timeout)", ErrSlowClient, moved, b.pace.grace, int64(b.pace.rate))
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: request body of %d bytes so far, not whole by the request's deadline (cairn serve --request-timeout): %w", ErrSlowClient, moved, err)
	default:
		return n, err
	}
	b.err = err
	return n, err
}

// abandon ends the reads: one in progress returns at once, and none
// after it counts as the client's failure.
func (b *rateReader) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.abandoned = true
	if b.pace != nil {
		b.pace.stop()
	}
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

// rateWriter is a response that must keep up with its pace: a client
// that stops reading, or reads too slowly, is cut (its writes fail), and
// one reading at the minimum rate or faster is not, however long the
// response or loaded the server.
type rateWriter struct {
	http.ResponseWriter
	start time.Time // when limit began the request (accessLog's start too)
	rc    *http.ResponseController
	pace  *pace     // nil: the connection takes no deadlines
	held  *heldConn // the connection holding the response (nil: none)
	wrote bool      // the handler wrote
}

// headersFirst, before a held response's first write of n bytes,
// sends its headers ahead to the connection, which holds them, when n
// is more than the connection copies and the response's length and
// type are declared (so that the headers are what they would be after
// the write: no sniffed type, no chunking): the body then goes from the
// handler's bytes to the kernel with the headers, in one writev, rather
// than through net/http's buffer and the connection's copy.
func (w *rateWriter) headersFirst(n int) {
	if n <= holdCopy {
		return
	}
	h := w.Header()
	if len(h["Content-Length"]) != 1 || len(h["Content-Type"]) == 0 {
		return
	}
	w.rc.Flush()
}

// release sends what the connection holds of the response, with what
// net/http still buffers of it once the handler has returned (its
// headers went out already, or its length is declared, so the framing
// is settled: a flush does not change it): the whole response in one
// write. It tells whether the response is whole: of a declared length,
// all of it sent (net/http has nothing left to write of it, as it would
// the end of a chunked body).
func (w *rateWriter) release() (whole bool) {
	if w.held == nil {
		return false
	}
	hc := w.held
	w.held = nil
	declared := len(w.Header()["Content-Length"]) == 1
	if !hc.holds() && !declared {
		hc.release()
		return false
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	var err error
	if w.pace == nil || !hc.holds() {
		err = hc.release()
	} else {
		n := len(*hc.held)
		w.pace.begin()
		err = hc.release()
		w.pace.end(n)
	}
	return err == nil && declared
}

func (w *rateWriter) Write(p []byte) (int, error) {
	if w.held != nil && !w.wrote {
		w.wrote = true
		w.headersFirst(len(p))
	}
	if w.pace == nil || len(p) == 0 {
		return w.ResponseWriter.Write(p)
	}
	var total int
	for len(p) > 0 {
		// A chunk at a time: what the client moved is known as it goes.
		w.pace.begin()
		n, err := w.ResponseWriter.Write(p[:min(int64(len(p)), w.pace.chunk)])
		w.pace.end(n)
		total += n
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

// ReadFrom keeps sendfile for files, a chunk at a time, each one wait.
func (w *rateWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	lr, limited := src.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	if w.pace == nil {
		return rf.ReadFrom(src)
	}
	var total int64
	for lr.N > 0 {
		chunk := &io.LimitedReader{R: lr.R, N: min(lr.N, w.pace.chunk)}
		w.pace.begin()
		n, err := rf.ReadFrom(chunk)
		w.pace.end(int(n))
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

// Unwrap lets http.ResponseController reach the connection.
func (w *rateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// FlushError flushes (git's responses stream), a wait like a write.
func (w *rateWriter) FlushError() error {
	if w.pace == nil {
		return w.flush()
	}
	w.pace.begin()
	err := w.flush()
	w.pace.end(0)
	return err
}

// flush flushes the response, and what the connection holds of it: a
// handler that flushes streams, and its response is held no longer.
func (w *rateWriter) flush() error {
	err := w.rc.Flush()
	if hc := w.held; hc != nil {
		w.held = nil
		if rerr := hc.release(); err == nil {
			err = rerr
		}
	}
	return err
}

// Flush is FlushError for those that want no error.
func (w *rateWriter) Flush() { w.FlushError() }

// cut returns why the response was cut, if it was.
func (w *rateWriter) cut() error {
	cut, moved := w.pace.wasCut()
	if !cut {
		return nil
	}
	return fmt.Errorf("%w: response of %d bytes so far, more than %s behind %d bytes/s (cairn serve --min-rate, --slow-timeout)", ErrSlowClient, moved, w.pace.grace, int64(w.pace.rate))
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
