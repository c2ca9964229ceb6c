package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/server"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/witness"
)

func TestMain(m *testing.M) { servertest.Main(m) }

// world is an index served over HTTP, and a project locked against it.
type world struct {
	*indextest.World
	url     string
	stop    func() // stops the server: what is verified after reads nothing from it
	project string
	audit   string // the audit record of acme/app@1.0.0
	witness string // the verifier key of the witness the project trusts
}

const policyFile = "issuers:\n  security: [acme-security]\nrequire:\n  - name: audited-app\n    property: audited\n    by: security\n    packages: acme/app\nforbid:\n  - name: high-vulnerabilities\n    property: vulnerable\n    severity: high\n"

func newWorld(t *testing.T) *world { return newWorldWitnessed(t, true) }

// newWorldWitnessed is newWorld, with or without the witness.
func newWorldWitnessed(t *testing.T, witnessed bool) *world {
	t.Helper()
	w := &world{World: indextest.New(t), project: t.TempDir()}
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	w.Publish(indextest.Package{Name: "acme/app", Version: "1.0.0", Deps: map[string]string{"acme/log": "^1.0"}})
	w.audit = w.Audit("acme/app", "1.0.0")
	w.Certify(author.Certification{Name: "acme/log", Version: "1.0.0", Kind: "vulnerable", VulnID: "GHSA-1111", Severity: "high"})

	w.Checkpointer = indextest.NewSigner()
	w.Grant(w.Checkpointer, "server", "checkpoint")
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	// A witness the project trusts cosigns the server's checkpoints.
	wurl, wkey := servertest.Witness(w.World, "w1.example")
	o := server.Options{Exe: exe, CheckpointKey: w.Checkpointer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	witnesses := ""
	if witnessed {
		w.witness = wkey
		o.Witnesses = []server.Witness{{URL: wurl, VKey: w.witness}}
		witnesses = "    witnesses: [" + w.witness + "]\n"
	}
	srv, err := server.New(w.Repo, o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	w.url = ts.URL
	w.stop = func() { ts.Close(); srv.Close() }
	t.Cleanup(w.stop)

	w.write("policy.yaml", policyFile)
	w.write("cairn.yaml", fmt.Sprintf("repositories:\n  - name: acme\n    url: %s\n    introduction: %s\n%spackages:\n  acme/app: ^1.0\nplatforms: [linux-amd64]\npolicy: policy.yaml\n", w.url, w.Intro, witnesses))
	w.lock()
	return w
}

func (w *world) write(name, content string) {
	w.T.Helper()
	if err := os.WriteFile(filepath.Join(w.project, name), []byte(content), 0o644); err != nil {
		w.T.Fatal(err)
	}
}

// lock resolves the project and writes its cairn.lock, as cairn lock does.
func (w *world) lock() *plan.Lock {
	w.T.Helper()
	p, err := plan.ReadProject(w.project)
	if err != nil {
		w.T.Fatal(err)
	}
	srcs, err := plan.Open(context.Background(), p, plan.Options{Cache: w.T.TempDir()})
	if err != nil {
		w.T.Fatal(err)
	}
	defer srcs.Close()
	l, err := plan.Resolve(context.Background(), p, srcs)
	if err != nil {
		w.T.Fatal(err)
	}
	if _, err := plan.WriteLock(w.project, l); err != nil {
		w.T.Fatal(err)
	}
	return l
}

// bundle makes the project's evidence.
func (w *world) bundle(o Options) ([]byte, *Made, error) {
	w.T.Helper()
	o.Dir = w.project
	var buf bytes.Buffer
	m, err := Make(context.Background(), &buf, o)
	return buf.Bytes(), m, err
}

// A bundle made from a served index verifies with the server gone: the
// lock checked, each verdict derived again, every record proved.
func TestMakeVerify(t *testing.T) {
	w := newWorld(t)
	data, made, err := w.bundle(Options{MadeBy: "cairn test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(made.Manifest.Verdicts) != 2 || !made.Manifest.Verdicts[0].Allowed || !made.Manifest.Verdicts[1].Allowed {
		t.Fatalf("verdicts made: %+v", made.Manifest.Verdicts)
	}
	w.stop()

	rep, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Allowed || len(rep.Packages) != 2 || len(rep.Repositories) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	var app *PackageProof
	for i := range rep.Packages {
		if rep.Packages[i].ID == "acme/app@1.0.0" {
			app = &rep.Packages[i]
		}
	}
	if app == nil {
		t.Fatalf("no acme/app@1.0.0 in %+v", rep.Packages)
	}
	found := false
	for _, r := range app.Records {
		if r.ID == w.audit {
			found = r.Kind == "audited" && r.Holder == "acme-security" && r.Leaf > 0 && r.Tree == rep.Repositories[0].Size
		}
	}
	if !found {
		t.Fatalf("the audit %s is not proved in %+v", w.audit, app.Records)
	}
	if r := rep.Repositories[0]; r.Origin != "cairn.dev/index/"+w.Intro || r.Quorum != 1 || len(r.Cosigners) != 1 || r.Cosigners[0] != "w1.example" || r.Unwitnessed {
		t.Fatalf("repository report: %+v", rep.Repositories[0])
	}
}

// A vulnerability certified after the lock: the bundle is made, says
// the plan is refused, and verifies as such.
func TestRefusedPlan(t *testing.T) {
	w := newWorld(t)
	w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: "vulnerable", VulnID: "GHSA-2222", Severity: "high"})
	data, made, err := w.bundle(Options{})
	var re *policy.RefusedError
	if !errors.As(err, &re) || made == nil {
		t.Fatalf("Make = %v", err)
	}
	rep, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}})
	if !errors.As(err, &re) || rep == nil || rep.Allowed {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if !strings.Contains(err.Error(), "GHSA-2222") {
		t.Fatalf("the refusal does not name the record: %v", err)
	}
}

// --at judges the plan as the index stood then: a vulnerability certified
// after that time does not count; one before does. A time after the
// bundle's newest checkpoint cannot be judged.
func TestVerifyAt(t *testing.T) {
	w := newWorld(t)
	before := time.Now().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond) // commit times are seconds
	w.Certify(author.Certification{Name: "acme/log", Version: "1.1.0", Kind: "vulnerable", VulnID: "GHSA-4444", Severity: "high"})
	data, made, err := w.bundle(Options{})
	var re *policy.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("Make = %v", err)
	}
	rep, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}, At: before})
	if err != nil || !rep.Allowed || !rep.At.Equal(before.UTC()) {
		t.Fatalf("as of %s, before the vulnerability: %+v, %v", before, rep, err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}}); !errors.As(err, &re) || !strings.Contains(err.Error(), "GHSA-4444") {
		t.Fatalf("at the checkpoint: %v", err)
	}
	later := made.Manifest.JudgedAt.Add(time.Hour)
	if _, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}, At: later}); !errors.Is(err, ErrAtOutOfRange) || !strings.Contains(err.Error(), "cannot judge a later time") {
		t.Fatalf("as of an hour after the checkpoint: %v", err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{Introductions: []string{w.Intro}, At: before.Add(-24 * time.Hour)}); !errors.Is(err, ErrAtOutOfRange) || !strings.Contains(err.Error(), "is before the index began: its first root record is of 20") || !strings.Contains(err.Error(), "judge at that time or later") {
		t.Fatalf("as of before the index existed: %v", err)
	}
}

// A verifier names the indexes it trusts: a bundle of any other index
// (made up for the purpose, its root naming anyone "acme-security") is
// refused, and with no pins at all the verifier is asked for them. The
// witnesses it trusts must have cosigned every checkpoint.
func TestTrustPins(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := newWorld(t)
	verify := func(o VerifyOptions) (*Report, error) {
		return Verify(context.Background(), bytes.NewReader(data), o)
	}
	if _, err := verify(VerifyOptions{}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "acme="+w.Intro) {
		t.Fatalf("no pins: %v", err)
	}
	if _, err := verify(VerifyOptions{Introductions: []string{other.Intro}}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not one you trust") {
		t.Fatalf("another index pinned: %v", err)
	}
	rep, err := verify(VerifyOptions{TrustBundle: true})
	if err != nil || rep.Pinned {
		t.Fatalf("on the bundle's word: %+v, %v", rep, err)
	}
	mine, err := witness.NewPolicy([]string{w.witness}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = verify(VerifyOptions{Introductions: []string{w.Intro}, Witnesses: mine})
	if err != nil || !rep.Pinned || !rep.Repositories[0].WitnessesPinned || len(rep.Repositories[0].Cosigners) != 1 {
		t.Fatalf("pinned, with my witness: %+v, %v", rep, err)
	}
	theirs, err := witness.NewPolicy([]string{other.witness}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var qe *witness.QuorumError
	if _, err := verify(VerifyOptions{Introductions: []string{w.Intro}, Witnesses: theirs}); !errors.Is(err, ErrRefused) || !errors.As(err, &qe) {
		t.Fatalf("a witness that never cosigned: %v", err)
	}
}
