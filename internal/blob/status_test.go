package blob

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/keys"
)

// A server's answers other than success reach the caller as a
// *StatusError of the right family: 404 is fs.ErrNotExist, 403 is
// ErrRefused, 429 and 503 are ErrBusy with the server's Retry-After (in
// seconds or as a date), for GET, HEAD and PUT alike.
func TestStatusErrors(t *testing.T) {
	var code int
	var after string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if after != "" {
			w.Header().Set("Retry-After", after)
		}
		http.Error(w, "said the server", code)
	}))
	defer ts.Close()
	ctx := context.Background()
	h := &HTTP{URL: ts.URL, Signer: edSigner{testKey(t)}}
	ref := DigestBytes([]byte("x"))
	calls := map[string]func() error{
		"GET":  func() error { _, err := h.Open(ctx, ref); return err },
		"HEAD": func() error { _, err := h.Stat(ctx, ref); return err },
		"PUT":  func() error { return h.Put(ctx, ref, bytes.NewReader([]byte("x"))) },
	}
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, c := range []struct {
		code   int
		after  string
		family error
		wait   time.Duration // 0: any
	}{
		{http.StatusForbidden, "", ErrRefused, 0},
		{http.StatusServiceUnavailable, "7", ErrBusy, 7 * time.Second},
		{http.StatusTooManyRequests, date, ErrBusy, 90 * time.Second},
		{http.StatusServiceUnavailable, "soon", ErrBusy, 0},
		{http.StatusInternalServerError, "3", nil, 0},
	} {
		code, after = c.code, c.after
		for method, call := range calls {
			err := call()
			var se *StatusError
			if !errors.As(err, &se) || se.Code != c.code || se.Method != method {
				t.Fatalf("%s answered %d: err = %v, want a *StatusError for %s %d", method, c.code, err, method, c.code)
			}
			if c.family != nil && !errors.Is(err, c.family) {
				t.Errorf("%s answered %d: %v is not %v", method, c.code, err, c.family)
			}
			ra, busy := Busy(err)
			if busy != (c.family == ErrBusy) {
				t.Errorf("%s answered %d: Busy = %v", method, c.code, busy)
			}
			switch {
			case c.family == ErrBusy && c.wait > 0 && (ra < c.wait-2*time.Second || ra > c.wait):
				t.Errorf("%s answered %d with Retry-After %q: Busy says wait %s, want about %s", method, c.code, c.after, ra, c.wait)
			case c.family == ErrBusy && c.wait == 0 && ra != 0:
				t.Errorf("Retry-After %q read as %s, want 0", c.after, ra)
			}
			if method != "HEAD" && !strings.Contains(err.Error(), "said the server") {
				t.Errorf("%s answered %d: %v does not say what the server said", method, c.code, err)
			}
		}
	}
	// 404: not there (HEAD's answer is false, no error).
	code, after = http.StatusNotFound, ""
	if _, err := h.Open(ctx, ref); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GET answered 404: %v, want fs.ErrNotExist", err)
	}
	if ok, err := h.Stat(ctx, ref); ok || err != nil {
		t.Fatalf("HEAD answered 404: %v, %v; want false, nil", ok, err)
	}
}

func testKey(t *testing.T) ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// edSigner is a Signer over a bare ed25519 key, as any caller may make one:
// blob needs nothing of package keys but the fingerprint's format.
type edSigner struct{ priv ed25519.PrivateKey }

func (s edSigner) KeyID() string                   { return keys.ID(s.priv.Public().(ed25519.PublicKey)) }
func (s edSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }
