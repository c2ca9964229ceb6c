package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/witness"
	"cairn.dev/cairn/internal/witness/witnesstest"
)

// submission is one add-checkpoint request a witness was sent, and its
// answer.
type submission struct {
	old    int64 // the size the request proves from
	proof  int   // how many consistency proof hashes it carries
	size   int64 // the checkpoint's size
	status int
}

// witnessRecorder stands in front of a real witness (litewitness or
// cairn's own): it forwards every request and records each
// add-checkpoint submission with the witness's answer, or, while down is
// set, answers 503 itself.
type witnessRecorder struct {
	URL  string
	down atomic.Bool

	mu   sync.Mutex
	subs []submission
}

func recordWitness(t *testing.T, target string) *witnessRecorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &witnessRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sub := parseSubmission(body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if rec.down.Load() {
			http.Error(sw, "down for the test", http.StatusServiceUnavailable)
		} else {
			proxy.ServeHTTP(sw, r)
		}
		sub.status = sw.status
		rec.mu.Lock()
		rec.subs = append(rec.subs, sub)
		rec.mu.Unlock()
	}))
	t.Cleanup(ts.Close)
	rec.URL = ts.URL
	return rec
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// parseSubmission reads an add-checkpoint body (C2SP tlog-witness): old
// N, the proof's hashes, a blank line, the checkpoint.
func parseSubmission(body []byte) submission {
	sub := submission{old: -1, size: -1}
	sc := bufio.NewScanner(bytes.NewReader(body))
	if sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "old "); ok {
			sub.old, _ = strconv.ParseInt(n, 10, 64)
		}
	}
	for sc.Scan() && sc.Text() != "" {
		sub.proof++
	}
	if sc.Scan() && sc.Scan() { // the origin, then the size
		sub.size, _ = strconv.ParseInt(sc.Text(), 10, 64)
	}
	return sub
}

// since returns the submissions recorded after the first n.
func (rec *witnessRecorder) since(n int) []submission {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]submission(nil), rec.subs[n:]...)
}

func (rec *witnessRecorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.subs)
}

// cosignedPast polls the checkpoint f's server serves until it is of a
// tree larger than after and carries the cosignatures pol asks for
// (the server may still be waiting on a witness, and answers with the
// previous checkpoint meanwhile).
func cosignedPast(t *testing.T, f *fixture, pol witness.Policy, after int64, why func() string) (checkpoint.Checkpoint, []byte) {
	t.Helper()
	origin := checkpoint.Origin(f.repo.Config.Introduction)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := f.do("GET", "/log/checkpoint", nil, nil)
		c, err := checkpoint.Claimed(body)
		if resp.StatusCode == http.StatusOK && err == nil && c.Size > after {
			_, err := pol.Check(body, origin)
			if err == nil {
				return c, body
			}
			if time.Now().After(deadline) {
				t.Fatalf("the checkpoint of size %d served is not cosigned as wanted: %v\n%s\n%s", c.Size, err, body, why())
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("no checkpoint past size %d served: %s %v\n%s\n%s", after, resp.Status, err, body, why())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The witnesses end to end, with a witness written elsewhere: a server
// given litewitness as cairn serve --witness URL=VKEY takes it, submits
// its checkpoints to it, and serves them with litewitness's
// cosignature, which a light client trusting litewitness (quorum 1)
// accepts, and one trusting another witness refuses. When the log grows,
// litewitness cosigns the larger tree from a consistency proof from the
// size it cosigned, and the client proves it extends the one it saw.
func TestLitewitnessCosignsServedCheckpoints(t *testing.T) {
	lw := witnesstest.Start(t, "witness.example.org/lite")
	rec := recordWitness(t, lw.URL)
	wit, err := ParseWitness(rec.URL + "=" + lw.VKey)
	if err != nil {
		t.Fatalf("--witness URL=VKEY with litewitness's printed vkey: %v", err)
	}
	ck := signer(t)
	s := newServed(t, Options{CheckpointKey: ck, Witnesses: []Witness{wit}})
	origin := checkpoint.Origin(s.repo.Config.Introduction)
	lw.AddLog(t, origin, checkpoint.VKey(origin, ck.Public()))
	if _, err := author.Grant(s.ctx, s.repo, author.KeyGrant{Key: ck.Public(), Holder: "server", Scopes: []string{"checkpoint"}}, s.root); err != nil {
		t.Fatal(err)
	}
	pol, err := witness.NewPolicy([]string{lw.VKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	why := func() string { return "litewitness:\n" + lw.Logs.String() }

	publishOne(t, s.fixture, "1.0.0")
	// The checkpoint of the head with the grant and the package: one the
	// server signed at its start, of the tree before the grant, may be
	// cosigned first when litewitness learnt the log after it was
	// submitted (the server asks again in the background).
	head, err := s.repo.Head(s.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	var first checkpoint.Checkpoint
	for after := int64(0); first.Head != head; after = first.Size {
		first, _ = cosignedPast(t, s.fixture, pol, after, why)
	}
	if got := lw.Size(t, origin); got != first.Size {
		t.Fatalf("litewitness holds size %d, the checkpoint served is of %d", got, first.Size)
	}
	client := &light.Client{BaseURL: s.url, Introduction: s.repo.Config.Introduction, StateDir: t.TempDir(), Witnesses: pol}
	v, err := client.Open(s.ctx)
	if err != nil {
		t.Fatalf("a light client trusting litewitness: %v", err)
	}
	if v.Cosigned != 1 || v.Unwitnessed || v.Checkpoint.Size != first.Size {
		t.Fatalf("a light client trusting litewitness: cosigned by %d, unwitnessed %v, size %d (want 1, false, %d)", v.Cosigned, v.Unwitnessed, v.Checkpoint.Size, first.Size)
	}
	// A client that trusts another witness only is refused below quorum.
	other, err := witness.VerifierKey("witness.example.org/other", signer(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	opol, err := witness.NewPolicy([]string{other}, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&light.Client{BaseURL: s.url, Introduction: s.repo.Config.Introduction, StateDir: t.TempDir(), Witnesses: opol}).Open(s.ctx)
	var qe *witness.QuorumError
	if !errors.As(err, &qe) {
		t.Fatalf("a client trusting only a witness that did not cosign: %v, want a *witness.QuorumError", err)
	}

	n := rec.count()
	publishOne(t, s.fixture, "1.1.0")
	second, _ := cosignedPast(t, s.fixture, pol, first.Size, why)
	if got := lw.Size(t, origin); got != second.Size {
		t.Fatalf("litewitness holds size %d, the checkpoint served is of %d", got, second.Size)
	}
	// Submitted from the size litewitness cosigned, with its proof, at once.
	var ok []submission
	for _, sub := range rec.since(n) {
		if sub.status != http.StatusOK || sub.old != first.Size || sub.proof == 0 {
			t.Errorf("a submission after the log grew: %+v; want old %d with a consistency proof, answered 200", sub, first.Size)
		}
		if sub.status == http.StatusOK {
			ok = append(ok, sub)
		}
	}
	if len(ok) != 1 || ok[0].size != second.Size {
		t.Errorf("submissions cosigned after the log grew: %+v, want one of size %d", ok, second.Size)
	}
	v, err = client.Open(s.ctx)
	if err != nil {
		t.Fatalf("the light client, on the larger tree: %v", err)
	}
	if v.Cosigned != 1 || v.Checkpoint.Size != second.Size {
		t.Fatalf("the light client, on the larger tree: cosigned by %d, size %d (want 1, %d)", v.Cosigned, v.Checkpoint.Size, second.Size)
	}
}

// serveOn serves f's repository (already made) with opts on a real HTTP
// server until stop is called, and points f at it: a server process, as
// started again after a restart. Each tune runs on the server before it
// serves.
func serveOn(t *testing.T, f *fixture, opts Options, tune ...func(*Server)) (stop func()) {
	t.Helper()
	opts.Exe, _ = filepath.Abs(os.Args[0])
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := New(f.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range tune {
		fn(srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	f.srv, f.url = srv, "http://"+l.Addr().String()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			srv.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// recordedWitness runs cairn's own witness of origin (logs signed by
// vkey) behind a recorder.
func recordedWitness(t *testing.T, name, origin, vkey string) (*witnessRecorder, Witness) {
	t.Helper()
	st, err := witness.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddLog(origin, vkey); err != nil {
		t.Fatal(err)
	}
	ws, err := witness.NewServer(name, signer(t), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(ws)
	t.Cleanup(ts.Close)
	rec := recordWitness(t, ts.URL)
	return rec, Witness{URL: rec.URL, VKey: ws.VerifierKey()}
}

// A restarted server remembers the size each witness cosigned last: its
// first submission after the restart proves from that size and is
// cosigned at once, with no 409 round trip, both for a witness that
// cosigned the latest checkpoint and for one that was down then (whose
// size is not shown by the checkpoint's cosignatures). The sizes are
// kept beside the checkpoint, written as a whole file.
func TestWitnessSizesKeptAcrossRestart(t *testing.T) {
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
	origin := checkpoint.Origin(r.Config.Introduction)
	a, wa := recordedWitness(t, "a.example", origin, checkpoint.VKey(origin, ck.Public()))
	b, wb := recordedWitness(t, "b.example", origin, checkpoint.VKey(origin, ck.Public()))
	both, err := witness.NewPolicy([]string{wa.VKey, wb.VKey}, 2)
	if err != nil {
		t.Fatal(err)
	}
	onlyA, err := witness.NewPolicy([]string{wa.VKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{CheckpointKey: ck, Witnesses: []Witness{wa, wb}}
	none := func() string { return "" }

	stop := serveOn(t, f, opts)
	first, _ := cosignedPast(t, f, both, 0, none)
	b.down.Store(true)
	publishOne(t, f, "1.0.0")
	second, _ := cosignedPast(t, f, onlyA, first.Size, none)
	stop()
	kept, err := os.ReadFile(filepath.Join(r.LocalDir(), witnessSizesFile))
	if err != nil {
		t.Fatalf("the witnesses' sizes are not kept beside the checkpoint: %v", err)
	}

	b.down.Store(false)
	na, nb := a.count(), b.count()
	serveOn(t, f, opts)
	publishOne(t, f, "1.1.0")
	third, _ := cosignedPast(t, f, both, second.Size, none)
	for _, w := range []struct {
		name string
		rec  *witnessRecorder
		n    int
		old  int64
	}{{"a, which cosigned the latest", a, na, second.Size}, {"b, down for the latest", b, nb, first.Size}} {
		subs := w.rec.since(w.n)
		if len(subs) != 1 || subs[0].status != http.StatusOK || subs[0].old != w.old || subs[0].size != third.Size {
			t.Errorf("witness %s after the restart: submissions %+v; want one, from size %d (no 409 round trip), of size %d, cosigned\n(sizes kept: %s)", w.name, subs, w.old, third.Size, kept)
		}
	}
}
