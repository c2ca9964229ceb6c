package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
)

// get sends a GET from the loopback address from and returns the status,
// Retry-After and body.
func getFrom(t *testing.T, from, url string) (int, string, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
}

// When every git process slot is taken (here by a slow push), a request
// is answered 503 with Retry-After at once, naming the flag; once the
// slow client is cut, requests are served again.
func TestGitBusy(t *testing.T) {
	s := newServed(t, Options{Limits: Limits{MaxGit: 1, GitWait: 100 * time.Millisecond, SlowTimeout: 2 * time.Second}})
	cut := make(chan error, 1)
	go func() {
		_, err := trickle(t, "127.0.0.2", s.addr, receivePackHead(s.addr, 1<<20), 100*time.Millisecond, 10*time.Second)
		cut <- err
	}()
	waitFor(t, "the slow push to take the git slot", func() bool { return len(gitDescendants(t)) > 0 })
	code, retry, body := getFrom(t, "127.0.0.1", s.url+"/index.git/info/refs?service=git-upload-pack")
	if code != http.StatusServiceUnavailable || retry == "" || !strings.Contains(body, "--max-git") {
		t.Fatalf("with every git slot taken: %d, Retry-After %q, %q; want 503 naming --max-git", code, retry, body)
	}
	if err := <-cut; err != nil {
		t.Fatal(err)
	}
	if code, _, body := getFrom(t, "127.0.0.1", s.url+"/index.git/info/refs?service=git-upload-pack"); code != http.StatusOK {
		t.Fatalf("after the slow client was cut: %d %q", code, body)
	}
	waitNoGit(t, 2*time.Second)
}

// One client address uploads at most --max-client-uploads at once; other
// clients are not held back by it.
func TestClientUploads(t *testing.T) {
	s := newServed(t, Options{Limits: Limits{MaxClientUploads: 1, SlowTimeout: 2 * time.Second}})
	// A signed upload (the checks pass) whose body trickles.
	slow := blob.DigestBytes(bytes.Repeat([]byte("a"), 100000))
	put := "PUT /blobs/sha256/" + slow.SHA256 + " HTTP/1.1\r\nHost: " + s.addr + "\r\nContent-Length: 100000\r\n"
	for k, v := range signedHeaders(s.alice, slow, time.Now()) {
		put += k + ": " + v + "\r\n"
	}
	put += "\r\n"
	ref := blob.DigestBytes([]byte("x"))
	cut := make(chan error, 1)
	go func() {
		_, answer, err := trickleAnswer(t, "127.0.0.2", s.addr, put, 100*time.Millisecond, 10*time.Second)
		if err == nil && (!strings.HasPrefix(answer, "HTTP/1.1 408 ") || !strings.Contains(answer, "--min-rate")) {
			err = fmt.Errorf("the slow upload was answered %q, want 408 naming --min-rate", answer)
		}
		cut <- err
	}()
	waitFor(t, "the slow upload to start", func() bool {
		s.srv.uploads.mu.Lock()
		defer s.srv.uploads.mu.Unlock()
		return s.srv.uploads.n["127.0.0.2"] > 0
	})
	putFrom := func(from string) (int, string) {
		c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}}
		req, _ := http.NewRequest("PUT", s.url+"/blobs/sha256/"+ref.SHA256, bytes.NewReader([]byte("x")))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := putFrom("127.0.0.2"); code != http.StatusTooManyRequests || !strings.Contains(body, "--max-client-uploads") {
		t.Fatalf("a second upload from the same client: %d %q; want 429 naming --max-client-uploads", code, body)
	}
	// Another client goes on to the usual checks (unsigned: 403).
	if code, body := putFrom("127.0.0.1"); code != http.StatusForbidden {
		t.Fatalf("an upload from another client: %d %q; want 403 (unsigned)", code, body)
	}
	if err := <-cut; err != nil {
		t.Fatal(err)
	}
}

// Headers that trickle are cut at --header-timeout.
func TestSlowHeaders(t *testing.T) {
	s := newServed(t, Options{Limits: Limits{HeaderTimeout: 500 * time.Millisecond}})
	d, err := trickle(t, "127.0.0.2", s.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", 100*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d > 2*time.Second {
		t.Fatalf("slow headers cut after %s, want about 0.5 s", d)
	}
}

// A client that stops reading a large download is cut: it gets far
// less than the blob (its socket buffers' worth), not all of it.
func TestStalledReader(t *testing.T) {
	s := newServed(t, Options{Limits: Limits{SlowTimeout: 500 * time.Millisecond, MinRate: 1 << 20}})
	data := make([]byte, 48<<20)
	rand.Read(data)
	ref := blob.DigestBytes(data)
	if err := s.repo.Blobs.Put(s.ctx, ref, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /blobs/sha256/"+ref.SHA256+" HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(4 * time.Second) // reading nothing
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	if n >= ref.Size {
		t.Fatalf("a client that stopped reading for 4 s still got all %d bytes: it was not cut", n)
	}
	// A client that reads gets all of it, however long it takes at the
	// minimum rate or faster, and however loaded the machine. It streams
	// the blob through its digest, as a client does: one that gathers it
	// in memory (io.ReadAll, under -race) stops reading for up to a
	// second while it grows its buffer, and one that reads into 48 MiB at
	// once takes the connection's buffers in one call, as long as the
	// kernel's copy lasts; on a loaded machine, both stop for longer than
	// --slow-timeout, and are cut, rightly.
	resp, err := http.Get(s.url + "/blobs/sha256/" + ref.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	got, err := io.CopyBuffer(h, resp.Body, make([]byte, 64<<10))
	if resp.StatusCode != http.StatusOK || err != nil || hex.EncodeToString(h.Sum(nil)) != ref.SHA256 {
		t.Fatalf("a reading client: %s, %d of %d bytes (%v)", resp.Status, got, ref.Size, err)
	}
}

// waitFor waits (up to 10 s) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
