package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// served is a repository behind Server.Serve on loopback, as cairn serve runs it.
type served struct {
	*fixture
	addr string
}

func newServed(t *testing.T, opts Options) *served {
	f := &fixture{t: t, ctx: context.Background(), root: signer(t), alice: signer(t)}
	r, _, err := index.Init(f.ctx, filepath.Join(t.TempDir(), "repo"), []keys.Signer{f.root}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.repo = r
	if _, err := author.Grant(f.ctx, r, author.KeyGrant{Key: f.alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, f.root); err != nil {
		t.Fatal(err)
	}
	opts.Exe, _ = filepath.Abs(os.Args[0])
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f.srv, err = New(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-done
		f.srv.Close()
	})
	f.url = "http://" + l.Addr().String()
	return &served{fixture: f, addr: l.Addr().String()}
}

// trickle opens a connection from the loopback address from (127.0.0.2
// stands for another client), sends head and then one byte of body every
// interval, and returns how long the server kept the connection open.
// The bytes are "a": in a push, the start of a pkt-line 0xaaaa bytes
// long, which git waits for.
func trickle(t *testing.T, from, addr, head string, every, limit time.Duration) (time.Duration, error) {
	d, _, err := trickleAnswer(t, from, addr, head, every, limit)
	return d, err
}

// trickleAnswer is trickle that also returns what the server sent.
func trickleAnswer(t *testing.T, from, addr, head string, every, limit time.Duration) (time.Duration, string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		return 0, "", err
	}
	closed := make(chan struct{})
	var answer strings.Builder
	go func() {
		// The server's answer, if any, then its close.
		io.Copy(&answer, c)
		close(closed)
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.After(limit)
	for {
		select {
		case <-closed:
			return time.Since(start), answer.String(), nil
		case <-deadline:
			return time.Since(start), "", fmt.Errorf("the connection from %s was still open after %s", from, limit)
		case <-tick.C:
			c.Write([]byte{'a'}) // an error here is the close, seen next
		}
	}
}

// gitDescendants lists the git processes under this one that serve
// requests (from /proc).
func gitDescendants(t *testing.T) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc to count git processes in")
	}
	parent := map[int]int{}
	comm := map[int]string{}
	state := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
		state[pid] = f[0]
		comm[pid] = s[strings.IndexByte(s, '(')+1 : i]
	}
	me := os.Getpid()
	var out []string
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == me {
				cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				// The repository's own long-lived reader and ref
				// session (gitx.RefSession) are not a request's.
				if strings.HasPrefix(comm[pid], "git") && !strings.Contains(string(cl), "cat-file\x00--batch") && !strings.Contains(string(cl), "update-ref\x00-m\x00cairn: append\x00--stdin") {
					out = append(out, fmt.Sprintf("%d %q (state %s)", pid, strings.ReplaceAll(string(cl), "\x00", " "), state[pid]))
				}
				break
			}
		}
	}
	return out
}

func waitNoGit(t *testing.T, within time.Duration) {
	t.Helper()
	end := time.Now().Add(within)
	for {
		left := gitDescendants(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("git processes still running %s after the clients were cut: %v", within, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func receivePackHead(addr string, length int) string {
	return "POST /index.git/git-receive-pack HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-git-receive-pack-request\r\nContent-Length: " + strconv.Itoa(length) + "\r\n\r\n"
}

// Attack 2: unauthenticated pushes that trickle their bodies are cut
// within the bound, take their git processes with them, and do not stop
// the server from serving others.
func TestAttackSlowBodies(t *testing.T) {
	s := newServed(t, Options{Limits: Limits{SlowTimeout: time.Second, MaxGit: 8, MaxClientUploads: 8}})
	type res struct {
		d   time.Duration
		err error
	}
	const n = 6
	results := make(chan res, n)
	for range n {
		go func() {
			d, err := trickle(t, "127.0.0.2", s.addr, receivePackHead(s.addr, 1<<20), 100*time.Millisecond, 6*time.Second)
			results <- res{d, err}
		}()
	}
	waitFor(t, "the slow pushes' git processes", func() bool { return len(gitDescendants(t)) > 0 })
	// Meanwhile, a legitimate clone is served.
	out, err := exec.Command("git", "clone", "-q", s.url+"/index.git", filepath.Join(t.TempDir(), "clone")).CombinedOutput()
	if err != nil {
		t.Fatalf("a clone while slow clients trickle: %v\n%s", err, out)
	}
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.d > 4*time.Second {
			t.Errorf("a slow client was cut after %s, want about 1 s (--slow-timeout)", r.d)
		}
	}
	waitNoGit(t, 2*time.Second)
}
