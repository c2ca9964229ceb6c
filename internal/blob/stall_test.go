package blob_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/transport/transporttest"
)

// bounds sets the test's small bounds in the environment, where every
// client that is given no other reads them.
func bounds(t *testing.T) {
	t.Setenv(transport.EnvConnect, "500ms")
	t.Setenv(transport.EnvStall, "500ms")
}

func trickler(t *testing.T, body []byte) string {
	s := httptest.NewServer(transporttest.Trickle(transporttest.Bytes(body), 200*time.Millisecond, func(*http.Request) bool { return true }))
	t.Cleanup(s.Close)
	return s.URL
}

// Attack: a mirror trickles a byte every 200 ms. It is cut once a stall
// window (500 ms here) moves less than the low-speed limit, the next
// mirror is tried and gives the blob, and the stalled mirror's URL is
// named in what the chain reports.
func TestChainCutsTricklingMirror(t *testing.T) {
	bounds(t)
	good := bytes.Repeat([]byte("the real artifact "), 64)
	ref := blob.DigestBytes(good)
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	slow := trickler(t, good)
	var heard []error
	c := &blob.Chain{
		Local:         local,
		Mirrors:       []blob.Store{&blob.HTTP{URL: slow}, &blob.HTTP{URL: mirror(t, good)}},
		OnMirrorError: func(_ int, _ blob.Ref, err error) { heard = append(heard, err) },
	}
	err = transporttest.Within(t, 10*time.Second, func(ctx context.Context) error { return c.Fetch(ctx, ref) })
	if err != nil {
		t.Fatalf("fetch: %v, want the blob from the second mirror", err)
	}
	if len(heard) != 1 || !errors.Is(heard[0], transport.ErrTimeout) || !strings.Contains(heard[0].Error(), slow+"/blobs/sha256/") ||
		!strings.Contains(heard[0].Error(), "stalled after") || !strings.Contains(heard[0].Error(), "500ms") {
		t.Fatalf("mirror errors = %v, want one stall naming %s and the 500ms bound", heard, slow)
	}
	if ok, _ := local.Stat(context.Background(), ref); !ok {
		t.Fatal("the blob is not in the local store")
	}
}

// Attack: every mirror stalls (one trickles, one never answers headers,
// one never accepts the connection). The fetch fails within the bounds,
// and its error names each mirror's URL and why it failed.
func TestChainAllMirrorsStall(t *testing.T) {
	bounds(t)
	good := bytes.Repeat([]byte("the real artifact "), 64)
	ref := blob.DigestBytes(good)
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	slow, silent, unaccepting := trickler(t, good), transporttest.Silent(t), transporttest.Unaccepting(t)
	c := &blob.Chain{Local: local, Mirrors: []blob.Store{&blob.HTTP{URL: slow}, &blob.HTTP{URL: silent}, &blob.HTTP{URL: unaccepting}}}
	err = transporttest.Within(t, 10*time.Second, func(ctx context.Context) error { return c.Fetch(ctx, ref) })
	var fe *blob.FetchError
	if !errors.As(err, &fe) || !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("fetch: %v, want a *FetchError of timeouts", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
	msg := err.Error()
	for _, want := range []string{
		"source 1 (" + slow + "):", "the response body stalled after",
		"source 2 (" + silent + "):", "no response headers within 500ms",
		"source 3 (" + unaccepting + "):", "no connection within 500ms",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if ok, _ := local.Stat(context.Background(), ref); ok {
		t.Fatal("a blob no mirror gave is in the local store")
	}
}

// Attack: a batch stream that trickles is cut, naming the server, and
// nothing half-received is stored.
func TestBatchStalls(t *testing.T) {
	bounds(t)
	good := []byte("the real artifact")
	ref := blob.DigestBytes(good)
	stream := append([]byte("sha256:"+ref.SHA256+" 17\n"), good...)
	slow := trickler(t, stream)
	local, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	err = transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		_, err := (&blob.HTTP{URL: slow}).Batch(ctx, []blob.Ref{ref}, local)
		return err
	})
	var se *transport.StallError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "POST "+slow+"/blobs/batch") {
		t.Fatalf("batch: %v, want a *StallError naming POST %s/blobs/batch", err, slow)
	}
	if ok, _ := local.Stat(context.Background(), ref); ok {
		t.Fatal("a blob from a stalled batch is in the local store")
	}
}

// Attack: a server that takes an upload's connection and never reads it
// is cut at the stall bound.
func TestPutStalls(t *testing.T) {
	bounds(t)
	data := bytes.Repeat([]byte{7}, 64<<20)
	ref := blob.DigestBytes(data)
	deaf := transporttest.Deaf(t)
	h := &blob.HTTP{URL: deaf, Signer: newTestSigner(t)}
	err := transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		return h.Put(ctx, ref, bytes.NewReader(data))
	})
	if !errors.Is(err, transport.ErrTimeout) || !strings.Contains(err.Error(), deaf+"/blobs/sha256/") ||
		!strings.Contains(err.Error(), "request body stalled") {
		t.Fatalf("put: %v, want a stall of the request body naming %s", err, deaf)
	}
}

// A slow but live link is not cut: a blob that takes longer than several
// stall windows arrives, since each window moves more than the
// low-speed limit.
func TestSlowLiveLinkNotCut(t *testing.T) {
	bounds(t)
	good := bytes.Repeat([]byte("x"), 16<<10)
	ref := blob.DigestBytes(good)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "16384")
		rc := http.NewResponseController(w)
		for i := 0; i < 16; i++ {
			w.Write(good[i<<10 : (i+1)<<10])
			rc.Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	defer s.Close()
	var got []byte
	err := transporttest.Within(t, 10*time.Second, func(ctx context.Context) error {
		rc, err := (&blob.HTTP{URL: s.URL}).Open(ctx, ref)
		if err != nil {
			return err
		}
		defer rc.Close()
		got, err = io.ReadAll(rc)
		return err
	})
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("a 1.6 s transfer over a live link: %d bytes, %v; want it whole", len(got), err)
	}
}

// A mirror that answers 404 is not a timeout: the chain says no mirror
// has it, as before.
func TestChainNotFoundIsNotTimeout(t *testing.T) {
	bounds(t)
	s := httptest.NewServer(http.NotFoundHandler())
	defer s.Close()
	local, _ := blob.NewFS(t.TempDir())
	c := &blob.Chain{Local: local, Mirrors: []blob.Store{&blob.HTTP{URL: s.URL}}}
	err := c.Fetch(context.Background(), blob.DigestBytes([]byte("x")))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("fetch: %v, want not found and no timeout", err)
	}
}

func newTestSigner(t *testing.T) blob.Signer {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return keySigner{keys.NewSigner(priv)}
}

// keySigner adapts a keys.Signer to blob.Signer, as blob's callers do.
type keySigner struct{ keys.Signer }

func (k keySigner) KeyID() string { return keys.ID(k.Public()) }
