package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// writesConn records the writes that reach a connection.
type writesConn struct {
	net.Conn
	writes [][]byte
}

// heldListener makes each connection it accepts a *heldConn, as the
// fast path's hand-over does (servedConn): heldConn tested alone.
type heldListener struct{ net.Listener }

func (l heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return servedConn(c), nil
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

// sizes returns the sizes of the writes recorded, and forgets them.
func (c *writesConn) sizes() []int {
	var n []int
	for _, w := range c.writes {
		n = append(n, len(w))
	}
	c.writes = nil
	return n
}

// While a connection holds, its small writes (net/http's 4 KiB buffer
// flushed) wait for the response's end, or go out with the next large
// one; not holding, every write goes out as it comes.
func TestHeldConnWrites(t *testing.T) {
	rec := &writesConn{}
	c := &heldConn{Conn: rec}
	c.Write(make([]byte, 100))
	if got := rec.sizes(); fmt.Sprint(got) != "[100]" {
		t.Fatalf("not holding, a write of 100 bytes reached the connection as %v", got)
	}

	c.hold()
	c.Write(make([]byte, 150))
	c.Write(make([]byte, 4096))
	if got := rec.sizes(); got != nil {
		t.Fatalf("holding, writes of 150 and 4096 bytes reached the connection (%v) before the response ended", got)
	}
	if !c.holds() {
		t.Fatal("holds() says nothing is held")
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if got := rec.sizes(); fmt.Sprint(got) != "[4246]" {
		t.Fatalf("released, the held response reached the connection as %v, want one write of 4246 bytes", got)
	}
	if c.holds() || c.release() != nil || rec.sizes() != nil {
		t.Fatal("a second release wrote again")
	}

	// A write larger than holdCopy goes out at once, after what was held
	// (one writev on a TCP connection), and is not held.
	c.hold()
	c.Write([]byte(strings.Repeat("h", 4096)))
	n, err := c.Write([]byte(strings.Repeat("b", 20000)))
	if n != 20000 || err != nil {
		t.Fatalf("Write of 20000 bytes returned %d, %v", n, err)
	}
	got := rec.writes
	if len(got) != 2 || string(got[0]) != strings.Repeat("h", 4096) || string(got[1]) != strings.Repeat("b", 20000) {
		t.Fatalf("a large write after a held one reached the connection as %v, want the held 4096 bytes then the 20000", rec.sizes())
	}
	rec.sizes()
	c.Write(make([]byte, 10))
	c.release()
	if got := rec.sizes(); fmt.Sprint(got) != "[10]" {
		t.Fatalf("after a large write, a small one is held again until release: got %v", got)
	}

	// No more than holdMax bytes are held.
	c.hold()
	for range holdMax / 4096 {
		c.Write(make([]byte, 4096))
	}
	if got := rec.sizes(); got != nil {
		t.Fatalf("holdMax bytes reached the connection as %v while holding", got)
	}
	c.Write(make([]byte, 1))
	if got := rec.sizes(); fmt.Sprint(got) != fmt.Sprint([]int{holdMax, 1}) {
		t.Fatalf("a write past holdMax reached the connection as %v, want what was held then it", got)
	}
	c.release()
	if got := rec.sizes(); got != nil {
		t.Fatalf("release after everything went out wrote %v", got)
	}
}

// heldServer serves h behind the server's limits on a listener of held
// connections, as Serve does, and returns its address.
func heldServer(t *testing.T, h http.Handler, limits ...Limits) string {
	t.Helper()
	l := Limits{}
	if len(limits) > 0 {
		l = limits[0]
	}
	s := &Server{opts: Options{Limits: l.withDefaults()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.limit(h), ConnContext: withConn}
	go hs.Serve(heldListener{ln})
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// A handler that flushes streams: what it flushed reaches the client
// while it still runs (git's progress, a held request's answer), though
// its connection holds responses.
func TestHeldConnFlushStreams(t *testing.T) {
	got := make(chan struct{})
	addr := heldServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first\n"))
		http.NewResponseController(w).Flush()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
		}
		w.Write([]byte("second\n"))
	}))
	var br *bufio.Reader
	var resp *http.Response
	done := make(chan error, 1)
	go func() {
		var err error
		if resp, err = http.Get("http://" + addr + "/"); err != nil {
			done <- err
			return
		}
		br = bufio.NewReader(resp.Body)
		if line, _ := br.ReadString('\n'); line != "first\n" {
			done <- fmt.Errorf("first line %q", line)
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("what the handler flushed did not reach the client while the handler ran: the connection held it")
	}
	close(got)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// A request with a body that asks for 100 Continue gets it before the
// handler answers: its response is not held (the client waits for the
// 100 before it sends the body the handler waits for).
func TestHeldConnContinue(t *testing.T) {
	addr := heldServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Write(append([]byte("got "), body...))
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("before the body: %q, %v; want HTTP/1.1 100 Continue", line, err)
	}
	br.ReadString('\n') // the 100's empty line
	fmt.Fprintf(c, "body")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "got body" {
		t.Fatalf("answer %q", b)
	}
}

// Held or not, every kind of response reaches the client whole and in
// order, on one keep-alive connection, requests pipelined: a small one,
// a tile's 8 KiB and an entry bundle's 50 KiB (each of a declared
// length), a chunked one, a file (sent with sendfile), a HEAD, an error.
func TestHeldConnResponses(t *testing.T) {
	dir := t.TempDir()
	file := bytes.Repeat([]byte("file."), 20000)
	if err := os.WriteFile(filepath.Join(dir, "f"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return b
	}
	addr := heldServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/file":
			http.ServeFile(w, r, filepath.Join(dir, "f"))
		case "/chunked":
			for range 5 {
				w.Write(body(3000))
			}
		case "/error":
			httpError(w, http.StatusNotFound, "%s: not here", r.URL.Path)
		default:
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(body(n))
		}
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	reqs := []struct {
		method, path string
		want         []byte
	}{
		{"GET", "/100", body(100)},
		{"GET", "/8192", body(8192)},
		{"GET", "/50766", body(50766)},
		{"GET", "/chunked", bytes.Repeat(body(3000), 5)},
		{"GET", "/file", file},
		{"HEAD", "/8192", nil},
		{"GET", "/error", []byte("/error: not here\n")},
		{"GET", "/4000", body(4000)},
	}
	var all bytes.Buffer
	for _, q := range reqs {
		fmt.Fprintf(&all, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", q.method, q.path)
	}
	if _, err := c.Write(all.Bytes()); err != nil { // pipelined
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, q := range reqs {
		resp, err := http.ReadResponse(br, &http.Request{Method: q.method})
		if err != nil {
			t.Fatalf("%s %s: %v", q.method, q.path, err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, q.want) {
			t.Fatalf("%s %s: %d bytes (%v), want %d", q.method, q.path, len(got), err, len(q.want))
		}
		if q.method == "HEAD" && resp.ContentLength != 8192 {
			t.Fatalf("HEAD %s: Content-Length %d", q.path, resp.ContentLength)
		}
	}
}

// A connection gives a write the deadline set last; a request's
// deadline is kept as the one the connection has when that one is it or
// less than the slack before it (the connection's deadline is then at
// most the slack early), though a deadline was cleared since (net/http
// does between requests) without a write.
func TestHeldConnKeepWriteDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(io.Discard, b)
	c := &heldConn{Conn: a}
	d := time.Now().Add(time.Hour)
	if c.keepWriteDeadline(d, time.Minute) {
		t.Fatal("kept a deadline the connection never had")
	}
	c.SetWriteDeadline(d)
	if c.keepWriteDeadline(d, time.Minute) {
		t.Fatal("kept a deadline set but never given to the connection (nothing was written)")
	}
	c.Write([]byte("x"))
	c.SetWriteDeadline(time.Time{}) // net/http's, after a response
	for _, x := range []struct {
		t    time.Time
		keep bool
	}{
		{d, true}, {d.Add(30 * time.Second), true}, {d.Add(time.Minute), false},
		{d.Add(-time.Nanosecond), false}, // later than the request's: never kept
	} {
		if got := c.keepWriteDeadline(x.t, time.Minute); got != x.keep {
			t.Errorf("deadline %v after the one the connection has: kept %v, want %v", x.t.Sub(d), got, x.keep)
		}
	}
	c.SetWriteDeadline(longAgo) // a cut, then a write that fails
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write after a deadline in the past: %v, want a timeout", err)
	}
	if c.keepWriteDeadline(d, time.Minute) {
		t.Fatal("kept after the deadline was set in the past (a client cut)")
	}
	c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("a write after the deadlines were cleared: %v", err)
	}
	if c.keepWriteDeadline(d, time.Minute) {
		t.Fatal("kept after the deadline was cleared and a write went out without one")
	}
}

// A write in progress when its deadline is set in the past (a client
// cut, from the pace's timer) ends at once, though the connection is
// given deadlines only as writes begin.
func TestHeldConnWriteCut(t *testing.T) {
	a, b := net.Pipe() // nothing reads b: a write blocks
	defer a.Close()
	defer b.Close()
	c := &heldConn{Conn: a}
	c.SetWriteDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() { _, err := c.Write([]byte("blocked")); done <- err }()
	time.Sleep(50 * time.Millisecond)
	c.SetWriteDeadline(longAgo)
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a write cut in progress: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write in progress was not ended by a deadline in the past")
	}
}

// The attack: a client that stops reading on a keep-alive connection,
// its second request's response larger than the kernel's buffers. The
// response is cut by the request's deadline (RequestTimeout), though the
// deadline the first request set stands for it: never later than its
// own.
func TestHeldConnRequestTimeoutKeepAlive(t *testing.T) {
	const timeout = 1280 * time.Millisecond // a 64th: 20 ms
	cut := make(chan time.Duration, 2)
	addr := heldServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			w.Write([]byte("ok"))
			return
		}
		start := time.Now()
		buf := make([]byte, 64<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				cut <- time.Since(start)
				return
			}
			if time.Since(start) > 10*time.Second {
				cut <- -1
				return
			}
		}
	}), Limits{RequestTimeout: timeout, SlowTimeout: time.Hour, MinRate: 1})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	fmt.Fprintf(c, "GET /large HTTP/1.1\r\nHost: x\r\n\r\n") // and read no more
	select {
	case d := <-cut:
		if d < 0 || d > timeout+500*time.Millisecond {
			t.Fatalf("a response the client stopped reading ran %v, past the request timeout of %v", d, timeout)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the handler's writes never failed")
	}
}

// Tile reads are answered ahead of the routes, as the routes answer
// them: a path with // or /./ is redirected to its clean form, a method
// other than GET or HEAD is refused, a tile is the log's.
func TestTileRoute(t *testing.T) {
	f := newFixture(t)
	for _, x := range []struct {
		method, path string
		code         int
		location     string
	}{
		{"GET", "/log/tile/0/./000", http.StatusTemporaryRedirect, "/log/tile/0/000"},
		{"GET", "/log/tile//0/000", http.StatusTemporaryRedirect, "/log/tile/0/000"},
		{"GET", "/log/tile/0/../0/000", http.StatusTemporaryRedirect, "/log/tile/0/000"},
		{"POST", "/log/tile/0/000", http.StatusMethodNotAllowed, ""},
		{"GET", "/log/tile/9/000", http.StatusNotFound, ""},
		{"GET", "/log/tile/0/x", http.StatusNotFound, ""},
	} {
		req, err := http.NewRequest(x.method, f.url+x.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = x.path // as sent, not cleaned
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != x.code || resp.Header.Get("Location") != x.location {
			t.Errorf("%s %s: %s, Location %q; want %d, %q", x.method, x.path, resp.Status, resp.Header.Get("Location"), x.code, x.location)
		}
	}
}

// A read deadline set on a held connection is what its Reads see: one
// set before a Read ends it at the deadline, one set during a Read ends
// that Read, one cleared before a Read does not end it, and one set in
// the past ends the next Read at once (a client cut).
func TestHeldConnReadDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := &heldConn{Conn: raw}
	defer c.Close()
	buf := make([]byte, 1)
	timedOut := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}

	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := c.Read(buf); !timedOut(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("a Read after a deadline 50 ms ahead: %v after %v, want a timeout", err, time.Since(start))
	}

	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	c.SetReadDeadline(time.Time{}) // cleared before the Read
	go func() { time.Sleep(200 * time.Millisecond); client.Write([]byte("x")) }()
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("a Read after its deadline was cleared: %d, %v; want the client's byte", n, err)
	}

	done := make(chan error, 1)
	go func() { _, err := c.Read(buf); done <- err }()
	time.Sleep(50 * time.Millisecond) // the Read is blocked
	c.SetReadDeadline(longAgo)
	select {
	case err := <-done:
		if !timedOut(err) {
			t.Fatalf("a Read in progress when the deadline was set in the past: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Read in progress was not ended by a deadline in the past")
	}
	if _, err := c.Read(buf); !timedOut(err) {
		t.Fatalf("a Read after a deadline in the past: %v, want a timeout at once", err)
	}
	c.SetDeadline(time.Time{})
	client.Write([]byte("y"))
	if n, err := c.Read(buf); n != 1 || err != nil || buf[0] != 'y' {
		t.Fatalf("a Read after SetDeadline cleared both: %d, %v", n, err)
	}
}

// countConn counts what reaches a connection beneath a heldConn.
type countConn struct {
	net.Conn
	byteReads, readDeadlines, writeDeadlines *atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	if len(p) == 1 {
		c.byteReads.Add(1)
	}
	return c.Conn.Read(p)
}

func (c *countConn) SetReadDeadline(t time.Time) error {
	c.readDeadlines.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *countConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadlines.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

type countListener struct {
	net.Listener
	byteReads, readDeadlines, writeDeadlines atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: c, byteReads: &l.byteReads, readDeadlines: &l.readDeadlines, writeDeadlines: &l.writeDeadlines}, nil
}

// countedServer is heldServer (with Serve's header timeout) over
// connections that count what reaches them.
func countedServer(t *testing.T, h http.Handler) (string, *countListener) {
	t.Helper()
	s := &Server{opts: Options{Limits: Limits{}.withDefaults()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countListener{Listener: ln}
	hs := &http.Server{Handler: s.limit(h), ConnContext: withConn, ReadHeaderTimeout: s.opts.Limits.HeaderTimeout, IdleTimeout: s.opts.Limits.IdleTimeout}
	go hs.Serve(heldListener{cl})
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String(), cl
}

// Requests without a body on a keep-alive connection cost the
// connection no background read (a read of one byte) while their
// handlers do not look for their end, and no change of its write
// deadline after the first request's: the requests that follow keep it.
func TestHeldConnQuietRequests(t *testing.T) {
	addr, cl := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	const n = 20
	for i := range n {
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("request %d: %s %q", i, resp.Status, body)
		}
	}
	if got := cl.byteReads.Load(); got != 0 {
		t.Errorf("%d requests read %d times one byte from the connection (background reads), want none", n, got)
	}
	if got := cl.writeDeadlines.Load(); got > 2 {
		t.Errorf("%d requests changed the connection's write deadline %d times, want at most 2", n, got)
	}
	t.Logf("%d requests: %d reads of one byte, %d read deadlines, %d write deadlines", n, cl.byteReads.Load(), cl.readDeadlines.Load(), cl.writeDeadlines.Load())
	// The idle timeout's, once a request; the background read's are gone.
	if got := cl.readDeadlines.Load(); got > n+2 {
		t.Errorf("%d requests changed the connection's read deadline %d times, want at most %d", n, got, n+2)
	}
}

// A handler of a request without a body that waits on its context, or
// polls it, sees its client leave: the connection's background read,
// held while the handler did not look, reads once it does.
func TestHeldConnClientLeaves(t *testing.T) {
	for _, how := range []string{"done", "err"} {
		t.Run(how, func(t *testing.T) {
			ended := make(chan error, 1)
			addr, cl := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				deadline := time.After(10 * time.Second)
				if how == "done" {
					select {
					case <-ctx.Done():
						ended <- context.Cause(ctx)
					case <-deadline:
						ended <- nil
					}
					return
				}
				for {
					if err := ctx.Err(); err != nil {
						ended <- err
						return
					}
					select {
					case <-deadline:
						ended <- nil
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
			time.Sleep(100 * time.Millisecond) // the handler waits
			c.Close()
			select {
			case err := <-ended:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("the handler's context, its client gone: %v, want canceled", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the handler never ended")
			}
			if cl.byteReads.Load() == 0 {
				t.Error("no background read reached the connection, yet the handler saw its client leave")
			}
		})
	}
}

// Requests sent together (pipelined) on a held connection are each
// answered, in order, whether their handlers look for their end or not.
func TestHeldConnPipelined(t *testing.T) {
	addr, _ := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/look" {
			<-time.After(10 * time.Millisecond)
			if err := r.Context().Err(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	paths := []string{"/a", "/look", "/b", "/look", "/c"}
	var req strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p)
	}
	io.WriteString(c, req.String())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, p := range paths {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("the answer to %s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != p {
			t.Fatalf("the answer to %s: %s %q", p, resp.Status, body)
		}
	}
}

// The attack: a client that reads a keep-alive connection's first
// responses, then stops reading a large one. Its responses' paces share
// the connection's timer, and the last one's still cuts it, at the
// pace's limit, though the paces before it armed the timer and left it
// to fire: at once, or after a pause in which it fired and found no
// pace waiting.
func TestHeldConnPaceKeepAlive(t *testing.T) {
	for _, pause := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprint("pause ", pause), func(t *testing.T) { testHeldConnPaceKeepAlive(t, pause) })
	}
}

func testHeldConnPaceKeepAlive(t *testing.T, pause time.Duration) {
	const slow = 300 * time.Millisecond
	cut := make(chan error, 1)
	addr := heldServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/large" {
			w.Header().Set("Content-Length", "8192")
			w.Write(make([]byte, 8192))
			return
		}
		buf := make([]byte, 64<<10)
		start := time.Now()
		for time.Since(start) < 20*time.Second {
			if _, err := w.Write(buf); err != nil {
				cut <- err
				return
			}
		}
		cut <- nil
	}), Limits{SlowTimeout: slow, MinRate: 64 << 10})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 5 {
		fmt.Fprintf(c, "GET /small%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
	}
	time.Sleep(pause) // the timer's tick is slow/8
	start := time.Now()
	fmt.Fprintf(c, "GET /large HTTP/1.1\r\nHost: x\r\n\r\n") // and read no more
	select {
	case err := <-cut:
		if err == nil {
			t.Fatal("a response the client stopped reading was never cut")
		}
		if d := time.Since(start); d > 10*slow+2*time.Second {
			t.Fatalf("cut after %v, for a pace that cuts %v behind", d, slow)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the handler never ended")
	}
}
