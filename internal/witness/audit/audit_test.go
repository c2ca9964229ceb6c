package audit_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
	"cairn.dev/cairn/internal/witness/audit"
)

func TestMain(m *testing.M) { servertest.Main(m) }

// logBuffer is a witness's log, read by the test while it serves.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testWitness is a cairn witness of w's log over httptest, auditing it
// when auditing is set.
type testWitness struct {
	url, vkey string
	state     *witness.State
	log       *logBuffer
}

func startWitness(t *testing.T, w *indextest.World, name string, auditing bool) *testWitness {
	t.Helper()
	dir := t.TempDir()
	st, err := witness.OpenState(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	origin := checkpoint.Origin(w.Intro)
	if _, err := st.AddLog(origin, checkpoint.VKey(origin, w.Checkpointer.Public())); err != nil {
		t.Fatal(err)
	}
	lb := &logBuffer{}
	ws, err := witness.NewServer(name, indextest.NewSigner(), st, slog.New(slog.NewTextHandler(lb, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if auditing {
		a := audit.New(filepath.Join(dir, "state", "audit"))
		t.Cleanup(func() { a.Close() })
		ws.SetAuditor(a)
	}
	ts := httptest.NewServer(ws)
	t.Cleanup(ts.Close)
	return &testWitness{url: ts.URL, vkey: ws.VerifierKey(), state: st, log: lb}
}

func (tw *testWitness) witness() server.Witness { return server.Witness{URL: tw.url, VKey: tw.vkey} }

func (tw *testWitness) policy(t *testing.T) witness.Policy {
	p, err := witness.NewPolicy([]string{tw.vkey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Attack: a server whose operator holds the real checkpoint key writes,
// in a new tree, a map leaf whose map omits the vulnerable record, and
// submits that tree. A witness that checks only consistency cosigns it
// (the tree extends the one it cosigned), and a light client requiring
// that witness accepts the package without the record. An auditing
// witness pulls the index's history, computes the log, finds another
// root and map at that size, and refuses (422), logging both roots; a
// light client requiring it (quorum 1) refuses the checkpoint. Honest
// publishes are cosigned by the auditing witness: its pull of the new
// commits fits in the server's submission timeout.
func TestForgedMapLeaf(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})

	auditor := startWitness(t, w, "auditor.example", true)
	plain := startWitness(t, w, "plain.example", false)
	honest := servertest.ServeWith(w, server.Options{Witnesses: []server.Witness{auditor.witness(), plain.witness()}})
	f := servertest.NewForger(w, honest)
	srvURL := f.URL
	origin := checkpoint.Origin(w.Intro)
	if _, err := auditor.state.SetAudit(origin, srvURL); err != nil {
		t.Fatal(err)
	}

	// Honest publishes are cosigned by the auditing witness.
	audited := &light.Client{BaseURL: srvURL, Introduction: w.Intro, StateDir: t.TempDir(), Witnesses: auditor.policy(t)}
	for i, version := range []string{"", "1.1.0"} {
		if version != "" {
			w.Publish(indextest.Package{Name: "acme/fastjson", Version: version})
		}
		start := time.Now()
		v, err := audited.Open(ctx)
		if err != nil {
			t.Fatalf("publish %d: a light client requiring the auditing witness: %v\nwitness log:\n%s", i, err, auditor.log.String())
		}
		if v.Cosigned != 1 {
			t.Fatalf("publish %d: cosigned by %d trusted witnesses, want the auditor's", i, v.Cosigned)
		}
		t.Logf("publish %d: checkpoint of size %d cosigned by the auditing witness in %v", i, v.Checkpoint.Size, time.Since(start))
	}
	before, err := auditor.state.Log(origin)
	if err != nil {
		t.Fatal(err)
	}

	// The record the forged map leaves out.
	w.Certify(author.Certification{Name: "acme/fastjson", Version: "1.0.0", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical"})
	fg := servertest.OmitFile(w, "package acme/fastjson", true)
	honestRoot, err := w.Repo.LogOf(w.Repo.Main())
	if err != nil {
		t.Fatal(err)
	}
	hroot, err := honestRoot.TreeHash(fg.Checkpoint.Size)
	if err != nil {
		t.Fatal(err)
	}
	if hroot == fg.Checkpoint.Root {
		t.Fatal("the forgery has the honest root")
	}

	// The witness that checks only consistency cosigns it.
	cos, err := witness.Cosign(ctx, nil, plain.url, before.Size, fg.Note, fg.Prove)
	if err != nil {
		t.Fatalf("a witness that checks only consistency, sent the forged map leaf: %v", err)
	}
	note, err := witness.AppendCosignatures(fg.Note, cos)
	if err != nil {
		t.Fatal(err)
	}

	// The auditing witness refuses it: 422, logged with both roots.
	_, err = witness.Cosign(ctx, nil, auditor.url, before.Size, fg.Note, fg.Prove)
	var re *witness.ResponseError
	if !errors.As(err, &re) || re.Status != http.StatusUnprocessableEntity || !strings.Contains(re.Body, hex.EncodeToString(fg.Checkpoint.Root[:])) {
		t.Fatalf("the auditing witness, sent the forged map leaf: %v; want 422 naming the forged root %x", err, fg.Checkpoint.Root[:])
	}
	logged := auditor.log.String()
	if !strings.Contains(logged, "SECURITY") || !strings.Contains(logged, hex.EncodeToString(hroot[:])) || !strings.Contains(logged, hex.EncodeToString(fg.Checkpoint.Root[:])) || !strings.Contains(logged, hex.EncodeToString(fg.Checkpoint.Map[:])) {
		t.Errorf("the auditing witness's log says nothing of the forgery with both roots:\n%s", logged)
	}
	if after, err := auditor.state.Log(origin); err != nil || after.Size != before.Size || after.Hash != before.Hash {
		t.Errorf("the auditing witness's state moved: %+v, %v; want size %d kept", after, err, before.Size)
	}

	// The server serves the forged log with the cosignature it got, and
	// the honest server's reads of that head (which it has signed, and
	// the auditor cosigned, by then) with the record left out.
	fg.Note = note
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(honest + "/log/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte("cairn-head "+fg.Checkpoint.Head+"\n")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the honest server does not sign head %s:\n%s", fg.Checkpoint.Head, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Serve(fg)

	// A light client requiring the witness that checks only consistency
	// is shown the package without its vulnerable record: what the
	// auditing witness is for.
	fooled := &light.Client{BaseURL: srvURL, Introduction: w.Intro, StateDir: t.TempDir(), Witnesses: plain.policy(t)}
	v, err := fooled.Open(ctx)
	if err != nil {
		t.Fatalf("a light client requiring a witness that checks only consistency: %v (the attack should get past it)", err)
	}
	c, err := v.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	views, err := c.Show(ctx, "acme/fastjson", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, vv := range views {
		for _, r := range vv.Records {
			if r.Kind == string(record.Vulnerable) {
				t.Fatalf("the forged map shows the vulnerable record: the attack is not the one described")
			}
		}
	}

	// A light client requiring the auditing witness refuses it, new or
	// having verified the honest checkpoints.
	for name, lc := range map[string]*light.Client{
		"the client that verified the honest checkpoints": audited,
		"a new client": {BaseURL: srvURL, Introduction: w.Intro, StateDir: t.TempDir(), Witnesses: auditor.policy(t)},
	} {
		_, err := lc.Open(ctx)
		var qe *witness.QuorumError
		if !errors.As(err, &qe) || qe.Checkpoint != string(note) {
			t.Errorf("%s, requiring the auditing witness, served the forged checkpoint: %v; want a *witness.QuorumError with it as evidence", name, err)
		}
	}
}

// signedHead is w's main checkpoint as its server would sign it now.
func signedHead(t *testing.T, w *indextest.World) ([]byte, checkpoint.Checkpoint) {
	t.Helper()
	lg, err := w.Repo.LogOf(w.Repo.Main())
	if err != nil {
		t.Fatal(err)
	}
	last, err := lg.Entry(lg.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	me, err := translog.ParseMapEntry(last)
	if err != nil {
		t.Fatal(err)
	}
	cp := checkpoint.Checkpoint{Origin: checkpoint.Origin(w.Intro), Size: lg.Size(), Root: lg.Root(), Map: me.Root, Head: me.Commit, Time: time.Now().UTC().Truncate(time.Second)}
	note, err := checkpoint.Sign(cp, w.Checkpointer)
	if err != nil {
		t.Fatal(err)
	}
	return note, cp
}

// When the auditor cannot tell — the server unreachable, or no auditor
// running for a log marked audited — the witness answers 503 and cosigns
// nothing (a witness that cosigned unaudited would be no auditor); once
// the log's server is reachable (SetAudit again: it moved), the same
// checkpoint is cosigned.
func TestAuditUnavailable(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	origin := checkpoint.Origin(w.Intro)
	note, cp := signedHead(t, w)
	none := func(int64) (tlog.TreeProof, error) { return nil, nil }

	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	aw := startWitness(t, w, "auditor.example", true)
	if _, err := aw.state.SetAudit(origin, gone.URL); err != nil {
		t.Fatal(err)
	}
	_, err := witness.Cosign(ctx, nil, aw.url, 0, note, none)
	var re *witness.ResponseError
	if !errors.As(err, &re) || re.Status != http.StatusServiceUnavailable {
		t.Fatalf("audited against a server that is gone: %v; want 503", err)
	}
	nw := startWitness(t, w, "no-auditor.example", false)
	if _, err := nw.state.SetAudit(origin, gone.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := witness.Cosign(ctx, nil, nw.url, 0, note, none); !errors.As(err, &re) || re.Status != http.StatusServiceUnavailable {
		t.Fatalf("an audited log, a witness with no auditor: %v; want 503", err)
	}
	for _, tw := range []*testWitness{aw, nw} {
		if l, err := tw.state.Log(origin); err != nil || l.Size != 0 {
			t.Fatalf("state after a 503: %+v, %v", l, err)
		}
	}

	if _, err := aw.state.SetAudit(origin, servertest.Serve(w)); err != nil {
		t.Fatal(err)
	}
	cos, err := witness.Cosign(ctx, nil, aw.url, 0, note, none)
	if err != nil {
		t.Fatalf("audited against the log's server: %v", err)
	}
	if n, err := aw.policy(t).Check(append(bytes.Clone(note), cos...), origin); err != nil || n != 1 {
		t.Fatalf("the auditing witness's cosignature: %d, %v", n, err)
	}
	if l, err := aw.state.Log(origin); err != nil || l.Size != cp.Size || l.Hash != cp.Root {
		t.Fatalf("state after the audited cosignature: %+v, %v; want size %d", l, err, cp.Size)
	}
}

// git runs git in dir, for the attacker's side of a test.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=mallory", "-c", "user.email=m@example.com"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Attack: the log's key holder appends to main a commit the rules refuse
// (it rewrites a record the index holds) and signs the tree that history
// gives, consistent with the one the witness cosigned. The auditing
// witness's replica refuses the history by the rule: 422, logged.
func TestHistoryBreakingRules(t *testing.T) {
	ctx := context.Background()
	w := indextest.New(t)
	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.0.0"})
	origin := checkpoint.Origin(w.Intro)
	note, cp := signedHead(t, w)

	// The evil server's git: the honest history and one commit more.
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	git(t, dir, "clone", "-q", indextest.GitDir(t, w.Repo), work)
	var victim string
	for _, p := range strings.Fields(git(t, work, "ls-files", "packages")) {
		if strings.HasSuffix(p, ".json") {
			victim = p
			break
		}
	}
	if victim == "" {
		t.Fatal("no record to rewrite")
	}
	if err := os.WriteFile(filepath.Join(work, victim), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "commit", "-q", "-am", "rewritten")
	head := git(t, work, "rev-parse", "HEAD")
	when, _ := strconv.ParseInt(git(t, work, "log", "-1", "--format=%ct"), 10, 64)
	bare := filepath.Join(dir, "root", "index.git")
	git(t, dir, "clone", "-q", "--bare", work, bare)
	git(t, bare, "update-ref", index.MainRef, head)
	evil := httptest.NewServer(&cgi.Handler{Path: gitPath(t), Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Join(dir, "root"), "GIT_HTTP_EXPORT_ALL=1"}})
	t.Cleanup(evil.Close)

	// The tree that history gives: the commit adds no file, so only its
	// map leaf, with the map unchanged.
	lg, err := w.Repo.LogOf(w.Repo.Main())
	if err != nil {
		t.Fatal(err)
	}
	var hashes []tlog.Hash
	hr := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = hashes[x]
		}
		return out, nil
	})
	add := func(i int64, text []byte) error {
		hs, err := tlog.StoredHashes(i, text, hr)
		hashes = append(hashes, hs...)
		return err
	}
	if err := lg.Range(0, lg.Size(), add); err != nil {
		t.Fatal(err)
	}
	if err := add(cp.Size, translog.MapEntry{Commit: head, Time: when, Root: cp.Map}.Text()); err != nil {
		t.Fatal(err)
	}
	root, err := tlog.TreeHash(cp.Size+1, hr)
	if err != nil {
		t.Fatal(err)
	}
	bad := checkpoint.Checkpoint{Origin: origin, Size: cp.Size + 1, Root: root, Map: cp.Map, Head: head, Time: cp.Time}
	badNote, err := checkpoint.Sign(bad, w.Checkpointer)
	if err != nil {
		t.Fatal(err)
	}

	aw := startWitness(t, w, "auditor.example", true)
	if _, err := aw.state.SetAudit(origin, evil.URL); err != nil {
		t.Fatal(err)
	}
	none := func(int64) (tlog.TreeProof, error) { return nil, nil }
	if _, err := witness.Cosign(ctx, nil, aw.url, 0, note, none); err != nil {
		t.Fatalf("the honest tree, from the evil server's git (it holds it): %v", err)
	}
	prove := func(old int64) (tlog.TreeProof, error) { return tlog.ProveTree(bad.Size, old, hr) }
	_, err = witness.Cosign(ctx, nil, aw.url, cp.Size, badNote, prove)
	var re *witness.ResponseError
	if !errors.As(err, &re) || re.Status != http.StatusUnprocessableEntity {
		t.Fatalf("a tree of a history that breaks the rules: %v; want 422", err)
	}
	if logged := aw.log.String(); !strings.Contains(logged, "SECURITY") || !strings.Contains(logged, head) {
		t.Errorf("the witness's log says nothing of the history refused:\n%s", logged)
	}
	if l, err := aw.state.Log(origin); err != nil || l.Size != cp.Size {
		t.Errorf("state: %+v, %v; want size %d kept", l, err, cp.Size)
	}
}

func gitPath(t *testing.T) string {
	p, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	return p
}
