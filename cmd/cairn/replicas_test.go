//go:build replicas

package main

// The deployment at scale, end to end (scripts/replicas runs it; it needs
// nginx): one writer and three read replicas (cairn serve --follow) that
// share one object store,
// real processes of a cairn binary built for the test, behind nginx as
// the load balancer. Publishers push through nginx while readers read
// through it (light reads, blobs, cairn pull); replicas and the writer
// are killed with SIGKILL mid-load and started again. At the end every
// replica is at the writer's verified head, every push that was
// acknowledged is there, and no reader ever accepted a head that is not
// the writer's.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/light"
)

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a cairn serve (or nginx) process the test starts, kills and
// starts again on the same address.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	addr string
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "CAIRN_KEY=", "SSH_AUTH_SOCK=")
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	f.Close()
	go cmd.Wait()
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if c, err := net.Dial("tcp", p.addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.log)
			p.t.Fatalf("%s does not listen on %s after 2 minutes:\n%s", p.name, p.addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill9 kills the process at once, as a crash or the OOM killer would.
func (p *proc) kill9() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd = nil
	}
}

// stop stops the process as an operator would (SIGINT) and waits.
func (p *proc) stop() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	for i := 0; i < 400; i++ {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	cmd.Process.Kill()
}

// cairnIn runs the cairn binary and returns its output; fail says
// whether a failure fails the test.
func cairnIn(t *testing.T, bin string, fail bool, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CAIRN_KEY=", "SSH_AUTH_SOCK=", "CAIRN_REPO=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && fail {
		t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// nginxFront starts nginx on addr, balancing over the replicas round
// robin: a replica that refuses connections (killed) is skipped, and a
// read it answers 503 (not verified yet) is tried on the next one. A 502
// is passed on: a replica says so when its writer cannot be reached for
// a push, which another replica would not change.
func nginxFront(t *testing.T, dir, addr string, replicas []string) *proc {
	t.Helper()
	prefix := filepath.Join(dir, "nginx")
	os.MkdirAll(filepath.Join(prefix, "logs"), 0o755)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	var ups strings.Builder
	for _, r := range replicas {
		fmt.Fprintf(&ups, "\t\tserver %s max_fails=1 fail_timeout=1s;\n", r)
	}
	conf := fmt.Sprintf(`%s
daemon off;
worker_processes 2;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log;
events { worker_connections 1024; }
http {
	access_log %[2]s/logs/access.log;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	upstream replicas {
%[3]s		keepalive 32;
	}
	server {
		listen %[4]s;
		client_max_body_size 0;
		proxy_request_buffering off;
		proxy_buffering off;
		proxy_http_version 1.1;
		proxy_set_header Connection "";
		proxy_set_header Host $http_host;
		proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		proxy_read_timeout 120s;
		proxy_next_upstream error timeout http_503;
		location / { proxy_pass http://replicas; }
	}
}
`, user, prefix, ups.String(), addr)
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: "nginx", bin: "nginx", args: []string{"-p", prefix, "-c", confFile}, addr: addr, log: filepath.Join(prefix, "logs", "stderr.log")}
	p.start()
	t.Cleanup(p.stop)
	return p
}

// counts are what the readers and pushers saw, by kind.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(kind string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[kind]++
	c.mu.Unlock()
}

func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.m)
}

var headLine = regexp.MustCompile(`head ([0-9a-f]{40})`)

func TestReplicasBehindNginx(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatal("nginx is not installed (scripts/replicas installs it as root)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := func(s string) string { return filepath.Join(dir, s) }
	must := func(args ...string) string {
		t.Helper()
		out, _ := cairnIn(t, bin, true, args...)
		return out
	}

	// The writer's repository: a root, a publisher, a checkpoint key.
	must("key", "new", p("root.key"))
	must("key", "new", p("alice.key"))
	must("key", "new", p("ckpt.key"))
	// One object store for the writer and its replicas (a file:// bucket
	// here; s3:// in a deployment).
	bucket := "file://" + p("bucket")
	os.MkdirAll(p("bucket"), 0o755)
	out := must("init", p("writer"), "--root-key", p("root.key"), "--blobs", bucket)
	intro := regexp.MustCompile(`introduction ([0-9a-f]{64})`).FindStringSubmatch(out)[1]
	must("key", "grant", "--repo", p("writer"), "--key", p("root.key"), p("alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*")
	must("key", "grant", "--repo", p("writer"), "--key", p("root.key"), p("ckpt.key.pub"), "--holder", "writer", "--scope", "checkpoint")
	pkg := func(name, version string) string {
		d := p("pkgs/" + strings.ReplaceAll(name, "/", "_") + "-" + version)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "cairn-package.yaml"), []byte("name: "+name+"\nversion: "+version+"\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
		os.WriteFile(filepath.Join(d, "src.tar.gz"), []byte("source of "+name+"@"+version), 0o644)
		return d
	}
	must("publish", "--repo", p("writer"), "--key", p("alice.key"), pkg("acme/base", "1.0.0"))

	wAddr := freeAddr(t)
	writerURL := "http://" + wAddr
	writer := &proc{t: t, name: "writer", bin: bin, addr: wAddr, log: p("writer.log"),
		args: []string{"serve", "--repo", p("writer"), "--addr", wAddr, "--checkpoint-key", p("ckpt.key"), "--sync", "0", "--trusted-proxy", "127.0.0.0/8"}}
	writer.start()
	t.Cleanup(writer.stop)

	var replicas []*proc
	var addrs []string
	for i := range 3 {
		name := fmt.Sprintf("replica%d", i+1)
		must("remote", "add", "writer", writerURL, "--introduction", intro, "--repo", p(name), "--blobs", bucket)
		a := freeAddr(t)
		r := &proc{t: t, name: name, bin: bin, addr: a, log: p(name + ".log"),
			args: []string{"serve", "--repo", p(name), "--follow", "writer", "--addr", a, "--follow-interval", "2s", "--trusted-proxy", "127.0.0.1"}}
		r.start()
		t.Cleanup(r.stop)
		replicas = append(replicas, r)
		addrs = append(addrs, a)
	}
	front := "http://" + freeAddr(t)
	nginxFront(t, dir, strings.TrimPrefix(front, "http://"), addrs)

	// The writer's history as the test knows it: every head a reader
	// accepted must be in it at the end.
	var (
		accepted   sync.Map // head → true
		pushes     counts
		reads      counts
		ackMu      sync.Mutex
		acked      []string // NAME@VERSION of every acknowledged push
		stopLoad   atomic.Bool
		wg         sync.WaitGroup
		wentBack   atomic.Int64
		blobRefs   sync.Map // sha256 → size, of acknowledged artifacts
		baseDigest = blob.DigestBytes([]byte("source of acme/base@1.0.0"))
	)
	blobRefs.Store(baseDigest.SHA256, baseDigest.Size)

	// Two publishers, each its own clone through nginx, each its own
	// package: publish, push; an acknowledged push is one cairn push
	// reported done (exit 0).
	for i := range 2 {
		laptop := p(fmt.Sprintf("laptop%d", i+1))
		must("remote", "add", "origin", front, "--introduction", intro, "--repo", laptop)
		for {
			if _, err := cairnIn(t, bin, false, "pull", "--repo", laptop, "origin"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		name := fmt.Sprintf("acme/p%d", i+1)
		wg.Go(func() {
			var published []string
			for v := 0; !stopLoad.Load(); v++ {
				version := fmt.Sprintf("1.0.%d", v)
				if _, err := cairnIn(t, bin, false, "publish", "--repo", laptop, "--key", p("alice.key"), pkg(name, version)); err != nil {
					pushes.add("publish refused")
					continue
				}
				published = append(published, name+"@"+version)
				out, err := cairnIn(t, bin, false, "push", "--repo", laptop, "--key", p("alice.key"), "origin")
				if err != nil {
					pushes.add("push failed")
					t.Logf("push failed (not acknowledged, retried with the next): %s", strings.TrimSpace(out))
					continue
				}
				pushes.add("push acknowledged")
				ackMu.Lock()
				acked = append(acked, published...)
				ackMu.Unlock()
				for _, pv := range published {
					nv := strings.SplitN(pv, "@", 2)
					d := blob.DigestBytes([]byte("source of " + nv[0] + "@" + nv[1]))
					blobRefs.Store(d.SHA256, d.Size)
				}
				published = nil
			}
		})
	}

	// Light readers: each read opens the checkpoint served through nginx
	// and verifies it (signature, tiles, map leaf, consistent with the
	// one it verified before, which it keeps), then reads a package with
	// its proofs, as cairn's light client does.
	for i := range 3 {
		wg.Go(func() {
			var last int64
			c := &light.Client{BaseURL: front, Introduction: intro, StateDir: p(fmt.Sprintf("light%d", i))}
			for !stopLoad.Load() {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				v, err := c.Open(rctx)
				if err == nil {
					accepted.Store(v.Checkpoint.Head, true)
					if v.Checkpoint.Size < last {
						wentBack.Add(1)
					}
					last = v.Checkpoint.Size
					_, err = v.Subject(rctx, "package acme/base")
				}
				cancel()
				if err != nil {
					reads.add("light refused or failed")
					t.Logf("light read: %v", err)
				} else {
					reads.add("light verified")
				}
			}
		})
	}
	// Blob readers: every blob read is verified by digest and size.
	wg.Go(func() {
		m := &blob.HTTP{URL: front}
		for !stopLoad.Load() {
			blobRefs.Range(func(k, v any) bool {
				got, err := blob.ReadAll(ctx, m, blob.Ref{SHA256: k.(string), Size: v.(int64)})
				switch {
				case err == nil && len(got) == int(v.(int64)):
					reads.add("blob verified")
				case err != nil && strings.Contains(err.Error(), "mismatch"):
					t.Errorf("a blob read through nginx did not verify: %v", err)
				default:
					reads.add("blob not there yet")
				}
				return !stopLoad.Load()
			})
		}
	})
	// A follower of the index through nginx: cairn pull, verified.
	wg.Go(func() {
		laptop := p("reader")
		must("remote", "add", "origin", front, "--introduction", intro, "--repo", laptop)
		for !stopLoad.Load() {
			out, err := cairnIn(t, bin, false, "pull", "--repo", laptop, "origin")
			if err != nil {
				reads.add("pull refused or failed")
				t.Logf("pull through nginx: %s", strings.TrimSpace(out))
				continue
			}
			if m := headLine.FindStringSubmatch(out); m != nil {
				accepted.Store(m[1], true)
			}
			reads.add("pull verified")
		}
	})

	// Mid-load: a replica, then the writer, then another replica, killed
	// with SIGKILL and started again.
	step := func(d time.Duration, what string, f func()) {
		time.Sleep(d)
		t.Logf("%s (pushes %s; reads %s)", what, pushes.String(), reads.String())
		f()
	}
	step(4*time.Second, "kill -9 replica1", replicas[0].kill9)
	step(2*time.Second, "start replica1", replicas[0].start)
	step(2*time.Second, "kill -9 the writer", writer.kill9)
	step(2*time.Second, "start the writer", writer.start)
	step(2*time.Second, "kill -9 replica2 and replica3", func() { replicas[1].kill9(); replicas[2].kill9() })
	step(2*time.Second, "start replica2 and replica3", func() { replicas[1].start(); replicas[2].start() })
	step(4*time.Second, "stop the load", func() { stopLoad.Store(true) })
	wg.Wait()
	t.Logf("pushes: %s; reads: %s; a light reader saw an older tree after a newer one %d time(s)", pushes.String(), reads.String(), wentBack.Load())

	// Every replica at the writer's verified head.
	head := func(u string) string {
		resp, err := http.Get(u + "/healthz")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		h, _ := strings.CutPrefix(strings.TrimSpace(string(b)), "ok ")
		return h
	}
	final := head(writerURL)
	if final == "" {
		t.Fatal("the writer does not verify at the end")
	}
	served := func(u string) string {
		resp, err := http.Get(u + "/log/checkpoint")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		c, err := checkpoint.Claimed(b)
		if err != nil {
			return ""
		}
		return c.Head
	}
	for _, r := range replicas {
		deadline := time.Now().Add(time.Minute)
		for served("http://"+r.addr) != final || head("http://"+r.addr) != final {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(r.log)
				t.Fatalf("%s serves %q, verified %q, not the writer's head %s, a minute after the load:\n%s", r.name, served("http://"+r.addr), head("http://"+r.addr), final, tail(log, 40))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The writer gone, the replicas still serve every acknowledged blob.
	writer.stop()
	m := &blob.HTTP{URL: front}
	blobRefs.Range(func(k, v any) bool {
		if _, err := blob.ReadAll(ctx, m, blob.Ref{SHA256: k.(string), Size: v.(int64)}); err != nil {
			t.Errorf("with the writer stopped, an acknowledged blob read through nginx: %v", err)
		}
		return true
	})

	// Stopped, every repository verifies on its own, at the same head,
	// and holds every acknowledged push.
	for _, r := range replicas {
		r.stop()
	}
	wr, err := index.Open(ctx, p("writer"))
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	accepted.Range(func(k, _ any) bool {
		if ok, _ := wr.IsAncestor(ctx, k.(string), final); !ok && k.(string) != final {
			t.Errorf("a reader accepted head %s, which is not in the writer's history (head %s)", k, final)
		}
		return true
	})
	for _, dirName := range []string{"writer", "replica1", "replica2", "replica3"} {
		must("verify", "--repo", p(dirName))
		r, err := index.Open(ctx, p(dirName))
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := r.Head(ctx, index.MainRef); h != final {
			t.Errorf("%s's main is at %s, want %s", dirName, h, final)
		}
		ackMu.Lock()
		for _, pv := range acked {
			nv := strings.SplitN(pv, "@", 2)
			if vs, err := r.Show(ctx, nv[0], nv[1]); err != nil || len(vs) != 1 {
				t.Errorf("%s lacks %s, an acknowledged push: %v", dirName, pv, err)
			}
		}
		ackMu.Unlock()
		r.Close()
	}
	if len(acked) == 0 {
		t.Fatal("no push was acknowledged under load")
	}
	t.Logf("%d versions acknowledged, all on the writer and the 3 replicas at %s; %d distinct heads accepted by readers", len(acked), final, countMap(&accepted))
}

func countMap(m *sync.Map) int {
	n := 0
	m.Range(func(_, _ any) bool { n++; return true })
	return n
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
