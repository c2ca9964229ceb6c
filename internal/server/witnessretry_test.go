package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/witness"
)

// flakyWitness stands in front of a witness (target): plan decides, for
// its n-th add-checkpoint request (from 0, of a checkpoint of size),
// whether it answers itself (true) or forwards the request. It records
// each request's checkpoint size.
type flakyWitness struct {
	URL string

	mu    sync.Mutex
	sizes []int64
}

func newFlakyWitness(t *testing.T, target string, plan func(n int, size int64, w http.ResponseWriter, r *http.Request) bool) *flakyWitness {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	fw := &flakyWitness{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		size := parseSubmission(body).size
		fw.mu.Lock()
		n := len(fw.sizes)
		fw.sizes = append(fw.sizes, size)
		fw.mu.Unlock()
		if !plan(n, size, w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	fw.URL = ts.URL
	return fw
}

// asked returns the sizes of the checkpoints the witness was asked to
// cosign, in order.
func (fw *flakyWitness) asked() []int64 {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return append([]int64(nil), fw.sizes...)
}

// retryFixture makes an index with alice granted to publish, and the
// checkpoint key ck granted nothing yet (the witnesses check the
// checkpoint's signature by its vkey only).
func retryFixture(t *testing.T) (*fixture, keys.Signer, string) {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, root: signer(t), alice: signer(t)}
	r, _, err := index.Init(ctx, filepath.Join(t.TempDir(), "repo"), []keys.Signer{f.root}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.repo = r
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: f.alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, f.root); err != nil {
		t.Fatal(err)
	}
	ck := signer(t)
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, f.root); err != nil {
		t.Fatal(err)
	}
	return f, ck, checkpoint.Origin(r.Config.Introduction)
}

// quick makes the server's witness timeout and backoff short for a test.
func quick(timeout, first time.Duration) func(*Server) {
	return func(s *Server) {
		s.ckpt.timeout, s.ckpt.retryFirst, s.ckpt.retryMax = timeout, first, 4*first
	}
}

// A witness that did not cosign in the submission round is asked again in
// the background: one (cairn's own witness) that answers 503 Retry-After:
// 1 twice, and one that stalls past the timeout once, both end up
// cosigning the checkpoint served, with no new publish and no new
// signature (the note served first is a prefix of the one served after),
// kept durably in the state directory and the log's tiles; a witness that
// refuses with 422 is asked once per checkpoint, not again.
func TestWitnessAskedAgainUntilItCosigns(t *testing.T) {
	f, ck, origin := retryFixture(t)
	vkey := checkpoint.VKey(origin, ck.Public())
	_, wa := recordedWitness(t, "a.example", origin, vkey)
	_, wb := recordedWitness(t, "b.example", origin, vkey)
	_, wc := recordedWitness(t, "c.example", origin, vkey)
	a := newFlakyWitness(t, wa.URL, func(n int, _ int64, w http.ResponseWriter, _ *http.Request) bool {
		if n < 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "cannot tell yet", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	b := newFlakyWitness(t, wb.URL, func(n int, _ int64, _ http.ResponseWriter, r *http.Request) bool {
		if n == 0 {
			<-r.Context().Done() // past the server's timeout
			return true
		}
		return false
	})
	c := newFlakyWitness(t, wc.URL, func(_ int, _ int64, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "the log's history does not give this tree", http.StatusUnprocessableEntity)
		return true
	})
	wa.URL, wb.URL, wc.URL = a.URL, b.URL, c.URL
	pa, _ := witness.NewPolicy([]string{wa.VKey}, 1)
	pb, _ := witness.NewPolicy([]string{wb.VKey}, 1)
	both, err := witness.NewPolicy([]string{wa.VKey, wb.VKey}, 2)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, f, Options{CheckpointKey: ck, Witnesses: []Witness{wa, wb, wc}}, quick(500*time.Millisecond, 300*time.Millisecond))
	start := time.Now()

	resp, first := f.do("GET", "/log/checkpoint", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /log/checkpoint: %s\n%s", resp.Status, first)
	}
	if _, err := pa.Check(first, origin); err == nil {
		t.Fatalf("the first checkpoint served carries a's cosignature, though a answered 503:\n%s", first)
	}
	if _, err := pb.Check(first, origin); err == nil {
		t.Fatalf("the first checkpoint served carries b's cosignature, though b stalled:\n%s", first)
	}
	c1, err := checkpoint.Claimed(first)
	if err != nil {
		t.Fatal(err)
	}

	c2, later := cosignedPast(t, f, both, 0, func() string { return "" })
	if c2 != c1 || !bytes.HasPrefix(later, first) {
		t.Fatalf("the checkpoint gained its cosignatures as another one (signed again?):\nfirst:\n%s\nlater:\n%s", first, later)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("a's cosignature after %v: its Retry-After: 1, twice, was not honoured", took)
	}
	for _, p := range []string{filepath.Join(f.repo.LocalDir(), "checkpoint"), filepath.Join(f.repo.Main().LogDir(), "checkpoint")} {
		kept, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(kept, later) {
			t.Errorf("%s holds (%v):\n%s\nwant the cosigned checkpoint served:\n%s", p, err, kept, later)
		}
	}
	sizes, err := os.ReadFile(filepath.Join(f.repo.LocalDir(), witnessSizesFile))
	if err != nil || !strings.Contains(string(sizes), wa.VKey) || !strings.Contains(string(sizes), wb.VKey) {
		t.Errorf("the witnesses' sizes kept (%v):\n%s\nwant a's and b's", err, sizes)
	}
	if got := a.asked(); len(got) != 3 {
		t.Errorf("a was asked %d times (%v), want 3: 503, 503, cosigned", len(got), got)
	}
	if got := b.asked(); len(got) != 2 {
		t.Errorf("b was asked %d times (%v), want 2: stalled, cosigned", len(got), got)
	}
	time.Sleep(time.Second) // room for a retry that should not come
	if got := c.asked(); len(got) != 1 || got[0] != c1.Size {
		t.Errorf("the witness answering 422 was asked about sizes %v, want once, about %d", got, c1.Size)
	}

	// The next checkpoint asks it again, once.
	publishOne(t, f, "1.0.0")
	c3, _ := cosignedPast(t, f, both, c1.Size, func() string { return "" })
	time.Sleep(time.Second)
	if got := c.asked(); len(got) != 2 || got[1] != c3.Size {
		t.Errorf("the witness answering 422 was asked about sizes %v, want %d then %d", got, c1.Size, c3.Size)
	}
}

// The retries of a checkpoint end when a newer one is signed (the
// witness is asked about the newer one only) and when the server shuts
// down: stop returns at once although a witness is still failing, and no
// request reaches the witness afterwards.
func TestWitnessRetriesEnd(t *testing.T) {
	f, ck, origin := retryFixture(t)
	_, wd := recordedWitness(t, "d.example", origin, checkpoint.VKey(origin, ck.Public()))
	d := newFlakyWitness(t, wd.URL, func(_ int, _ int64, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "cannot tell yet", http.StatusServiceUnavailable)
		return true
	})
	wd.URL = d.URL
	stop := serveOn(t, f, Options{CheckpointKey: ck, Witnesses: []Witness{wd}}, quick(time.Second, 100*time.Millisecond))
	waitAsked := func(size int64, n int) []int64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := d.asked()
			k := 0
			for _, s := range got {
				if s == size {
					k++
				}
			}
			if k >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("the failing witness was asked about sizes %v: want %d tries of size %d", got, n, size)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	resp, body := f.do("GET", "/log/checkpoint", nil, nil)
	c1, err := checkpoint.Claimed(body)
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /log/checkpoint: %s %v\n%s", resp.Status, err, body)
	}
	waitAsked(c1.Size, 3)

	publishOne(t, f, "1.0.0")
	resp, body = f.do("GET", "/log/checkpoint", nil, nil)
	c2, err := checkpoint.Claimed(body)
	if resp.StatusCode != http.StatusOK || err != nil || c2.Size <= c1.Size {
		t.Fatalf("GET /log/checkpoint after a publish: %s %v\n%s", resp.Status, err, body)
	}
	got := waitAsked(c2.Size, 3)
	var firstNew int
	for i, s := range got {
		if s == c2.Size {
			firstNew = i
			break
		}
	}
	for _, s := range got[firstNew+1:] {
		if s != c2.Size {
			t.Fatalf("the witness was asked about sizes %v: the checkpoint of %d still retried after the one of %d was signed", got, c1.Size, c2.Size)
		}
	}

	begun := time.Now()
	stop()
	if took := time.Since(begun); took > 3*time.Second {
		t.Errorf("shutting down took %v with a witness being retried", took)
	}
	n := len(d.asked())
	time.Sleep(time.Second)
	if after := d.asked(); len(after) != n {
		t.Errorf("the witness was asked %d more times after the server shut down", len(after)-n)
	}
}

// Which failures are asked again: a witness that could not be reached,
// timed out, or answered 5xx or 429 (with its Retry-After); not a 409 (a
// witness at another size or tree, which Cosign already answered), nor a
// 422, 403, 404 or 400 refusal, nor an answer that is not a cosignature.
func TestRetryable(t *testing.T) {
	netErr := &url.Error{Op: "Post", URL: "http://w.example/add-checkpoint", Err: io.ErrUnexpectedEOF}
	for _, tc := range []struct {
		err   error
		again bool
		wait  time.Duration
	}{
		{&witness.ResponseError{Status: 503, RetryAfter: 7 * time.Second}, true, 7 * time.Second},
		{&witness.ResponseError{Status: 503}, true, 0},
		{&witness.ResponseError{Status: 502}, true, 0},
		{&witness.ResponseError{Status: 429, RetryAfter: time.Second}, true, time.Second},
		{fmt.Errorf("witness w: add-checkpoint: %w", netErr), true, 0},
		{fmt.Errorf("witness w: reading its answer: %w", context.DeadlineExceeded), true, 0},
		{&witness.ResponseError{Status: 422, Err: witness.ErrBadProof}, false, 0},
		{&witness.ResponseError{Status: 403, Err: witness.ErrUnknownKey}, false, 0},
		{&witness.ResponseError{Status: 404, Err: witness.ErrUnknownLog}, false, 0},
		{&witness.ResponseError{Status: 400, Err: witness.ErrMalformed}, false, 0},
		{&witness.ConflictError{URL: "w", Known: 9}, false, 0},
		{fmt.Errorf("witness w: its answer holds no valid cosignature by its key"), false, 0},
	} {
		again, wait := retryable(tc.err)
		if again != tc.again || wait != tc.wait {
			t.Errorf("retryable(%v) = %v, %v; want %v, %v", tc.err, again, wait, tc.again, tc.wait)
		}
	}
}

// A restarted server resumes the retries of the witnesses that had not
// cosigned the checkpoint it loads: a witness that answers 503 until the
// server restarts, then accepts, ends up cosigning that checkpoint (the
// same one: the interval has not passed, nothing is signed again) with
// no new publish and no client asking (before: the restarted server
// served it as it was, the witness's cosignature missing until the next
// checkpoint, up to an interval later).
func TestWitnessRetriesResumeAfterRestart(t *testing.T) {
	f, ck, origin := retryFixture(t)
	_, wa := recordedWitness(t, "a.example", origin, checkpoint.VKey(origin, ck.Public()))
	var accept atomic.Bool
	a := newFlakyWitness(t, wa.URL, func(_ int, _ int64, w http.ResponseWriter, _ *http.Request) bool {
		if accept.Load() {
			return false
		}
		w.Header().Set("Retry-After", "0")
		http.Error(w, "cannot tell yet", http.StatusServiceUnavailable)
		return true
	})
	wa.URL = a.URL
	pa, err := witness.NewPolicy([]string{wa.VKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{CheckpointKey: ck, Witnesses: []Witness{wa}, CheckpointInterval: time.Hour}
	stop := serveOn(t, f, opts, quick(500*time.Millisecond, 100*time.Millisecond))
	resp, first := f.do("GET", "/log/checkpoint", nil, nil)
	c1, err := checkpoint.Claimed(first)
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /log/checkpoint: %s %v\n%s", resp.Status, err, first)
	}
	for deadline := time.Now().Add(10 * time.Second); len(a.asked()) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the witness was asked about sizes %v: want 3 tries", a.asked())
		}
	}
	stop()
	n := len(a.asked())

	accept.Store(true)
	serveOn(t, f, opts, quick(500*time.Millisecond, 100*time.Millisecond))
	c2, later := cosignedPast(t, f, pa, 0, func() string {
		return fmt.Sprintf("the witness was asked about sizes %v after the restart", a.asked()[n:])
	})
	if c2 != c1 || !bytes.HasPrefix(later, first) {
		t.Fatalf("the checkpoint gained its cosignature as another one (signed again?):\nfirst:\n%s\nlater:\n%s", first, later)
	}
	kept, err := os.ReadFile(filepath.Join(f.repo.LocalDir(), "checkpoint"))
	if err != nil || !bytes.Equal(kept, later) {
		t.Errorf("the checkpoint kept (%v):\n%s\nwant the cosigned one served:\n%s", err, kept, later)
	}
}
