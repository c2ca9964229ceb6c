package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/transport/transporttest"
)

// Attack: a server takes the connection and never answers. cairn pull,
// with --stall-timeout 500ms, gives up within the bound, names the URL
// and says how to wait longer; exit code 1.
func TestPullStallTimeoutFlag(t *testing.T) {
	t.Setenv(transport.EnvConnect, "") // restored after the flags set them
	t.Setenv(transport.EnvStall, "")
	dir := filepath.Join(t.TempDir(), "replica")
	silent := transporttest.Silent(t)
	call := func(ctx context.Context, args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, errb.String()
	}
	intro := strings.Repeat("ab", 32)
	if code, stderr := call(context.Background(), "remote", "add", "origin", silent, "--introduction", intro, "--repo", dir); code != exitOK {
		t.Fatalf("remote add: %d: %s", code, stderr)
	}
	var code int
	var stderr string
	transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		code, stderr = call(ctx, "pull", "origin", "--repo", dir, "--stall-timeout", "500ms", "--connect-timeout", "500ms")
		return nil
	})
	if code != exitError || !strings.Contains(stderr, "cairn: error: ") || !strings.Contains(stderr, silent+"/api/v1/checkpoint") ||
		!strings.Contains(stderr, "no response headers within 500ms") || !strings.Contains(stderr, "cairn: hint: the server named did not connect or stopped sending") {
		t.Fatalf("pull from a silent server: exit %d:\n%s", code, stderr)
	}
}

// A bound that is not a positive duration is a usage error, from a flag
// or from the environment.
func TestTimeoutFlagsRefuseBadValues(t *testing.T) {
	t.Setenv(transport.EnvConnect, "")
	t.Setenv(transport.EnvStall, "")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"verify", "--stall-timeout", "0s"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--stall-timeout 0s: want a positive duration") {
		t.Fatalf("--stall-timeout 0s: exit %d: %s", code, errb.String())
	}
	t.Setenv(transport.EnvConnect, "ten")
	errb.Reset()
	if code := run(context.Background(), []string{"verify"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), `CAIRN_CONNECT_TIMEOUT="ten"`) {
		t.Fatalf("CAIRN_CONNECT_TIMEOUT=ten: exit %d: %s", code, errb.String())
	}
}
