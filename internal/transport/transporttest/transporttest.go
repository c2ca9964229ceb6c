// Package transporttest has real servers that misbehave on purpose — a
// server that trickles, one that never answers, one that never accepts —
// for the attack tests of every client that must not hang on them.
package transporttest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// Trickle wraps h so that its response reaches the client one byte every
// interval (headers at once), for the requests that match reaches; the
// others are served as h serves them.
func Trickle(h http.Handler, interval time.Duration, match func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !match(r) {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		rc := http.NewResponseController(w)
		rc.Flush()
		body := rec.Body.Bytes()
		t := time.NewTicker(interval)
		defer t.Stop()
		for i := range body {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
			if _, err := w.Write(body[i : i+1]); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	})
}

// Bytes is a handler that serves b, for Trickle.
func Bytes(b []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
	})
}

// Silent starts a server that accepts connections and reads requests but
// never answers; it returns its base URL. Closed at the test's end.
func Silent(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				go func() { <-done; c.Close() }()
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// Deaf starts a server that accepts connections and never reads from
// them (an upload to it stalls once the socket buffers are full) nor
// answers; it returns its base URL.
func Deaf(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(4096)
			}
			conns = append(conns, c)
		}
	}()
	return "http://" + ln.Addr().String()
}

// Unaccepting returns the base URL of a listening socket whose accept
// queue is full, so that a new connection is never made: the kernel
// drops its SYNs, as a black-holed host does. It skips the test where
// the kernel does not behave so (it needs Linux's backlog semantics).
func Unaccepting(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skipf("no socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue: connections complete until it is full.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i > 16 {
			t.Skip("the accept queue never filled: connections to it are not black-holed here")
		}
	}
	return "http://" + addr
}

// Within runs f and fails the test if it has not returned within d: a
// hang is a failure, not a stuck run. It returns f's error.
func Within(t testing.TB, d time.Duration, f func(context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cancel()
		t.Fatalf("still running after %v: it hangs", d)
		return nil
	}
}
