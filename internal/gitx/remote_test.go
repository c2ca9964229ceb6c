package gitx

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/transport/transporttest"
)

// served serves a bare repository with one commit over git's smart HTTP
// (git http-backend), trickling every response a byte per 1.5 s when
// slow (under git's low-speed limit of a byte a second, which a server's
// keepalives meet); it returns the repository's URL.
func served(t *testing.T, slow bool) string {
	t.Helper()
	root := t.TempDir()
	r, err := InitBare(filepath.Join(root, "r.git"))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	head := commitFiles(t, r, rd, "", "a", "b")
	if err := r.UpdateRef(context.Background(), "refs/heads/main", head, "", "test"); err != nil {
		t.Fatal(err)
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = &cgi.Handler{Path: git, Args: []string{"http-backend"}, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	if slow {
		h = transporttest.Trickle(h, 1500*time.Millisecond, func(*http.Request) bool { return true })
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL + "/r.git"
}

func bounds(t *testing.T) {
	t.Setenv(transport.EnvConnect, "500ms")
	t.Setenv(transport.EnvStall, "500ms")
}

func lsRemote(t *testing.T, url string) ([]byte, error) {
	r, err := InitBare(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	err = transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		out, err = r.run(ctx, nil, "-c", "protocol.version=2", "ls-remote", url)
		return err
	})
	return out, err
}

// The bounds do not get in the way of a server that answers.
func TestLsRemoteServed(t *testing.T) {
	bounds(t)
	url := served(t, false)
	out, err := lsRemote(t, url)
	if err != nil || !strings.Contains(string(out), "refs/heads/main") {
		t.Fatalf("ls-remote %s: %q, %v; want refs/heads/main", url, out, err)
	}
}

// Attack: the server trickles its answer a byte per 1.5 s. git's
// low-speed limit cuts it within the bound; the error names the URL.
func TestFetchTrickleCut(t *testing.T) {
	bounds(t)
	url := served(t, true)
	r, err := InitBare(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	err = transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		_, err := r.run(ctx, nil, "fetch", "--quiet", url, "+refs/heads/main:refs/heads/main")
		return err
	})
	var se *transport.StallError
	if !errors.As(err, &se) || se.URL != url || !strings.Contains(err.Error(), url+": the transfer stalled: less than 1 bytes/s for 1s") {
		t.Fatalf("fetch: %v, want a *StallError naming %s", err, url)
	}
}

// Attack: the server takes the connection and never answers.
func TestLsRemoteSilentCut(t *testing.T) {
	bounds(t)
	url := transporttest.Silent(t) + "/r.git"
	_, err := lsRemote(t, url)
	if !errors.Is(err, transport.ErrTimeout) || !strings.Contains(err.Error(), url) {
		t.Fatalf("ls-remote: %v, want a timeout naming %s", err, url)
	}
}

// Attack: the host never accepts the connection (git alone would wait
// for curl's 300 s connect timeout).
func TestLsRemoteConnectTimeout(t *testing.T) {
	bounds(t)
	url := transporttest.Unaccepting(t) + "/r.git"
	_, err := lsRemote(t, url)
	var ce *transport.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "ls-remote "+url) || !strings.Contains(err.Error(), "no connection within 500ms") {
		t.Fatalf("ls-remote: %v, want a *ConnectError naming %s", err, url)
	}
}

func TestRemoteOf(t *testing.T) {
	for _, c := range []struct {
		args      []string
		verb, url string
	}{
		{[]string{"-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "https://h/i.git", "+a:b"}, "fetch", "https://h/i.git"},
		{[]string{"push", "--porcelain", "http://h:8080/index.git", "x:y"}, "push", "http://h:8080/index.git"},
		{[]string{"fetch", "-q", "/some/dir", "main:main"}, "fetch", ""},
		{[]string{"-c"}, "", ""},
		{[]string{"cat-file", "--batch"}, "cat-file", ""},
	} {
		verb, url := remoteOf(c.args)
		if verb != c.verb || url != c.url {
			t.Errorf("remoteOf(%q) = %q, %q; want %q, %q", c.args, verb, url, c.verb, c.url)
		}
	}
}
