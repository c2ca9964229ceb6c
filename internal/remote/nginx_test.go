//go:build plainhost

// The plain git host as it is deployed: git's own http-backend behind
// nginx (through fcgiwrap), nginx serving the published log and the blobs
// as static files. scripts/plainhost installs nginx and fcgiwrap and runs
// these; run it, not `go test -tags plainhost` by hand.
package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"

	"cairn.dev/cairn/internal/index"
)

// started runs a daemon for the test, its output in a file of dir, in a
// process group of its own, and stops the group (the daemon and the
// workers it forked) at the test's end.
func started(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
}

// waitFor waits until addr (a TCP address or a unix socket path) accepts.
func waitFor(t *testing.T, network, addr string) {
	t.Helper()
	for i := 0; ; i++ {
		if c, err := net.Dial(network, addr); err == nil {
			c.Close()
			return
		}
		if i == 400 {
			t.Fatalf("nothing listens on %s after 20s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newNginxHost is a plain host behind nginx: /index.git by git
// http-backend through fcgiwrap, /log/ and /blobs/ as static files.
func newNginxHost(t *testing.T) *plainHost {
	t.Helper()
	for _, bin := range []string{"nginx", "fcgiwrap", "git"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (scripts/plainhost installs nginx and fcgiwrap as root)", bin)
		}
	}
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	dir := t.TempDir()
	h := &plainHost{t: t, root: filepath.Join(dir, "git"), logDir: filepath.Join(dir, "www", "log"), mirrorDir: filepath.Join(dir, "www")}
	os.MkdirAll(h.root, 0o755)
	os.MkdirAll(h.logDir, 0o755)
	h.bare = filepath.Join(h.root, "index.git")
	gitIn(t, h.root, "init", "-q", "--bare", "-b", "main", h.bare)
	gitIn(t, h.bare, "config", "http.receivepack", "true")
	if h.bucket, err = fileblob.OpenBucket(h.logDir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.bucket.Close() })

	sock := filepath.Join(dir, "fcgiwrap.sock")
	started(t, dir, "fcgiwrap", "-c", "2", "-s", "unix:"+sock)
	waitFor(t, "unix", sock)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	prefix := filepath.Join(dir, "nginx")
	os.MkdirAll(filepath.Join(prefix, "logs"), 0o755)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`%[1]s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log;
events { worker_connections 256; }
http {
	access_log %[2]s/logs/access.log;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen %[3]s;
		client_max_body_size 0;
		# The index: git's own http-backend, no cairn code.
		location ~ ^/index\.git(/.*)?$ {
			fastcgi_pass unix:%[4]s;
			fastcgi_param SCRIPT_FILENAME %[5]s;
			fastcgi_param GIT_PROJECT_ROOT %[6]s;
			fastcgi_param GIT_HTTP_EXPORT_ALL "";
			fastcgi_param PATH_INFO $uri;
			fastcgi_param QUERY_STRING $query_string;
			fastcgi_param REQUEST_METHOD $request_method;
			fastcgi_param CONTENT_TYPE $content_type;
			fastcgi_param CONTENT_LENGTH $content_length;
			fastcgi_param GIT_PROTOCOL $http_git_protocol;
			fastcgi_param REMOTE_ADDR $remote_addr;
		}
		# The log and the blobs: static files.
		location /log/ { root %[7]s; }
		location /blobs/ { root %[7]s; }
	}
}
`, user, prefix, addr, sock, backend, h.root, filepath.Join(dir, "www"))
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	started(t, dir, "nginx", "-p", prefix, "-c", confFile)
	waitFor(t, "tcp", addr)
	h.gitURL, h.logURL, h.mirrorURL = "http://"+addr+"/index.git", "http://"+addr+"/log", "http://"+addr
	return h
}

// The index behind nginx: pushed, published, pulled with every blob
// verified; a bad push through nginx is refused by the client.
func TestPlainHostNginx(t *testing.T) {
	w := newWorld(t)
	h := newNginxHost(t)
	w.publishLib()
	h.push(w)
	h.publish(w)
	c := h.client(w, "nginx-client")
	p, err := Pull(w.ctx, c, "origin", Options{})
	if err != nil {
		t.Fatalf("pull through nginx: %v", err)
	}
	if head, _ := w.repo.Head(w.ctx, index.MainRef); p.Head != head || p.Main != "created" {
		t.Fatalf("pulled %+v, want head %s", p, head)
	}
	rm, _ := Get(c, "origin")
	d, _, err := c.Descriptor(w.ctx, "acme/lib", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rm.Blobs(c, nil).Open(w.ctx, d.Artifacts[0].Ref)
	if err != nil {
		t.Fatalf("the artifact through nginx: %v", err)
	}
	rc.Close()

	work := h.mallory(w)
	path := strings.Fields(gitIn(t, work, "ls-files", "packages"))[0]
	gitIn(t, work, "rm", "-q", path)
	gitIn(t, work, "commit", "-q", "-m", "gone")
	gitIn(t, work, "push", "-q", "origin", "HEAD:main")
	_, err = Pull(w.ctx, c, "origin", Options{})
	var bp *BadPushError
	var re *index.RuleError
	if !errors.As(err, &bp) || !errors.As(err, &re) || re.Rule != index.RuleAppendOnly {
		t.Fatalf("pull after a bad push through nginx: %v", err)
	}
	if head, _ := c.Head(w.ctx, Ref("origin")); head != p.Head {
		t.Fatalf("the client's copy moved to %s", head)
	}
}
