package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first interrupt asks cairn to stop what it does and clean up (a
// server waits for the requests in flight, up to 30 s); a second one ends
// it at once, as if the first had not been caught, for an operator who
// will not wait.
func TestSecondInterruptEndsAtOnce(t *testing.T) {
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	mustRun(t, "key", "new", p("root.key"))
	mustRun(t, "init", p("repo"), "--root-key", p("root.key"))
	srv := cairnCmd(t, "serve", "--repo", p("repo"), "--addr", "127.0.0.1:0", "--ready-file", p("url"))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		srv.Process.Kill()
		<-exited
	})
	var u string
	for deadline := time.Now().Add(30 * time.Second); u == ""; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(p("url"))
		u = strings.TrimSpace(string(data))
		if time.Now().After(deadline) {
			t.Fatal("the server did not start")
		}
	}
	// A request in flight: a batch whose body has not all come.
	addr, _ := url.Parse(u)
	conn, err := net.Dial("tcp", addr.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Expect: 100-continue: the server says "100 Continue" once its
	// handler reads the body, so the request is known to be in flight.
	fmt.Fprintf(conn, "POST /blobs/batch HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n", addr.Host)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("the server's answer to a request that expects 100-continue: %q, %v", line, err)
	}
	fmt.Fprintf(conn, "sha256:")

	srv.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		t.Fatalf("the server ended on the first interrupt with a request in flight (%v): it waits for it", waitErr)
	case <-time.After(500 * time.Millisecond):
	}
	srv.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		err := waitErr
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("after a second interrupt: %v, want an end by the signal", err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Fatalf("after a second interrupt: %v, want an end by SIGINT", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not end on a second interrupt")
	}
}
