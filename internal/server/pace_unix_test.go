//go:build unix

package server

import (
	"bufio"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A server that is itself stopped for 2 s (with --slow-timeout 300 ms: a
// loaded machine that does not run it) does not cut its client for it,
// whether the client went on reading meanwhile (it is elsewhere) or was
// stopped as well (the same machine, the same process): once the server
// runs again, the download goes on, whole.
func TestPaceServerStall(t *testing.T) {
	const size = 32 << 20
	file := filepath.Join(t.TempDir(), "blob")
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(os.Args[0], "paced-file", file)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the server's address: %v", err)
	}
	for _, c := range []struct {
		name    string
		readsOn bool
	}{{"the client reads on", true}, {"the client stops too", false}} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Get("http://" + strings.TrimSpace(addr) + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// The client streams what it reads (gathering it in memory,
			// under -race, would stop it for longer than the server).
			head, err := io.CopyN(io.Discard, resp.Body, 8<<20)
			if err != nil {
				t.Fatal(err)
			}
			// The server fills the connection's buffers, then blocks
			// writing: stop it.
			time.Sleep(50 * time.Millisecond)
			if err := srv.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			resume := func() { srv.Process.Signal(syscall.SIGCONT) }
			if c.readsOn {
				go func() {
					time.Sleep(2 * time.Second)
					resume()
				}()
			} else {
				time.Sleep(2 * time.Second)
				resume()
			}
			rest, err := io.Copy(io.Discard, resp.Body)
			if got := head + rest; err != nil || got != size {
				t.Fatalf("a client reading as fast as it can, while its server was stopped for 2 s: %d of %d bytes (%v); it was cut for the server's own stall", got, size, err)
			}
		})
	}
}
