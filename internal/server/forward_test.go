package server

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// forwarder is a replica's forwarder to writer, as a real reverse proxy
// in front of a real HTTP server standing for the writer; log hears what
// the replica logs.
func forwarder(t *testing.T, writer string, log io.Writer) http.Handler {
	u, err := url.Parse(writer)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{opts: Options{Replica: &Replica{Writer: u}}, log: slog.New(slog.NewJSONHandler(log, nil))}
	return s.newForwarder()
}

// clientAtWriter starts a writer that trusts the balancer 192.0.2.7 and
// its replicas (127.0.0.0/8, where the test's replica forwards from), and
// returns the address it counts each upload against.
func clientAtWriter(t *testing.T) (string, func() string) {
	var got string
	writer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trusted := []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("127.0.0.0/8")}
		got = ClientAddr(r, trusted)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(writer.Close)
	return writer.URL, func() string { return got }
}

// Behind nginx (192.0.2.7) a replica forwards an upload to the writer,
// which trusts both (--trusted-proxy): the writer counts it against the
// client nginx named (203.0.113.9), not against the balancer or the
// replica.
func TestForwardKeepsClientAddr(t *testing.T) {
	writer, got := clientAtWriter(t)
	fwd := forwarder(t, writer, io.Discard)
	r := httptest.NewRequest("PUT", "/blobs/sha256/"+strings.Repeat("0", 64), strings.NewReader("x"))
	r.RemoteAddr = "192.0.2.7:4321"                // the load balancer
	r.Header.Set("X-Forwarded-For", "203.0.113.9") // what nginx wrote ($proxy_add_x_forwarded_for)
	w := httptest.NewRecorder()
	fwd.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("forwarded: %d %s", w.Code, w.Body)
	}
	if got() != "203.0.113.9" {
		t.Errorf("the writer counts the forwarded upload against %s, want the client 203.0.113.9", got())
	}
}

// A client that reaches a replica directly and writes its own
// X-Forwarded-For (another client's address, to spend that one's upload
// allowance, or a fresh one per upload to have none) is counted as
// itself: the replica passes the header on as it came, its peer
// appended, and the writer believes no hop left of one it does not
// trust.
func TestForwardSpoofedForwardedForNotBelieved(t *testing.T) {
	writer, got := clientAtWriter(t)
	fwd := forwarder(t, writer, io.Discard)
	r := httptest.NewRequest("PUT", "/blobs/sha256/"+strings.Repeat("0", 64), strings.NewReader("x"))
	r.RemoteAddr = "198.51.100.66:5555" // the attacker, no balancer between
	r.Header.Set("X-Forwarded-For", "203.0.113.9, 192.0.2.7")
	w := httptest.NewRecorder()
	fwd.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("forwarded: %d %s", w.Code, w.Body)
	}
	if got() != "198.51.100.66" {
		t.Errorf("the writer counts the attacker's upload against %s, want the attacker 198.51.100.66", got())
	}
}

// A replica whose writer's URL carries credentials (cairn remote add
// writer http://USER:PASS@HOST) does not hand them to anonymous clients
// when the writer is down, in the 502's body, nor write them in its log.
func TestForwardErrorHidesWriterCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the writer is down
	var log bytes.Buffer
	fwd := forwarder(t, "http://bob:s3cret@"+addr, &log)
	r := httptest.NewRequest("PUT", "/blobs/sha256/"+strings.Repeat("0", 64), strings.NewReader("x"))
	w := httptest.NewRecorder()
	fwd.ServeHTTP(w, r)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", w.Code)
	}
	if strings.Contains(w.Body.String(), "s3cret") {
		t.Errorf("an anonymous client reads the writer's password in the 502: %s", w.Body)
	}
	if !strings.Contains(w.Body.String(), "http://"+addr) {
		t.Errorf("the 502 does not name the writer (http://%s): %s", addr, w.Body)
	}
	if strings.Contains(log.String(), "s3cret") || !strings.Contains(log.String(), `"writer":"http://`+addr) {
		t.Errorf("the replica's log should name the writer without its password: %s", log.String())
	}
}
