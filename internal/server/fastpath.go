package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cairn.dev/cairn/internal/blob"
)

// The fast path: the reads a server answers from memory, answered
// without net/http.
//
// Tiles and entry bundles of the log and small blobs are what tlog
// clients, mirrors and installers read by the thousand, a few KiB each
// and the same bytes for everyone; net/http's own work for a request
// (its request, header maps and context, its response and buffers, the
// background read) costs more than such an answer, and holds a server
// to about 0.6 of nginx on the same bytes. So a connection starts here:
// while its requests are plain HTTP/1.1 GETs or HEADs (no body, no
// range, no condition, only the headers fastHeaders lists) of a tile
// within the served tree or of a small blob the store holds (and no
// policy gates blobs), each is answered here, in one write, with the
// status, headers and body net/http's route gives. At the first request
// that is anything else (another route, a body, another header, a line
// this parser does not take, an answer that is not 200 OK) the
// connection is handed to net/http with every byte read of it, and
// net/http serves it from that request on: it never comes back. The
// parser here only ever says "mine" or "not mine": every error answer,
// every odd request, is net/http's. Each request answered here is
// counted and logged as net/http's are (logServed).

// fastListener accepts the server's connections and serves each on the
// fast path until it hands it to net/http, to which it is the listener:
// Accept returns the connections handed over.
type fastListener struct {
	net.Listener // what it accepts from
	s            *Server
	ctx          context.Context // the fast path's reads' context, ended by close
	cancel       context.CancelFunc
	handoff      chan net.Conn // to net/http (Accept)
	done         chan struct{} // closed once accepting has stopped
	err          error         // why, set before done is closed

	mu       sync.Mutex
	conns    map[*fastConn]struct{}
	serving  sync.WaitGroup // the connections' goroutines
	shutting atomic.Bool    // no new request is read: idle connections close
}

func newFastListener(s *Server, l net.Listener) *fastListener {
	ctx, cancel := context.WithCancel(context.Background())
	fl := &fastListener{Listener: l, s: s, ctx: ctx, cancel: cancel, handoff: make(chan net.Conn), done: make(chan struct{}), conns: map[*fastConn]struct{}{}}
	go fl.run()
	return fl
}

// run accepts connections until the listener is closed or fails.
func (l *fastListener) run() {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if !errors.Is(err, net.ErrClosed) && errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors, say: wait, as net/http does.
				wait = min(max(2*wait, 5*time.Millisecond), time.Second)
				l.s.log.Warn("accepting a connection", "err", err, "retry in", wait)
				time.Sleep(wait)
				continue
			}
			l.err = err
			close(l.done)
			return
		}
		wait = 0
		fc := &fastConn{Conn: c, l: l}
		l.mu.Lock()
		l.conns[fc] = struct{}{}
		l.serving.Add(1)
		l.mu.Unlock()
		go fc.serve()
	}
}

// isTemporary says whether an accept error is one to wait out (the
// process or the system out of file descriptors or memory).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Accept returns the next connection handed to net/http.
func (l *fastListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// shutdown stops reading new requests: a connection that waits for one,
// or is amid its head, closes now (as net/http closes one amid a head);
// one writing an answer, once it is written. It does not wait (wait
// does).
func (l *fastListener) shutdown() {
	l.shutting.Store(true) // before the deadlines: a read begun after sees it
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if !c.answering.Load() {
			c.Conn.SetReadDeadline(longAgo) // its read ends; it sees shutting
		}
	}
}

// wait waits until every connection on the fast path is closed or handed
// over, or ctx is done: then it closes those left and cancels their
// reads.
func (l *fastListener) wait(ctx context.Context) {
	<-l.done // accepting has stopped: no connection is added after
	done := make(chan struct{})
	go func() { l.serving.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.conns {
			c.Conn.Close()
		}
		l.mu.Unlock()
		<-done
	}
	l.cancel()
}

// fastConn is a connection on the fast path, served by one goroutine.
type fastConn struct {
	net.Conn
	l         *fastListener
	answering atomic.Bool // writing an answer (shutdown lets it end)
	answered  int         // requests answered here
	remote    string      // RemoteAddr, for the access lines
	buf       []byte      // what was read: buf[r:w] is not answered yet
	r, w      int
	rdl       time.Time // the deadlines set last
	wdl       time.Time
	// headDeadline is when the head being read must be in (HeaderTimeout
	// from its start), zero between heads.
	headDeadline time.Time
}

// fastBufSize is the most of a request head the fast path reads: a
// longer one is net/http's (MaxHeaderBytes).
const fastBufSize = 4 << 10

// fastCopy is the largest body copied behind its head into one write; a
// larger one goes out with it by writev.
const fastCopy = 16 << 10

// fastBufs are connections' read buffers, fastOuts the buffers answers
// are built in, taken for an answer and put back once it is written.
var fastBufs = sync.Pool{New: func() any { b := make([]byte, fastBufSize); return &b }}
var fastOuts = sync.Pool{New: func() any { b := make([]byte, 0, 512+fastCopy); return &b }}

func (c *fastConn) serve() {
	l := c.l
	handed := false
	defer func() {
		if p := recover(); p != nil {
			l.s.log.Error("fast path: a panic serving a connection", "panic", p, "remote", c.remote)
		}
		if !handed {
			c.Conn.Close()
		}
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		l.serving.Done()
	}()
	c.remote = c.Conn.RemoteAddr().String()
	bp := fastBufs.Get().(*[]byte)
	c.buf = *bp
	defer func() {
		c.buf = nil
		fastBufs.Put(bp)
	}()
	for {
		head, mine, ok := c.nextHead()
		if !ok {
			return // closed, timed out or shut down
		}
		if head == nil {
			// A head begun and not all read, net/http's from here: it
			// has what is left of its HeaderTimeout, not one more.
			handed = c.handOff(c.headDeadline)
			return
		}
		var req fastRequest
		if mine {
			req, mine = parseFast(head)
		}
		alive := true
		if mine {
			mine, alive = c.answer(req)
		}
		if !alive {
			return // the answer could not be written: the client is gone or stalled
		}
		if !mine {
			handed = c.handOff(time.Time{})
			return
		}
		c.r += len(head)
		if c.r == c.w {
			c.r, c.w = 0, 0
		}
		if req.close || l.shutting.Load() {
			return
		}
	}
}

// nextHead returns the next request's head, through its blank line, once
// it is all read; mine false when what was read so far is net/http's
// already (a line that is no fast request, a head longer than the
// buffer). ok is false when the connection is to close: it did, it
// timed out, or the server is shutting down and it is idle.
func (c *fastConn) nextHead() (head []byte, mine, ok bool) {
	lim := c.l.s.opts.Limits
	begun := false // this head's HeaderTimeout is set
	c.headDeadline = time.Time{}
	for {
		pending := c.buf[c.r:c.w]
		if i := bytes.Index(pending, crlfcrlf); i >= 0 {
			return pending[:i+4], true, true
		}
		if len(pending) > 0 && !mayBeFast(pending) {
			return nil, false, true
		}
		if len(pending) == len(c.buf) {
			return nil, false, true // longer than the fast path reads
		}
		if c.r > 0 {
			c.w = copy(c.buf, pending)
			c.r = 0
		}
		// As net/http: a connection's first head, from its accept, and
		// each later one, from its first byte, within HeaderTimeout;
		// between requests, IdleTimeout for the next one's first byte.
		now := time.Now()
		if c.w == 0 && c.answered > 0 {
			if want := now.Add(lim.IdleTimeout); c.rdl.Before(want.Add(-lim.IdleTimeout / 64)) {
				c.rdl = want
				c.Conn.SetReadDeadline(want)
			}
		} else if !begun {
			begun = true
			c.rdl = now.Add(lim.HeaderTimeout)
			c.headDeadline = c.rdl
			c.Conn.SetReadDeadline(c.rdl)
		}
		if c.l.shutting.Load() {
			return nil, false, false // shutting down: no request more
		}
		n, err := c.Conn.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			return nil, false, false
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// mayBeFast says whether what was read of a request, not all its head,
// can still be one the fast path takes: a GET or HEAD, a first line that
// parses, and every line ended by CRLF (a bare LF, which net/http takes,
// would never end the head here).
func mayBeFast(p []byte) bool {
	if bytes.Count(p, lf) != bytes.Count(p, crlf) {
		return false
	}
	for _, m := range []string{"GET /", "HEAD /"} {
		n := min(len(p), len(m))
		if string(p[:n]) == m[:n] {
			if line, _, found := bytes.Cut(p, crlf); found {
				_, _, ok := parseRequestLine(line)
				return ok
			}
			return true
		}
	}
	return false
}

var crlf, lf = []byte("\r\n"), []byte("\n")

// fastRequest is a request the fast path may answer.
type fastRequest struct {
	head  bool // HEAD, not GET
	path  string
	close bool // Connection: close
}

// parseRequestLine parses "GET /path HTTP/1.1" or "HEAD /path HTTP/1.1"
// with a path of the characters fastPathByte allows.
func parseRequestLine(line []byte) (head bool, path []byte, ok bool) {
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		head, line = true, line[5:]
	default:
		return false, nil, false
	}
	path, proto, found := bytes.Cut(line, []byte(" "))
	if !found || string(proto) != "HTTP/1.1" || len(path) == 0 || path[0] != '/' || len(path) > 512 {
		return false, nil, false
	}
	for _, b := range path {
		if !fastPathByte[b] {
			return false, nil, false
		}
	}
	return head, path, true
}

// fastPathByte are the bytes a path on the fast path may hold: RFC 3986's
// unreserved and sub-delims, ':', '@' and '/', not '%' (no escapes: the
// path is the one net/http's mux would see), '?' or '#'.
var fastPathByte = func() (t [256]bool) {
	for _, b := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/") {
		t[b] = true
	}
	return t
}()

// fastHeaders are the request headers the fast path takes (lower case):
// Host and Connection, which it reads, and those that change nothing in
// its answers. Any other is net/http's.
var fastHeaders = map[string]bool{"host": true, "connection": true, "user-agent": true, "accept": true, "accept-encoding": true, "accept-language": true, "cache-control": true, "pragma": true, "referer": true}

// parseFast parses a request head, through its blank line. ok is false
// for any head the fast path leaves to net/http.
func parseFast(head []byte) (req fastRequest, ok bool) {
	line, rest, _ := bytes.Cut(head, crlf)
	isHead, path, ok := parseRequestLine(line)
	if !ok {
		return req, false
	}
	req.head, req.path = isHead, string(path)
	hosts, conns := 0, 0
	var lower [32]byte
	for {
		line, rest, _ = bytes.Cut(rest, crlf)
		if len(line) == 0 {
			break // the blank line that ends the head
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || colon > len(lower) {
			return req, false
		}
		name := lower[:colon]
		for i, b := range line[:colon] {
			if !tokenByte[b] {
				return req, false
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			name[i] = b
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, b := range value {
			if b < ' ' && b != '\t' || b == 0x7f {
				return req, false
			}
		}
		if !fastHeaders[string(name)] {
			return req, false
		}
		switch string(name) {
		case "host":
			hosts++
			if len(value) == 0 {
				return req, false
			}
			for _, b := range value {
				if !hostByte[b] {
					return req, false
				}
			}
		case "connection":
			conns++
			switch {
			case bytes.EqualFold(value, []byte("close")):
				req.close = true
			case !bytes.EqualFold(value, []byte("keep-alive")):
				return req, false
			}
		}
	}
	return req, hosts == 1 && conns <= 1 && len(rest) == 0
}

// tokenByte are the bytes of an HTTP token (RFC 9110), a header's name.
var tokenByte = func() (t [256]bool) {
	for _, b := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~") {
		t[b] = true
	}
	return t
}()

// hostByte are the bytes of a Host the fast path takes: a name or an
// address, and a port.
var hostByte = func() (t [256]bool) {
	for _, b := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:[]") {
		t[b] = true
	}
	return t
}()

// answer answers req if it is a read held in memory, and reports
// whether it did (else nothing was written), and whether the connection
// is still of use (its answer was written whole).
func (c *fastConn) answer(req fastRequest) (answered, alive bool) {
	s := c.l.s
	start := time.Now()
	c.answering.Store(true)
	defer c.answering.Store(false)
	op := fastOuts.Get().(*[]byte) // an idle connection holds none
	defer fastOuts.Put(op)
	out := append((*op)[:0], "HTTP/1.1 200 OK\r\n"...)
	var body []byte
	var logged int // the body's bytes as net/http's route counts them
	switch p := req.path; {
	case strings.HasPrefix(p, tilePrefix) && !strings.Contains(p, "//") && !strings.Contains(p, "/."):
		data, held, fail := s.tileFor(c.l.ctx, p[len("/log/"):], true)
		if fail != nil {
			return false, true
		}
		body, logged = data, len(data) // net/http's route counts a HEAD's too
		// As tileAt: Content-Type, Cache-Control and Content-Length.
		out = appendHeader(out, "Cache-Control", hdrImmutable[0])
		out = appendHeader(out, "Content-Length", held.length[0])
		out = appendHeader(out, "Content-Type", hdrOctetStream[0])
		out = appendDate(out, start)
	case strings.HasPrefix(p, blobPrefix) && blob.IsDigest(p[len(blobPrefix):]) && s.gate == nil:
		hex := p[len(blobPrefix):]
		if body = s.heldBlob(hex); body == nil {
			return false, true
		}
		if logged = len(body); req.head {
			logged = 0 // serveHeld writes no body for a HEAD
		}
		// As blobGet and serveHeld.
		out = appendHeader(out, "Accept-Ranges", hdrBytes[0])
		out = appendHeader(out, "Cache-Control", hdrImmutable[0])
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(body)), 10)
		out = append(out, "\r\n"...)
		out = appendHeader(out, "Content-Type", hdrOctetStream[0])
		out = appendDate(out, start)
		out = append(out, `Etag: "sha256:`...)
		out = append(out, hex...)
		out = append(out, "\"\r\n"...)
		out = appendHeader(out, "X-Content-Type-Options", hdrNosniff[0])
	default:
		return false, true
	}
	if req.close || c.l.shutting.Load() {
		out = appendHeader(out, "Connection", "close") // as net/http says it
	}
	out = append(out, "\r\n"...)
	if req.head {
		body = nil
	}
	lim := s.opts.Limits
	if want := start.Add(lim.SlowTimeout); c.wdl.Before(want.Add(-lim.SlowTimeout / 64)) {
		c.wdl = want
		c.Conn.SetWriteDeadline(want)
	}
	s.fastAnswers.Add(1) // before the answer leaves: a client that read it finds it counted
	head := len(out)
	var n int64
	var err error
	if len(body) <= fastCopy {
		out = append(out, body...)
		var k int
		k, err = c.Conn.Write(out)
		n = int64(k)
	} else {
		bufs := net.Buffers{out, body}
		n, err = bufs.WriteTo(c.Conn)
	}
	*op = out[:0]
	c.answered++
	if err != nil {
		// The client is gone or stalled: as net/http, nothing more on
		// this connection, and the body's bytes that left are counted.
		logged = int(max(n-int64(head), 0))
	}
	method := http.MethodGet
	if req.head {
		method = http.MethodHead
	}
	s.logServed(c.l.ctx, start, method, req.path, http.StatusOK, int64(logged), c.remote)
	return true, err == nil
}

const blobPrefix = "/blobs/sha256/"

// heldBlob returns a small blob's bytes from memory, or read whole from
// the store's file and kept (blobGet's first two ways); nil for one that
// is not small, not stored or not in files.
func (s *Server) heldBlob(hex string) []byte {
	if data := s.small.get(hex); data != nil {
		return data
	}
	if s.fsBlobs == nil {
		return nil
	}
	data, ok := s.readSmallBlob(hex)
	if !ok {
		return nil
	}
	s.small.put(hex, data)
	return data
}

func appendHeader(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// fastDate is the Date line of the second last answered.
var fastDate atomic.Pointer[dateLine]

type dateLine struct {
	sec  int64
	line string
}

func appendDate(b []byte, now time.Time) []byte {
	d := fastDate.Load()
	if sec := now.Unix(); d == nil || d.sec != sec {
		d = &dateLine{sec: sec, line: "Date: " + now.UTC().Format(http.TimeFormat) + "\r\n"}
		fastDate.Store(d)
	}
	return append(b, d.line...)
}

// handOff gives the connection to net/http, with what was read of it
// and not answered, and reports whether it did (else it is closed).
// headBy, when set, is when the head net/http reads first must be in:
// one the fast path began to read keeps its deadline.
func (c *fastConn) handOff(headBy time.Time) bool {
	// net/http sets the deadlines it wants, and leaves alone those it
	// does not: none of the fast path's may stay.
	c.Conn.SetReadDeadline(time.Time{})
	c.Conn.SetWriteDeadline(time.Time{})
	rc := &replayConn{Conn: c.Conn, pending: bytes.Clone(c.buf[c.r:c.w]), headBy: headBy}
	select {
	case c.l.handoff <- servedConn(rc):
		return true
	case <-c.l.done:
		return false
	}
}

// replayConn is a connection whose first reads return what the fast path
// read of it and left to net/http.
type replayConn struct {
	net.Conn
	pending []byte
	// headBy, when set, bounds the first read deadline net/http sets,
	// the one for the first head (ReadHeaderTimeout from when it took
	// the connection): a head the fast path began to read gets no more
	// time than it had left there.
	headBy time.Time
}

// SetReadDeadline is the connection's, the first one bounded by headBy.
func (c *replayConn) SetReadDeadline(t time.Time) error {
	if by := c.headBy; !by.IsZero() {
		c.headBy = time.Time{}
		if t.IsZero() || t.After(by) {
			t = by
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines, the read one as SetReadDeadline does.
func (c *replayConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn is the connection itself (connQueues asks the kernel of it).
func (c *replayConn) NetConn() net.Conn { return c.Conn }

// ReadFrom keeps sendfile (heldConn.ReadFrom).
func (c *replayConn) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, src)
}

// CloseWrite half-closes the connection, as heldConn asks of it.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn is the connection's own (connQueues asks the kernel of it).
func (c *replayConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
