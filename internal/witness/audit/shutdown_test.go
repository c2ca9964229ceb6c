package audit_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/witness"
	"cairn.dev/cairn/internal/witness/audit"
)

// stuckWitness is an auditing witness of w's log whose index server
// accepts connections and never answers: every pull hangs until the
// test ends.
type stuckWitness struct {
	url     string
	auditor *audit.Auditor
	// asked gets a value when the stuck server is first asked.
	asked chan struct{}
}

func startStuckWitness(t *testing.T, w *indextest.World) *stuckWitness {
	t.Helper()
	release := make(chan struct{})
	asked := make(chan struct{})
	var once sync.Once
	hang := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(asked) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // before hang.Close: cleanups run last first

	origin := checkpoint.Origin(w.Intro)
	dir := t.TempDir()
	st, err := witness.OpenState(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddLog(origin, checkpoint.VKey(origin, w.Checkpointer.Public())); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetAudit(origin, hang.URL); err != nil {
		t.Fatal(err)
	}
	ws, err := witness.NewServer("w.example", indextest.NewSigner(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a := audit.New(filepath.Join(dir, "state", "audit"))
	t.Cleanup(func() { a.Close() })
	ws.SetAuditor(a)
	ts := httptest.NewServer(ws)
	t.Cleanup(ts.Close)
	return &stuckWitness{url: ts.URL, auditor: a, asked: asked}
}

var noProof = func(int64) (tlog.TreeProof, error) { return nil, nil }

// is503 reports whether err is a witness's 503.
func is503(err error) bool {
	var re *witness.ResponseError
	return errors.As(err, &re) && re.Status == http.StatusServiceUnavailable
}

// Attack: anyone can replay a log's public signed checkpoint to its
// auditing witness and abandon the request. While the index's server
// does not answer the pull, 200 abandoned submissions leave no more than
// the one pull behind (not a goroutine each, queued for the replica);
// a checkpoint of another head is answered 503 at once rather than
// queued behind it; and Close returns promptly.
func TestAbandonedSubmissions(t *testing.T) {
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	note, _ := signedHead(t, w)
	sw := startStuckWitness(t, w)

	before := runtime.NumGoroutine()
	const n = 200
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := witness.Cosign(ctx, nil, sw.url, 0, note, noProof)
		cancel()
		if err == nil {
			t.Fatal("cosigned a checkpoint the witness could not audit")
		}
	}
	select {
	case <-sw.asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the auditor never asked the index's server")
	}
	time.Sleep(300 * time.Millisecond) // the abandoned requests' goroutines end
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d after %d abandoned submissions", before, after, n)
	if after-before > 20 {
		t.Errorf("%d goroutines left behind by %d abandoned submissions (want the one pull's)", after-before, n)
	}

	// A checkpoint of another head: 503 at once, not queued.
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.1.0"})
	other, _ := signedHead(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := witness.Cosign(ctx, nil, sw.url, 0, other, noProof)
	if !is503(err) || time.Since(start) > 2*time.Second {
		t.Errorf("a checkpoint of another head while a pull runs: %v after %v; want 503 at once", err, time.Since(start))
	}

	start = time.Now()
	if err := sw.auditor.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v behind a stuck pull", d)
	}
}

// Close with audits in flight (the pull stuck, submissions waiting for
// it) — what `cairn witness serve` does on shutdown — returns promptly,
// the waiting submissions are answered 503 (no crash on the closed
// replica), and so is any submission after.
func TestCloseWithAuditsInFlight(t *testing.T) {
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	note, _ := signedHead(t, w)
	sw := startStuckWitness(t, w)

	const n = 5
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := witness.Cosign(ctx, nil, sw.url, 0, note, noProof)
			errs <- err
		}()
	}
	select {
	case <-sw.asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the auditor never asked the index's server")
	}
	time.Sleep(200 * time.Millisecond) // the submissions wait for the pull

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- sw.auditor.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
		t.Logf("Close returned in %v", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatalf("Close still blocked after 3s behind a stuck pull")
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			if !is503(err) {
				t.Errorf("a submission waiting when the auditor closed: %v; want 503", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%d submissions still waiting 3s after Close", n-i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := witness.Cosign(ctx, nil, sw.url, 0, note, noProof); !is503(err) {
		t.Errorf("a submission after Close: %v; want 503", err)
	}
}

// Pull (what `cairn witness add-log --audit` runs) brings the replica up
// to the checkpoint's head, through the same one pull per index the
// audits share; after Close it pulls nothing.
func TestPull(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	note, cp := signedHead(t, w)
	srv := servertest.Serve(w)
	a := audit.New(t.TempDir())
	head, size, err := a.Pull(ctx, w.Intro, srv, note)
	if err != nil || head != cp.Head || size != cp.Size {
		t.Fatalf("Pull: head %s, size %d, %v; want head %s, size %d", head, size, err, cp.Head, cp.Size)
	}
	if head, size, err = a.Pull(ctx, w.Intro, srv, note); err != nil || head != cp.Head || size != cp.Size {
		t.Fatalf("Pull again: head %s, size %d, %v; want head %s, size %d", head, size, err, cp.Head, cp.Size)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Pull(ctx, w.Intro, srv, note); !errors.Is(err, witness.ErrAuditUnavailable) {
		t.Fatalf("Pull after Close: %v; want ErrAuditUnavailable", err)
	}
}
