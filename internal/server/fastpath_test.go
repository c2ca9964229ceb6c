package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/policy"
)

// fastServer serves f's server with Serve (the fast path in front of
// net/http) on a listener of its own, until the test ends; it returns
// the address.
func (f *fixture) fastServer() string {
	f.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, l) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// logTiles returns the paths (/log/tile/…) of the log's first hash tile
// and entry bundle, partial, of the tree served.
func (f *fixture) logTiles() []string {
	f.t.Helper()
	v, err := f.srv.served(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if v.Size == 0 || v.Size >= torchwood.TileWidth {
		f.t.Fatalf("a log of %d leaves: want a partial first tile", v.Size)
	}
	w := int(v.Size)
	return []string{"/log/" + torchwood.TilePath(tlog.Tile{H: torchwood.TileHeight, L: 0, N: 0, W: w}),
		"/log/" + torchwood.TilePath(tlog.Tile{H: torchwood.TileHeight, L: -1, N: 0, W: w})}
}

// rawConn is a client connection that writes requests as given and
// reads the answers in turn.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one answer, to a request of method.
func (rc *rawConn) read(method string) (*http.Response, []byte) {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.r, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading an answer to %s: %v", method, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	resp.Body.Close()
	return resp, body
}

func get(path string, header ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: cairn.test\r\n" + strings.Join(header, "") + "\r\n"
}

// answerText is an answer's status, headers (but Date) and body, as
// text to compare.
func answerText(resp *http.Response, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", resp.StatusCode)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range resp.Header {
			if k != "Date" && !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(resp.Header[k], ", "))
	}
	fmt.Fprintf(&b, "length %d\n%x\n", resp.ContentLength, body)
	return b.String()
}

// The fast path answers a tile, an entry bundle and a small blob, GET and
// HEAD, exactly as net/http's routes do (status, headers but Date, body),
// and counts and logs each answer as net/http's are.
func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	var accessLog syncBuffer
	f := newFixture(t, func(o *Options) { o.AccessLog = &accessLog })
	f.publishX("1.0.0")
	data := bytes.Repeat([]byte("fast "), 300)
	ref := blob.DigestBytes(data)
	if err := f.repo.Blobs.Put(f.ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	addr := f.fastServer()
	paths := append(f.logTiles(), "/blobs/sha256/"+ref.SHA256)
	fast := dialRaw(t, addr)
	for _, method := range []string{"GET", "HEAD"} {
		for _, p := range paths {
			resp, body := f.do(method, p, nil, nil)
			want := answerText(resp, body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("net/http: %s %s: %s", method, p, want)
			}
			fast.send(method + " " + p + " HTTP/1.1\r\nHost: cairn.test\r\nUser-Agent: test\r\nAccept-Encoding: gzip\r\n\r\n")
			fresp, fbody := fast.read(method)
			if got := answerText(fresp, fbody); got != want {
				t.Errorf("%s %s: the fast path answered\n%s\nnet/http\n%s", method, p, got, want)
			}
			if fresp.Header.Get("Date") == "" {
				t.Errorf("%s %s: no Date", method, p)
			}
		}
	}
	if n := f.srv.fastAnswers.Load(); n != int64(2*len(paths)) {
		t.Errorf("%d answers on the fast path, want %d", n, 2*len(paths))
	}
	// Each answer of the fast path has its access line (net/http's have
	// theirs: f.url is net/http alone, whose lines go to the same log),
	// saying the same status and bytes as net/http's.
	type line struct {
		Method, Path string
		Status       int
		Bytes        int64
	}
	// A line is written once its answer is sent, so the client may read
	// the last answer before its line is there.
	waitFor(t, "an access line for each answer", func() bool {
		return strings.Count(accessLog.String(), "\n") >= 4*len(paths)
	})
	said := map[line]int{}
	for _, l := range strings.Split(strings.TrimSpace(accessLog.String()), "\n") {
		var x line
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("access line %q: %v", l, err)
		}
		said[x]++
	}
	for _, p := range paths {
		for _, m := range []string{"GET", "HEAD"} {
			var n int
			for x, k := range said {
				if x.Path == p && x.Method == m {
					n += k
					if k != 2 {
						t.Errorf("%s %s: access lines %+v ×%d; want the fast path's and net/http's alike", m, p, x, k)
					}
				}
			}
			if n != 2 {
				t.Errorf("%s %s: %d access lines, want 2 (the fast path's and net/http's)\n%s", m, p, n, accessLog.String())
			}
		}
	}
}

// Requests the fast path does not answer go to net/http with the
// connection, and every request after them on it: a range, an unknown
// header, another route, a POST with a body, a tile past the tree, a
// head split across writes and pipelined requests are all answered in
// order, as net/http answers them.
func TestFastPathHandsOver(t *testing.T) {
	f := newFixture(t)
	f.publishX("1.0.0")
	data := bytes.Repeat([]byte("blob "), 100)
	ref := blob.DigestBytes(data)
	if err := f.repo.Blobs.Put(f.ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	addr := f.fastServer()
	tiles := f.logTiles()
	tile, _ := f.do("GET", tiles[0], nil, nil)
	tileLen := tile.ContentLength

	// A head in pieces, then pipelined requests, the third net/http's.
	c := dialRaw(t, addr)
	before := f.srv.fastAnswers.Load()
	req := get(tiles[0])
	c.send(req[:7])
	time.Sleep(20 * time.Millisecond)
	c.send(req[7:30])
	time.Sleep(20 * time.Millisecond)
	c.send(req[30:] + get(tiles[1]) + get("/blobs/sha256/"+ref.SHA256, "Range: bytes=0-9\r\n") + get(tiles[0]))
	for i, want := range []int{200, 200, 206, 200} {
		resp, body := c.read("GET")
		if resp.StatusCode != want {
			t.Fatalf("pipelined answer %d: %s, want %d", i, resp.Status, want)
		}
		if want == 206 && len(body) != 10 || i == 3 && int64(len(body)) != tileLen {
			t.Fatalf("pipelined answer %d: %d bytes", i, len(body))
		}
	}

	if n := f.srv.fastAnswers.Load() - before; n != 2 {
		t.Errorf("%d of the pipelined answers on the fast path, want the 2 before the range", n)
	}

	// Anything else, first or after fast answers, is net/http's.
	for _, c := range []struct {
		name, req string
		status    int
		body      string
	}{
		{"an unknown header", get(tiles[0], "X-Custom: 1\r\n"), 200, ""},
		{"another route", get("/api/v1/packages/acme/x"), 200, `"name"`},
		{"a missing package", get("/api/v1/packages/acme/nothing"), 404, ""},
		{"a tile past the tree", get("/log/tile/0/001"), 404, "past the served tree"},
		{"not a tile path", get("/log/tile/9/zzz"), 404, "not a tile path"},
		{"a blob not stored", get("/blobs/sha256/" + strings.Repeat("0", 64)), 404, ""},
		{"an escaped path", get("/log/tile/0/%30%30%30"), 404, ""},
		{"a query", get(tiles[0] + "?x=1"), 200, ""},
		{"a POST with a body", "POST /api/v1/log/subjects HTTP/1.1\r\nHost: cairn.test\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\npackage acme/x\n", 200, "acme/x"},
		{"HTTP/1.0", "GET " + tiles[0] + " HTTP/1.0\r\n\r\n", 200, ""},
		{"no Host", "GET " + tiles[0] + " HTTP/1.1\r\n\r\n", 400, ""},
		{"two Hosts", "GET " + tiles[0] + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, ""},
		{"a bare LF", "GET " + tiles[0] + " HTTP/1.1\nHost: a\n\n", 200, ""},
		{"a bare LF after the first line", "GET " + tiles[0] + " HTTP/1.1\r\nHost: a\n\n", 200, ""},
		{"a header folded", "GET " + tiles[0] + " HTTP/1.1\r\nHost: a\r\nAccept: x\r\n y\r\n\r\n", 200, ""},
		{"a malformed line", "GET\r\n\r\n", 400, ""},
	} {
		for _, after := range []bool{false, true} {
			conn := dialRaw(t, addr)
			if after {
				conn.send(get(tiles[0]))
				if resp, _ := conn.read("GET"); resp.StatusCode != 200 {
					t.Fatalf("%s: the fast answer before it: %s", c.name, resp.Status)
				}
			}
			before := f.srv.fastAnswers.Load()
			conn.send(c.req)
			resp, body := conn.read("GET")
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) {
				t.Errorf("%s (after a fast answer: %v): %s %.80q, want %d with %q", c.name, after, resp.Status, body, c.status, c.body)
			}
			if f.srv.fastAnswers.Load() != before {
				t.Errorf("%s (after a fast answer: %v): answered on the fast path, not by net/http", c.name, after)
			}
			if resp.StatusCode >= 400 || resp.Close {
				continue
			}
			// net/http keeps the connection, and answers what follows.
			conn.send(get(tiles[1]))
			if resp, _ := conn.read("GET"); resp.StatusCode != 200 {
				t.Errorf("%s: the request after it: %s", c.name, resp.Status)
			}
		}
	}
}

// A request that asks to close is answered, with Connection: close, and
// the connection closed; an idle connection is closed after IdleTimeout;
// one that begins a head and stops is closed after HeaderTimeout.
func TestFastPathCloses(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Limits.IdleTimeout = 300 * time.Millisecond
		o.Limits.HeaderTimeout = 300 * time.Millisecond
	})
	f.publishX("1.0.0")
	addr := f.fastServer()
	tiles := f.logTiles()

	c := dialRaw(t, addr)
	c.send(get(tiles[0], "Connection: close\r\n"))
	resp, _ := c.read("GET")
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("Connection: close: %s, answered to close: %v", resp.Status, resp.Close)
	}
	expectClosed(t, c, time.Second)

	for _, partial := range []string{"", "GET " + tiles[0] + " HTTP/1.1\r\nHo"} {
		c := dialRaw(t, addr)
		c.send(get(tiles[0]))
		if resp, _ := c.read("GET"); resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		c.send(partial)
		expectClosed(t, c, 2*time.Second)
	}
}

// The timeouts are net/http's: a connection's first head within
// HeaderTimeout of its accept (not IdleTimeout), and each later head
// within HeaderTimeout of its first byte, however many came before it
// on the connection (pipelined heads, each split across writes, are all
// answered).
func TestFastPathHeaderTimeouts(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Limits.IdleTimeout = time.Minute
		o.Limits.HeaderTimeout = 400 * time.Millisecond
	})
	f.publishX("1.0.0")
	addr := f.fastServer()
	tiles := f.logTiles()

	start := time.Now()
	expectClosed(t, dialRaw(t, addr), 5*time.Second)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a connection that sent nothing was closed after %v, want HeaderTimeout (400ms), not IdleTimeout", d)
	}

	c := dialRaw(t, addr)
	req := get(tiles[0])
	const rounds = 12 // 1.2 s: three HeaderTimeouts
	go func() {
		// A request and a half each time: a head is always begun.
		c.send(req[:len(req)/2])
		for range rounds {
			time.Sleep(100 * time.Millisecond)
			c.send(req[len(req)/2:] + req[:len(req)/2])
		}
		c.send(req[len(req)/2:])
	}()
	for i := range rounds + 1 {
		if resp, _ := c.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("pipelined request %d: %s", i, resp.Status)
		}
	}
}

// A head the fast path began to read and gave to net/http unfinished
// (longer than the fast path reads) has HeaderTimeout from its start in
// all, not another HeaderTimeout from the hand-over.
func TestFastPathHandsOverHeadInTime(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Limits.IdleTimeout = time.Minute
		o.Limits.HeaderTimeout = time.Second
	})
	f.publishX("1.0.0")
	addr := f.fastServer()
	tiles := f.logTiles()

	start := time.Now()
	c := dialRaw(t, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// A fast request's start, then header lines: past the fast
		// path's buffer at about 700 ms, and never ended.
		c.c.Write([]byte("GET " + tiles[0] + " HTTP/1.1\r\nHost: cairn.test\r\n"))
		line := "X-Pad: " + strings.Repeat("a", 500) + "\r\n"
		for {
			select {
			case <-stop:
				return
			case <-time.After(80 * time.Millisecond):
			}
			if _, err := c.c.Write([]byte(line)); err != nil {
				return
			}
		}
	}()
	expectClosed(t, c, 5*time.Second)
	// net/http's own clock would have closed it at about 1.7 s.
	if d := time.Since(start); d > 1400*time.Millisecond {
		t.Errorf("a head begun on the fast path and never ended was closed after %v, want HeaderTimeout (1s) from its start", d)
	}
}

// expectClosed waits up to d for the server to close c.
func expectClosed(t *testing.T, c *rawConn, d time.Duration) {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	// Closed, or reset (what the client sent last arrived after the close).
	if n, err := c.r.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the connection: read %d bytes, %v; want it closed by the server", n, err)
	}
}

// Serve shuts down with connections idle on the fast path (closed at
// once) and one amid a head (closed, as net/http's idle ones are).
func TestFastPathShutdown(t *testing.T) {
	f := newFixture(t)
	f.publishX("1.0.0")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, l) }()
	tiles := f.logTiles()
	var conns []*rawConn
	for i := range 3 {
		c := dialRaw(t, l.Addr().String())
		c.send(get(tiles[0]))
		if resp, _ := c.read("GET"); resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		if i == 2 {
			c.send("GET " + tiles[0] + " HTTP/1.1\r\nHo") // amid a head: closed too
		}
		conns = append(conns, c)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s of its context's end, with idle fast-path connections")
	}
	if d := time.Since(start); d > 5*time.Second { // HeaderTimeout is 10 s
		t.Errorf("shutdown took %v", d)
	}
	for _, c := range conns {
		expectClosed(t, c, time.Second)
	}
}

// With a policy that gates blobs, no blob is answered on the fast path:
// a version the policy refuses is refused, as net/http's route does.
func TestFastPathLeavesGatedBlobs(t *testing.T) {
	pol, err := policy.Parse("policy.yaml", []byte("require:\n  - {name: audit, property: audited}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Policy = pol })
	f.publishX("1.0.0")
	addr := f.fastServer()
	p := "/blobs/sha256/" + blob.DigestBytes([]byte("source 1.0.0")).SHA256
	resp, body := f.do("GET", p, nil, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("net/http: %s %s, want the policy's refusal", resp.Status, body)
	}
	want := answerText(resp, body)
	for range 2 {
		c := dialRaw(t, addr)
		c.send(get(p))
		if got := answerText(c.read("GET")); got != want {
			t.Errorf("the gated blob: answered\n%s\nwant net/http's\n%s", got, want)
		}
	}
	if n := f.srv.fastAnswers.Load(); n != 0 {
		t.Errorf("%d answers on the fast path with a policy, want none", n)
	}
}
