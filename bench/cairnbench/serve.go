package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/keys"
)

// benchServe measures `cairn serve` against nginx serving the same files
// from the same disk (with its usual open_file_cache), both loaded by wrk
// on this machine: GETs of more distinct 1 KiB blobs than cairn's
// small-blob cache holds, of one 16 MiB blob, and of more distinct
// package documents than its document cache holds; and `cairn pull` of
// 100 new records against a plain `git fetch` of the same commits plus
// raw ed25519 verification of their signatures.
func benchServe(ctx context.Context, cairn, work string, ix *gen.Index) error {
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the serve group needs %s (bench/run installs nginx and wrk with apt-get when run as root)", tool)
		}
	}
	work, err := filepath.Abs(work) // nginx takes paths from its prefix
	if err != nil {
		return err
	}
	r := ix.Repo
	ckptFile := filepath.Join(work, "server.key")
	ckpt, err := keys.Generate(ckptFile, "bench server")
	if err != nil {
		return err
	}
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: ckpt, Holder: "server", Scopes: []string{"checkpoint"}}, ix.Root); err != nil {
		return err
	}
	// Small blobs: more distinct ones than cairn's small-blob cache holds
	// (4,096 entries, internal/server's newLightCache) and than nginx keeps
	// open (nginxOpenFiles), requested in turn, so that neither side
	// answers from what it keeps for them.
	big := make([]byte, 16<<20)
	rand.Read(big)
	bigRef := blob.DigestBytes(big)
	if err := r.Blobs.Put(ctx, bigRef, bytes.NewReader(big)); err != nil {
		return err
	}
	smallPaths, err := putSmallBlobs(ctx, r.Blobs, smallBlobs)
	if err != nil {
		return err
	}

	// Light reads: more distinct packages than cairn's 4,096-entry
	// document cache and nginx's open files hold (as many as the index
	// has, if fewer), each
	// document also written as a file for nginx to serve at the same path.
	docroot := filepath.Join(work, "docroot")
	var paths []string
	for i := 0; i < min(sparsePackages, ix.Records/gen.RecordsPerVersion); i++ {
		paths = append(paths, fmt.Sprintf("/api/v1/packages/ns%d/pkg%d", i%1000, i))
	}

	pv, err := preparePageVersion(ctx, ix)
	if err != nil {
		return err
	}

	srv, cairnURL, err := startCairn(cairn, work, r.Dir, ckptFile)
	if err != nil {
		return err
	}
	// Once it stopped, the documents it kept on disk go now, not in the
	// background of the next server on this index (the light group's).
	defer os.RemoveAll(filepath.Join(r.LocalDir(), "package-docs"))
	defer stop(srv)
	// The first read of each document, which nginx's docroot is written
	// from: cairn serve renders it from git and keeps it on disk (its
	// document store), as the docroot keeps it for nginx.
	t0 := time.Now()
	if err := mirrorDocs(cairnURL, docroot, paths); err != nil {
		return err
	}
	firstReads := float64(len(paths)) / time.Since(t0).Seconds()
	blobs, err := filepath.Abs(filepath.Join(r.LocalDir(), "blobs"))
	if err != nil {
		return err
	}
	logDir, err := filepath.Abs(r.Main().LogDir())
	if err != nil {
		return err
	}
	ngx, ngxURL, err := startNginx(work, docroot, blobs, logDir)
	if err != nil {
		return err
	}
	defer stop(ngx)
	script := filepath.Join(work, "paths.lua")
	if err := writeLua(script, paths); err != nil {
		return err
	}
	smallScript := filepath.Join(work, "blobs.lua")
	if err := writeLua(smallScript, smallPaths); err != nil {
		return err
	}

	// compareWith measures cairn against the floor, and the references
	// with them, each round in turn.
	compareWith := func(name, unit, goal string, conns int, path string, script string, per func(wrkResult) float64, refs []reference) error {
		bases := []string{ngxURL, cairnURL}
		for _, r := range refs {
			bases = append(bases, r.url)
		}
		got := make([][]float64, len(bases))
		for round := 0; round < 3; round++ {
			for i, base := range bases {
				settled(srv)
				res, err := runWrk(base+path, conns, script)
				if err != nil {
					return err
				}
				got[i] = append(got[i], per(res))
			}
		}
		f, o := medianF(got[0]), medianF(got[1])
		line("floor_"+name, f, unit, 1, "nginx (open_file_cache max="+strconv.Itoa(nginxOpenFiles)+"), the same bytes as files on the same disk, wrk -t2 -c"+strconv.Itoa(conns)+" -d5s, each run once cairn serve has been idle for 100 ms, median of 3")
		line(name, o, unit, o/f, "cairn serve, the same bytes, alternating with the floor, median of 3 "+goal)
		for i, r := range refs {
			v := medianF(got[2+i])
			line(r.name, v, unit, v/f, r.note)
		}
		return nil
	}
	compare := func(name, unit, goal string, conns int, path string, script string, per func(wrkResult) float64) error {
		return compareWith(name, unit, goal, conns, path, script, per, nil)
	}
	reqs := func(w wrkResult) float64 { return w.reqs }
	mibs := func(w wrkResult) float64 { return w.bytes / (1 << 20) }
	if err := compare("serve_blob_1k", "req/s", fmt.Sprintf("(%d distinct 1 KiB blobs in turn, more than cairn's 4,096-entry small-blob cache and nginx's %d open files, wrk's two threads half the list apart; goal ≥ 0.80)", len(smallPaths), nginxOpenFiles), 32, "", smallScript, reqs); err != nil {
		return err
	}
	if err := compare("serve_blob_16m", "MiB/s", "(one 16 MiB blob again and again; goal ≥ 0.80)", 4, "/blobs/sha256/"+bigRef.SHA256, "", mibs); err != nil {
		return err
	}
	from := "each read once before, as nginx's files were written: cairn answers from the documents it rendered then and keeps on disk, a file each, as nginx reads its own"
	if len(paths) <= 4096 {
		from = fmt.Sprintf("FEWER than cairn's 4,096-entry document cache holds (the index has %d packages), so cairn answers from memory", len(paths))
	} else if len(paths) <= nginxOpenFiles {
		from += fmt.Sprintf("; FEWER than nginx keeps open (the index has %d packages), so nginx answers from its open files", len(paths))
	}
	if err := compare("serve_sparse", "req/s", fmt.Sprintf("(%d distinct package documents in turn, %s; wrk's two threads half the list apart; goal ≥ 10,000 req/s, absolute)", len(paths), from), 32, "", script, reqs); err != nil {
		return err
	}
	line("serve_sparse_first", firstReads, "req/s", none, fmt.Sprintf("the first read of each of the same %d documents (8 clients at a time, Go's net/http, writing each to nginx's docroot): cairn serve finds each in git and renders it (three round trips to git's processes: the package's tree, found with its bytes, its versions' trees, their files) and keeps it on disk; no floor does that work", len(paths)))
	if err := benchServeTiles(cairnURL, ngxURL, work, logDir, compareWith); err != nil {
		return err
	}
	if err := benchPageVersion(cairnURL, docroot, pv, compare); err != nil {
		return err
	}
	return benchPull(ctx, cairn, work, ix, cairnURL)
}

// benchPull: a replica pulls 100 new records from a 100k-record index.
func benchPull(ctx context.Context, cairn, work string, ix *gen.Index, url string) error {
	intro := ix.Repo.Config.Introduction
	client := filepath.Join(work, "client")
	if out, err := exec.Command(cairn, "remote", "add", "origin", url, "--introduction", intro, "--repo", client).CombinedOutput(); err != nil {
		return fmt.Errorf("cairn remote add: %v\n%s", err, out)
	}
	start := time.Now()
	if out, err := exec.Command(cairn, "pull", "origin", "--repo", client).CombinedOutput(); err != nil {
		return fmt.Errorf("cairn pull: %v\n%s", err, out)
	}
	first := time.Since(start)
	floorRepo := filepath.Join(work, "floor.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", url+"/index.git", floorRepo).CombinedOutput(); err != nil {
		return fmt.Errorf("git clone: %v\n%s", err, out)
	}
	sigs := make([]gen.Sig, 100)
	for i := range sigs {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		msg := make([]byte, 600)
		rand.Read(msg)
		sigs[i] = gen.Sig{Pub: pub, Msg: msg, Sig: ed25519.Sign(priv, msg)}
	}
	var floors, ours []time.Duration
	for round := 0; round < 5; round++ {
		if err := ix.Add(ctx, 100); err != nil {
			return err
		}
		t0 := time.Now()
		if out, err := exec.Command("git", "-C", floorRepo, "fetch", "-q", url+"/index.git", "+main:main").CombinedOutput(); err != nil {
			return fmt.Errorf("git fetch: %v\n%s", err, out)
		}
		for _, s := range sigs {
			ed25519.Verify(s.Pub, s.Msg, s.Sig)
		}
		floors = append(floors, time.Since(t0))
		t0 = time.Now()
		if out, err := exec.Command(cairn, "pull", "origin", "--repo", client).CombinedOutput(); err != nil {
			return fmt.Errorf("cairn pull: %v\n%s", err, out)
		}
		ours = append(ours, time.Since(t0))
	}
	f, o := median(floors), median(ours)
	line("floor_pull", ms(f), "ms", 1, "git fetch of the same 100 new records' commits over HTTP from the same server + raw ed25519 of 100 signatures, median of 5")
	line("pull_incremental", ms(o), "ms", ms(f)/ms(o), fmt.Sprintf("cairn pull of 100 new records into the %d-record replica (checkpoint, fetch, verify, move refs), median of 5 (goal ≥ 0.67: at most 1.5× the floor's time); the first, full pull took %s", ix.Records, first.Round(time.Millisecond)))
	return nil
}

func startCairn(cairn, work, repo, key string) (*exec.Cmd, string, error) {
	return startCairnWith(cairn, work, repo, key, "")
}

// startCairnWith starts cairn serve, with --policy if policy is set.
func startCairnWith(cairn, work, repo, key, policy string) (*exec.Cmd, string, error) {
	ready := filepath.Join(work, "cairn.url")
	os.Remove(ready) // a server started before in work left its own
	args := []string{"serve", "--repo", repo, "--addr", "127.0.0.1:0", "--ready-file", ready, "--checkpoint-key", key, "--sync", "0"}
	if policy != "" {
		args = append(args, "--policy", policy)
	}
	cmd := exec.Command(cairn, args...)
	logf, err := os.Create(filepath.Join(work, "cairn-access.log"))
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = io.Discard, logf
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	u, err := waitReady(cmd, ready)
	if err != nil {
		return nil, "", err
	}
	return cmd, u, nil
}

// waitReady waits up to 30 s for a server started as cmd to write its
// URL to the file ready, and returns the URL; else it stops cmd.
func waitReady(cmd *exec.Cmd, ready string) (string, error) {
	for i := 0; i < 600; i++ {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop(cmd)
	return "", fmt.Errorf("%s did not start: it wrote no URL to %s", filepath.Base(cmd.Path), ready)
}

// startNginx serves docroot at / and the blob store's files at the URLs
// cairn serves them at, with access logs as cairn keeps them; and, if
// logDir is set, the transparency log's tile tree under /log/, as cairn
// serves it.
func startNginx(work, docroot, blobs, logDir string) (*exec.Cmd, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	prefix := filepath.Join(work, "nginx")
	os.MkdirAll(filepath.Join(prefix, "logs"), 0o755)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	logLocation := ""
	if logDir != "" {
		logLocation = fmt.Sprintf("location /log/tile/ { alias %s/tile/; }", logDir)
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
	sendfile on;
	tcp_nopush on;
	open_file_cache max=%[7]d inactive=60s;
	open_file_cache_valid 60s;
	keepalive_requests 100000;
	default_type application/octet-stream;
	server {
		listen %[3]s;
		root %[4]s;
		location ~ ^/blobs/sha256/(..)(.*)$ { alias %[5]s/sha256/$1/$1$2; }
		%[6]s
	}
}
`, user, prefix, addr, docroot, blobs, logLocation, nginxOpenFiles)
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command("nginx", "-p", prefix, "-c", confFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd, "http://" + addr, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop(cmd)
	return nil, "", fmt.Errorf("nginx did not start (see %s/logs/error.log)", prefix)
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
	}
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, err
}

// writeLua writes a wrk script that requests the paths in turn, each of
// wrk's threads starting at its own share of the list (two threads: half
// the list apart), so that one thread does not ask for what the other
// just made either side keep in memory.
func writeLua(file string, paths []string) error {
	var b strings.Builder
	b.WriteString("paths = {\n")
	for _, p := range paths {
		fmt.Fprintf(&b, "  %q,\n", p)
	}
	// setup runs in wrk's main state, once per thread, before the
	// thread's init; thread:set gives that thread's state a global.
	b.WriteString(`}
local threads = 0
setup = function(thread)
  thread:set("start", math.floor(threads * #paths / 2) % #paths)
  threads = threads + 1
end
init = function(args)
  i = start or 0
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
`)
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// The serve group's working sets: more than any cache holds (issue 18),
// nginx's as much as cairn's. nginx keeps up to nginxOpenFiles files
// open (open_file_cache), cairn 4,096 small blobs and 4,096 documents in
// memory: cycled through more than both, neither answers from what it
// kept of an earlier turn. (With 10,000, as many as nginx keeps open,
// nginx answered every request from its open files and cairn most from
// disk.)
const (
	nginxOpenFiles = 10_000
	smallBlobs     = 25_000
	sparsePackages = 25_000
)

// putSmallBlobs stores n distinct random 1 KiB blobs, 8 at a time, and
// returns their URL paths.
func putSmallBlobs(ctx context.Context, store blob.Store, n int) ([]string, error) {
	paths := make([]string, n)
	errs := make(chan error, 8)
	next := make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			next <- i
		}
		close(next)
	}()
	for w := 0; w < 8; w++ {
		go func() {
			b := make([]byte, 1<<10)
			for i := range next {
				rand.Read(b)
				ref := blob.DigestBytes(b)
				if err := store.Put(ctx, ref, bytes.NewReader(b)); err != nil {
					for range next {
					}
					errs <- err
					return
				}
				paths[i] = "/blobs/sha256/" + ref.SHA256
			}
			errs <- nil
		}()
	}
	var first error
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return paths, first
}

// mirrorDocs writes the body cairn serves at each path to the same path
// under docroot, 8 at a time.
func mirrorDocs(url, docroot string, paths []string) error {
	errs := make(chan error, 8)
	next := make(chan string)
	go func() {
		for _, p := range paths {
			next <- p
		}
		close(next)
	}()
	for w := 0; w < 8; w++ {
		go func() {
			var first error
			for p := range next {
				if first != nil {
					continue
				}
				body, err := httpGet(url + p)
				if err != nil {
					first = err
					continue
				}
				f := filepath.Join(docroot, filepath.FromSlash(p))
				os.MkdirAll(filepath.Dir(f), 0o755)
				first = os.WriteFile(f, body, 0o644)
			}
			errs <- first
		}()
	}
	var first error
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

type wrkResult struct{ reqs, bytes float64 }

// reference is a server measured with a floor and cairn, for what it
// tells (not a floor: it does less than cairn does), on a line of its
// own named name, its ratio to the floor's.
type reference struct{ name, url, note string }

var (
	reqsRE  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	bytesRE = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	errsRE  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func runWrk(url string, conns int, script string) (wrkResult, error) {
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d5s"}
	if script != "" {
		args = append(args, "-s", script)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	if m := errsRE.FindSubmatch(out); m != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %s responses were errors:\n%s", url, m[1], out)
	}
	m, b := reqsRE.FindSubmatch(out), bytesRE.FindSubmatch(out)
	if m == nil || b == nil {
		return wrkResult{}, fmt.Errorf("wrk %s: unexpected output:\n%s", url, out)
	}
	reqs, _ := strconv.ParseFloat(string(m[1]), 64)
	n, _ := strconv.ParseFloat(string(b[1]), 64)
	switch string(b[2]) {
	case "KB":
		n *= 1 << 10
	case "MB":
		n *= 1 << 20
	case "GB":
		n *= 1 << 30
	}
	return wrkResult{reqs: reqs, bytes: n}, nil
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// settled collects this process's garbage (the in-process floors' and
// the generated index's: a heap of hundreds of MiB at 1M records, whose
// collection would otherwise run during the next measured run), then
// waits until the server process srv has used no CPU for 100 ms (at most
// 3 s): what it does after the requests before — its collector marking
// a large heap, say — is not charged to the next measured run, which
// shares its two cores. Each run, floor or cairn's, waits alike.
func settled(srv *exec.Cmd) {
	runtime.GC()
	cpu := func() (int64, bool) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", srv.Process.Pid))
		if err != nil {
			return 0, false
		}
		// utime and stime: fields 14 and 15, after the command's ")".
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return 0, false
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return u + s, true
	}
	last, ok := cpu()
	for end := time.Now().Add(3 * time.Second); ok && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		now, ok2 := cpu()
		if !ok2 || now == last {
			return
		}
		last = now
	}
}
