package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/transport/transporttest"
)

var small = transport.Timeouts{Connect: 500 * time.Millisecond, Stall: 500 * time.Millisecond, LowSpeed: transport.DefaultLowSpeed}

// A server that holds its headers past the stall bound is cut, unless
// the request is a long poll that allows for it (WithHeaderWait).
func TestHeaderWait(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(900 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "moved")
	}))
	defer s.Close()
	c := transport.NewClient(small)
	get := func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/head", nil)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	err := transporttest.Within(t, 10*time.Second, func(ctx context.Context) error { _, err := get(ctx); return err })
	var se *transport.StallError
	if !errors.As(err, &se) || se.Phase != "response headers" || !strings.Contains(err.Error(), s.URL+"/head") {
		t.Fatalf("headers after 900ms with a 500ms bound: %v, want a header stall naming the URL", err)
	}
	err = transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		got, err := get(transport.WithHeaderWait(ctx, time.Second))
		if err == nil && got != "moved" {
			t.Errorf("long poll answered %q", got)
		}
		return err
	})
	if err != nil {
		t.Fatalf("a long poll of 1s answered after 900ms: %v", err)
	}
}

// Only waiting on the peer counts: a caller that reads a byte every
// 600 ms, and an upload whose source gives a byte every 600 ms, are not
// stalls, though each moves less than 10 bytes/s.
func TestSlowSelfNotCut(t *testing.T) {
	data := []byte("xyz")
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			got, err := io.ReadAll(r.Body)
			if err != nil || !bytes.Equal(got, data) {
				http.Error(w, "bad upload", http.StatusBadRequest)
				return
			}
		}
		w.Write(data)
	}))
	defer s.Close()
	c := transport.NewClient(small)
	err := transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		resp, err := c.Get(s.URL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		buf := make([]byte, 1)
		var got []byte
		for {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			time.Sleep(600 * time.Millisecond) // the caller is slow, the server is not
		}
		if !bytes.Equal(got, data) {
			t.Errorf("read %d bytes, want %d", len(got), len(data))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a slow reader: %v", err)
	}
	err = transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, s.URL, &slowSource{data: data, pause: 600 * time.Millisecond})
		req.ContentLength = int64(len(data))
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("upload: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("an upload from a slow source: %v", err)
	}
}

// slowSource gives a byte per Read, each after a pause.
type slowSource struct {
	data  []byte
	pause time.Duration
}

func (s *slowSource) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p[:1], s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestFromEnv(t *testing.T) {
	t.Setenv(transport.EnvConnect, "")
	t.Setenv(transport.EnvStall, "")
	if got, err := transport.FromEnv(); err != nil || got != transport.Defaults() {
		t.Fatalf("unset: %+v, %v; want the defaults", got, err)
	}
	t.Setenv(transport.EnvConnect, "2s")
	t.Setenv(transport.EnvStall, "1m")
	if got, err := transport.FromEnv(); err != nil || got.Connect != 2*time.Second || got.Stall != time.Minute {
		t.Fatalf("2s, 1m: %+v, %v", got, err)
	}
	for _, bad := range []string{"30", "-1s", "0s", "soon"} {
		t.Setenv(transport.EnvStall, bad)
		if _, err := transport.FromEnv(); err == nil || !strings.Contains(err.Error(), transport.EnvStall+"=") {
			t.Errorf("%s=%q: err = %v, want one naming the variable", transport.EnvStall, bad, err)
		}
		if got := transport.Current(); got.Stall != transport.DefaultStall {
			t.Errorf("Current with %q: stall %v, want the default", bad, got.Stall)
		}
	}
}

func TestGitConfig(t *testing.T) {
	got := transport.GitConfig(transport.Timeouts{Stall: 1500 * time.Millisecond, LowSpeed: 10})
	// One byte a second, not LowSpeed: a server's keepalives are progress.
	want := []string{"-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=2"}
	if !slices.Equal(got, want) {
		t.Fatalf("GitConfig = %q, want %q", got, want)
	}
}
