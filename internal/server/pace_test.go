package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// pacedServer serves h behind the server's limits l (and behind those,
// around, if given), on a listener whose connections have small send
// buffers (so that a client's reading, not the kernel's buffers, sets the
// pace of a response), and returns its URL.
func pacedServer(t *testing.T, l Limits, h http.Handler, around ...func(http.Handler) http.Handler) string {
	t.Helper()
	s := &Server{opts: Options{Limits: l.withDefaults()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handler := s.limit(h)
	for _, a := range around {
		handler = a(handler)
	}
	hs := &http.Server{Handler: handler, ConnContext: withConn}
	go hs.Serve(heldListener{smallBuffers{ln}}) // as Serve serves what the fast path hands over
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

// smallBuffers is a listener whose connections send from a 64 KiB buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(64 << 10)
	}
	return c, err
}

// serveBytes answers every request with n bytes (Write by Write, as
// handlers that do not send files do).
func serveBytes(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := bytes.Repeat([]byte("c"), 32<<10)
		for left := n; left > 0; left -= len(buf) {
			if _, err := w.Write(buf[:min(left, len(buf))]); err != nil {
				return
			}
		}
	})
}

// readAt reads body at rate bytes a second, a 16 KiB read at a time, and
// returns how much it got and why it stopped.
func readAt(body io.Reader, rate int) (int, error) {
	start := time.Now()
	buf := make([]byte, 16<<10)
	got := 0
	for {
		n, err := body.Read(buf)
		got += n
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		if due := start.Add(time.Duration(float64(got) / float64(rate) * float64(time.Second))); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
	}
}

// A client that reads a response faster than --min-rate gets all of it,
// however long that takes; one that reads slower is cut, within about
// --slow-timeout of falling behind.
func TestPaceResponse(t *testing.T) {
	const size, rate = 4 << 20, 1 << 20
	url := pacedServer(t, Limits{SlowTimeout: 300 * time.Millisecond, MinRate: rate}, serveBytes(size))
	for _, c := range []struct {
		name    string
		rate    int
		wantCut bool
	}{{"three times the minimum rate", 3 * rate, false}, {"a quarter of the minimum rate", rate / 4, true}} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			start := time.Now()
			got, err := readAt(resp.Body, c.rate)
			d := time.Since(start)
			switch {
			case !c.wantCut && (err != nil || got != size):
				t.Fatalf("a client reading at %d bytes/s (minimum %d) was cut after %s: %d of %d bytes (%v)", c.rate, rate, d, got, size, err)
			case c.wantCut && err == nil:
				t.Fatalf("a client reading at %d bytes/s (minimum %d) got all %d bytes in %s: it was not cut", c.rate, rate, got, d)
			case c.wantCut && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Fatalf("a slow client's read: %v, want the connection closed early", err)
			case c.wantCut && got > size/2:
				t.Fatalf("a slow client got %d of %d bytes before it was cut, in %s", got, size, d)
			}
		})
	}
}

// lateOnce wraps a response and its request's body so that one write
// (the second) and one read (the first) are late by a second, inside the
// wait on the client: the server's own delay there (its goroutine not
// run, a slow disk under sendfile), not the client's.
func lateOnce(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = &lateBody{ReadCloser: r.Body}
		}
		h.ServeHTTP(&lateWriter{ResponseWriter: w}, r)
	})
}

type lateWriter struct {
	http.ResponseWriter
	writes int
}

func (w *lateWriter) Write(p []byte) (int, error) {
	if w.writes++; w.writes == 2 {
		time.Sleep(time.Second)
	}
	return w.ResponseWriter.Write(p)
}

func (w *lateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type lateBody struct {
	io.ReadCloser
	late bool
}

func (b *lateBody) Read(p []byte) (int, error) {
	if !b.late {
		b.late = true
		time.Sleep(time.Second)
	}
	return b.ReadCloser.Read(p)
}

// A server late by a second (with --slow-timeout 300 ms) within a write
// of its response, while its client has taken all it was sent, or within
// a read of a body that the client has sent whole, does not cut the
// client for it.
func TestPaceServerLate(t *testing.T) {
	const size = 2 << 20
	l := Limits{SlowTimeout: 300 * time.Millisecond, MinRate: 1 << 20}
	url := pacedServer(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(bytes.Repeat([]byte("c"), 32<<10))
			w.(http.Flusher).Flush()
			w.Write(bytes.Repeat([]byte("c"), size-32<<10))
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, fmt.Sprintf("after %d bytes: %v", n, err), http.StatusRequestTimeout)
			return
		}
		fmt.Fprint(w, n)
	}), lateOnce)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != size {
		t.Errorf("a client reading as fast as it can, its server late by a second in a write: %d of %d bytes (%v)", got, size, err)
	}
	body := bytes.Repeat([]byte("b"), 256<<10)
	resp, err = http.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(answer) != strconv.Itoa(len(body)) {
		t.Errorf("a body sent at once, its server late by a second in a read: %s %q, want 200 %d", resp.Status, answer, len(body))
	}
}

// What the server does before it reads a request's body (here, 1 s of
// its own work, with --slow-timeout 300 ms) is not the client's delay: a
// body sent at once is read whole, not cut for the time before its first
// byte.
func TestPaceBeforeFirstByte(t *testing.T) {
	url := pacedServer(t, Limits{SlowTimeout: 300 * time.Millisecond, MinRate: 1 << 20}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, fmt.Sprintf("after %d bytes: %v", n, err), http.StatusRequestTimeout)
			return
		}
		fmt.Fprint(w, n)
	}))
	body := bytes.Repeat([]byte("b"), 256<<10)
	resp, err := http.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(answer) != strconv.Itoa(len(body)) {
		t.Fatalf("a body sent at once, read after the server's own second: %s %q, want 200 %d", resp.Status, answer, len(body))
	}
}

// stallLimits are the limits of the server that TestPaceServerStall
// stops.
var stallLimits = Limits{SlowTimeout: 300 * time.Millisecond, MinRate: 1 << 20}

// servePacedFile is the server of TestPaceServerStall, run as this test
// binary's child ("paced-file PATH"): it serves the file at PATH behind
// stallLimits and prints its address.
func servePacedFile(path string) {
	s := &Server{opts: Options{Limits: stallLimits.withDefaults()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	hs := &http.Server{ConnContext: withConn, Handler: s.limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, path)
	}))}
	hs.Serve(heldListener{ln})
	os.Exit(1)
}
