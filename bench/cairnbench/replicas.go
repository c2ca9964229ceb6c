package main

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// benchReplicas measures read replicas (cairn serve --follow) behind
// nginx as the load balancer: a 1 KiB blob and a light package read,
// through nginx to 1, 2 and 3 replicas of one writer, each against nginx
// serving the same bytes as static files (the floor), all loaded by wrk
// on this machine (2 cores shared by wrk, nginx and the replicas).
func benchReplicas(cairn, work string) error {
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the replicas group needs %s (bench/run installs nginx and wrk with apt-get when run as root)", tool)
		}
	}
	work, err := filepath.Abs(filepath.Join(work, "replicas"))
	if err != nil {
		return err
	}
	p := func(s string) string { return filepath.Join(work, s) }
	os.MkdirAll(work, 0o755)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(cairn, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	for _, k := range []string{"root", "alice", "ckpt"} {
		if _, err := run("key", "new", p(k+".key")); err != nil {
			return err
		}
	}
	out, err := run("init", p("writer"), "--root-key", p("root.key"))
	if err != nil {
		return err
	}
	intro := regexp.MustCompile(`introduction ([0-9a-f]{64})`).FindStringSubmatch(out)[1]
	if _, err := run("key", "grant", "--repo", p("writer"), "--key", p("root.key"), p("alice.key.pub"), "--holder", "alice", "--scope", "publish:acme/*"); err != nil {
		return err
	}
	if _, err := run("key", "grant", "--repo", p("writer"), "--key", p("root.key"), p("ckpt.key.pub"), "--holder", "writer", "--scope", "checkpoint"); err != nil {
		return err
	}
	src := make([]byte, 1<<10)
	rand.Read(src)
	pkg := p("pkg")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "cairn-package.yaml"), []byte("name: acme/fastjson\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n"), 0o644)
	os.WriteFile(filepath.Join(pkg, "src.tar.gz"), src, 0o644)
	if _, err := run("publish", "--repo", p("writer"), "--key", p("alice.key"), pkg); err != nil {
		return err
	}

	writer, writerURL, err := startServe(cairn, p("writer.log"), "serve", "--repo", p("writer"), "--checkpoint-key", p("ckpt.key"), "--sync", "0")
	if err != nil {
		return err
	}
	defer stop(writer)
	var replicas []string
	for i := range 3 {
		dir := p(fmt.Sprintf("replica%d", i+1))
		if _, err := run("remote", "add", "writer", writerURL, "--introduction", intro, "--repo", dir); err != nil {
			return err
		}
		cmd, u, err := startServe(cairn, dir+".log", "serve", "--repo", dir, "--follow", "writer")
		if err != nil {
			return err
		}
		defer stop(cmd)
		replicas = append(replicas, strings.TrimPrefix(u, "http://"))
	}

	// The floor's files: the blob and the light document as the replicas
	// serve them, at the same paths.
	ref := "/blobs/sha256/" + fmt.Sprintf("%x", sha256.Sum256(src))
	light := "/api/v1/packages/acme/fastjson"
	docroot := p("docroot")
	for _, path := range []string{ref, light} {
		body, err := getOK("http://" + replicas[0] + path)
		if err != nil {
			return err
		}
		f := filepath.Join(docroot, filepath.FromSlash(path))
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, body, 0o644); err != nil {
			return err
		}
	}
	ngx, fronts, floor, err := startBalancer(p("nginx"), docroot, replicas)
	if err != nil {
		return err
	}
	defer stop(ngx)

	for _, c := range []struct{ name, path string }{{"blob_1k", ref}, {"light", light}} {
		var floors, proxied []float64
		ours := make([][]float64, 3)
		for round := 0; round < 3; round++ {
			res, err := runWrk(floor+c.path, 32, "")
			if err != nil {
				return err
			}
			floors = append(floors, res.reqs)
			if res, err = runWrk(fronts[3]+c.path, 32, ""); err != nil {
				return err
			}
			proxied = append(proxied, res.reqs)
			for n := range 3 {
				res, err := runWrk(fronts[n]+c.path, 32, "")
				if err != nil {
					return err
				}
				ours[n] = append(ours[n], res.reqs)
			}
		}
		f := medianF(floors)
		line("floor_serve_replicas_"+c.name, f, "req/s", 1, "nginx serving the same bytes as a static file, wrk -t2 -c32 -d5s, median of 3")
		line("proxy_floor_replicas_"+c.name, medianF(proxied), "req/s", medianF(proxied)/f, "nginx proxying to that static nginx as it proxies to the replicas: what the balancer's hop alone allows on this machine")
		one := medianF(ours[0])
		for n := range 3 {
			o := medianF(ours[n])
			line(fmt.Sprintf("serve_replicas_%d_%s", n+1, c.name), o, "req/s", o/f, fmt.Sprintf("through nginx to %d replica(s) of one writer, %.2f× one replica, median of 3", n+1, o/one))
		}
	}
	return nil
}

// startServe starts a cairn command that listens (--addr is added, on a
// free port) and returns it with its URL once it answers.
func startServe(cairn, logFile string, args ...string) (*exec.Cmd, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(cairn, append(args, "--addr", addr)...)
	logf, err := os.Create(logFile)
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = io.Discard, logf
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	u := "http://" + addr
	for i := 0; i < 1200; i++ {
		if resp, err := http.Get(u + "/log/checkpoint"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, u, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop(cmd)
	return nil, "", fmt.Errorf("cairn %s serves no checkpoint after a minute (see %s)", strings.Join(args, " "), logFile)
}

func getOK(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, err
}

// startBalancer starts nginx with five servers: three balancing over the
// first 1, 2 and 3 replicas (round robin, keep-alive to the replicas),
// one serving docroot as static files (the floor), and one proxying to
// that one as the others proxy to the replicas (the balancer's own cost).
// fronts are the three balancers' URLs, then the proxy's.
func startBalancer(prefix, docroot string, replicas []string) (*exec.Cmd, []string, string, error) {
	os.MkdirAll(filepath.Join(prefix, "logs"), 0o755)
	var addrs []string
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, "", err
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `%s
daemon off;
worker_processes 2;
pid %s/nginx.pid;
error_log %s/logs/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	keepalive_requests 100000;
	default_type application/octet-stream;
	sendfile on;
`, user, prefix, prefix)
	for n := 1; n <= 3; n++ {
		fmt.Fprintf(&b, "\tupstream replicas%d {\n", n)
		for _, r := range replicas[:n] {
			fmt.Fprintf(&b, "\t\tserver %s;\n", r)
		}
		fmt.Fprintf(&b, "\t\tkeepalive 64;\n\t}\n")
		fmt.Fprintf(&b, "\tserver { listen %s; location / { proxy_pass http://replicas%d; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; } }\n", addrs[n-1], n)
	}
	fmt.Fprintf(&b, "\tserver { listen %s; root %s; location /api/ { default_type application/json; } }\n", addrs[3], docroot)
	// The balancer's own cost: the same proxying to the static server.
	fmt.Fprintf(&b, "\tupstream static { server %s; keepalive 64; }\n", addrs[3])
	fmt.Fprintf(&b, "\tserver { listen %s; location / { proxy_pass http://static; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; } }\n}\n", addrs[4])
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, nil, "", err
	}
	cmd := exec.Command("nginx", "-p", prefix, "-c", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	var fronts []string
	for _, a := range append(addrs[:3:3], addrs[4]) {
		fronts = append(fronts, "http://"+a)
	}
	return startedNginx(cmd, prefix, fronts, "http://"+addrs[3], addrs)
}

func startedNginx(cmd *exec.Cmd, prefix string, fronts []string, floor string, addrs []string) (*exec.Cmd, []string, string, error) {
	if err := cmd.Start(); err != nil {
		return nil, nil, "", err
	}
	for i := 0; i < 400; i++ {
		up := 0
		for _, a := range addrs {
			if c, err := net.Dial("tcp", a); err == nil {
				c.Close()
				up++
			}
		}
		if up == len(addrs) {
			return cmd, fronts, floor, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop(cmd)
	return nil, nil, "", fmt.Errorf("nginx did not start (see %s/logs/error.log)", prefix)
}
