package blob_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob"

	"cairn.dev/cairn/internal/blob"
)

// A mirror's URL comes from a cairn.yaml (a project someone else wrote)
// or a remote's --mirror. Reading a file:// mirror never changes the
// machine: with ?create_dir=true it would make any directory the URL
// names (mkdir -p, as the user running cairn).
func TestFileMirrorCreatesNoDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "made", "by", "a", "cairn.yaml")
	for _, u := range []string{"file://" + dir + "?create_dir=true", "file://" + dir + "?dir_file_mode=0777&create_dir=1"} {
		m := blob.Mirror(u, nil)
		ref := blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 1}
		_, err := m.Stat(context.Background(), ref)
		if _, serr := os.Stat(dir); serr == nil {
			t.Fatalf("reading the mirror %s created %s", u, dir)
		}
		if !errors.Is(err, blob.ErrMirrorUnsafe) || !strings.Contains(err.Error(), "create_dir=") && !strings.Contains(err.Error(), "dir_file_mode=") {
			t.Errorf("reading the mirror %s: %v; want ErrMirrorUnsafe naming the parameter", u, err)
		}
		if err := blob.CheckMirror(u); !errors.Is(err, blob.ErrMirrorUnsafe) {
			t.Errorf("CheckMirror(%s) = %v; want ErrMirrorUnsafe", u, err)
		}
	}
	// Reading a directory that is there is fine.
	if err := blob.CheckMirror("file://" + t.TempDir()); err != nil {
		t.Errorf("a plain file:// mirror: %v", err)
	}
}

// An S3 mirror whose endpoint is plain http on another machine would get
// the user's access key id and session token in clear: it is refused
// before any request, unless read anonymously.
func TestS3MirrorPlainHTTPEndpointRefused(t *testing.T) {
	ip := nonLoopback(t)
	var mu sync.Mutex
	var heard []string
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	attacker := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		heard = append(heard, r.Header.Get("Authorization")+" "+r.Header.Get("X-Amz-Security-Token"))
		mu.Unlock()
		http.NotFound(w, r)
	})}}
	attacker.Start()
	defer attacker.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTHEUSERS")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "THEUSERSTOKEN")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ref := blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 1}
	for _, u := range []string{
		"s3://x?region=us-east-1&endpoint=" + attacker.URL + "&use_path_style=true",
		"s3://x?region=us-east-1&endpoint=" + strings.TrimPrefix(attacker.URL, "http://") + "&disable_https=true&use_path_style=true",
	} {
		_, err := blob.Mirror(u, nil).Stat(context.Background(), ref)
		if !errors.Is(err, blob.ErrMirrorUnsafe) || !strings.Contains(err.Error(), "anonymous=true") {
			t.Errorf("reading the mirror %s: %v; want ErrMirrorUnsafe with a hint", u, err)
		}
		if err := blob.CheckMirror(u); !errors.Is(err, blob.ErrMirrorUnsafe) {
			t.Errorf("CheckMirror(%s) = %v; want ErrMirrorUnsafe", u, err)
		}
	}
	mu.Lock()
	for _, h := range heard {
		if strings.Contains(h, "AKIDTHEUSERS") || strings.Contains(h, "THEUSERSTOKEN") {
			t.Errorf("the mirror's endpoint got the user's credentials: %s", h)
		}
	}
	mu.Unlock()
	// Anonymously, or on this machine, or over https: allowed.
	for _, u := range []string{
		"s3://x?region=us-east-1&endpoint=" + attacker.URL + "&anonymous=true",
		"s3://x?region=us-east-1&endpoint=http://127.0.0.1:9000",
		"s3://x?region=us-east-1&endpoint=http://localhost:9000",
		"s3://x?region=us-east-1&endpoint=https://" + ip,
		"s3://x?region=us-east-1",
	} {
		if err := blob.CheckMirror(u); err != nil {
			t.Errorf("CheckMirror(%s) = %v; want nil", u, err)
		}
	}
}

// nonLoopback returns an address of this machine that is not loopback,
// where the test's "other machine" listens.
func nonLoopback(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no address but loopback")
	return ""
}
