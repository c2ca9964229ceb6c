package certifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server/servertest"
)

// TestMain lets the test binary be the server's pre-receive hook.
func TestMain(m *testing.M) { servertest.Main(m) }

// rig is a served index, a CI key granted certify:tested, and a
// configuration repository that names the server as remote "public".
type rig struct {
	*indextest.World
	url    string
	ci     keys.Signer
	config *index.Repo
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigAt(t, indextest.New(t), nil)
}

// newRigAt is newRig of w, whose server is reached through front (its
// URL from the server's) if front is not nil.
func newRigAt(t *testing.T, w *indextest.World, front func(backend string) string) *rig {
	t.Helper()
	url := servertest.Serve(w)
	if front != nil {
		url = front(url)
	}
	g := &rig{World: w, url: url, ci: indextest.NewSigner()}
	w.Grant(g.ci, "acme-ci", "certify:tested")
	cfg, err := index.InitReplica(w.Ctx, filepath.Join(t.TempDir(), "config"), w.Intro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Close() })
	if err := remote.Add(cfg, remote.Remote{Name: "public", URL: g.url, Introduction: w.Intro}); err != nil {
		t.Fatal(err)
	}
	g.config = cfg
	return g
}

// certifier makes a certifier of "public" with o (Once, the CI key and a
// state directory unless given).
func (g *rig) certifier(o Options, state string) *Certifier {
	g.T.Helper()
	if state == "" {
		state = g.T.(*testing.T).TempDir()
	}
	if o.Signer == nil {
		o.Signer = g.ci
	}
	if o.Property == "" {
		o.Property = record.Tested
	}
	o.Once = true
	c, err := New(g.Ctx, g.config, []string{"public"}, state, o)
	if err != nil {
		g.T.Fatal(err)
	}
	g.T.Cleanup(func() { c.Close() })
	return c
}

func (g *rig) run(c *Certifier) {
	g.T.Helper()
	if err := c.Run(g.Ctx); err != nil {
		g.T.Fatal(err)
	}
}

// records returns the records of kind about name@version in the served
// index, as its server holds them.
func (g *rig) records(name, version string, kind record.Kind) []index.RecordView {
	g.T.Helper()
	cat, err := g.Repo.Catalog(g.Ctx, index.MainRef)
	if err != nil {
		g.T.Fatal(err)
	}
	_, _, recs, err := cat.Version(name, version)
	if err != nil {
		g.T.Fatal(err)
	}
	var out []index.RecordView
	for _, rv := range recs {
		if rv.Kind == string(kind) {
			out = append(out, rv)
		}
	}
	return out
}

// passes is a test command: the source unpacks and holds a README
// naming the version, unless the package is acme/bad.
// The descriptor beside it is the one the index names.
const passes = `echo "testing $CAIRN_PACKAGE@$CAIRN_VERSION $CAIRN_DESCRIPTOR"; tar xzf "$CAIRN_ARTIFACT" && grep -q "$CAIRN_PACKAGE $CAIRN_VERSION" README && ` +
	`[ "sha256:$(sha256sum < "$CAIRN_DESCRIPTOR_FILE" | cut -d" " -f1)" = "$CAIRN_DESCRIPTOR" ] && [ "$CAIRN_PACKAGE" != acme/bad ]`

func TestCertifyPassingNotFailing(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	g.Publish(indextest.Package{Name: "acme/bad", Version: "1.0.0"})
	state := t.TempDir()
	c := g.certifier(Options{Command: passes}, state)
	g.run(c)

	got := g.records("acme/log", "1.0.0", record.Tested)
	if len(got) != 1 || got[0].Holder != "acme-ci" || got[0].Issuer != keys.ID(g.ci.Public()) {
		t.Fatalf("acme/log@1.0.0: tested records %+v, want one by acme-ci", got)
	}
	p := got[0].Record.Predicate.(record.TestResultPredicate)
	if p.Result != "PASSED" || len(p.Configuration) != 4 {
		t.Fatalf("predicate %+v", p)
	}
	// The last entry names the run by its key and time, so that two CI
	// services' identical results are two records (record.TestRun).
	if cr := p.Configuration[3]; cr.URI != record.TestRunURI || cr.Annotations["issuer"] != keys.ID(g.ci.Public()) || p.Issued().IsZero() {
		t.Fatalf("the run entry: %+v", cr)
	}
	run := p.Configuration[0]
	if run.Name != "command" || run.Annotations["command"] != passes || run.Annotations["exit_code"] != float64(0) || run.Annotations["timed_out"] != false {
		t.Fatalf("the run's configuration: %+v", run)
	}
	_, ref, _ := g.Repo.Descriptor(g.Ctx, "acme/log", "1.0.0")
	d, _, _ := g.Repo.Descriptor(g.Ctx, "acme/log", "1.0.0")
	if art := p.Configuration[1]; art.Name != "src.tar.gz" || art.Digest["sha256"] != d.Artifacts[0].SHA256 {
		t.Fatalf("the artifact tested: %+v (descriptor %s)", art, ref)
	}
	// The evidence is the output, uploaded to the server and named by
	// digest and size.
	ev := p.Configuration[2]
	size, _ := ev.Annotations["size"].(float64)
	data, err := blob.ReadAll(g.Ctx, g.Repo.Blobs, blob.Ref{SHA256: ev.Digest["sha256"], Size: int64(size)})
	if err != nil || string(data) != "testing acme/log@1.0.0 sha256:"+ref.SHA256+"\n" {
		t.Fatalf("evidence on the server: %q, %v", data, err)
	}
	if got := g.records("acme/bad", "1.0.0", record.Tested); len(got) != 0 {
		t.Fatalf("a failing run certified acme/bad: %+v", got)
	}
	// The certifier keeps neither the artifacts nor the evidence it
	// uploaded, nor any run's directory.
	for _, ref := range []blob.Ref{d.Artifacts[0].Ref, {SHA256: ev.Digest["sha256"], Size: int64(size)}} {
		if ok, _ := c.follows[0].repo.Blobs.Stat(g.Ctx, ref); ok {
			t.Fatalf("the replica's store still holds %s", ref)
		}
	}
	if runs, _ := filepath.Glob(filepath.Join(state, "public", "run-*")); len(runs) != 0 {
		t.Fatalf("run directories left behind: %v", runs)
	}

	// Another certifier signs failures when asked.
	other := indextest.NewSigner()
	g.Grant(other, "acme-ci-2", "certify:tested")
	g.run(g.certifier(Options{Command: passes, Signer: other, OnFailure: OnFailureTested}, ""))
	bad := g.records("acme/bad", "1.0.0", record.Tested)
	if len(bad) != 1 || bad[0].Holder != "acme-ci-2" || bad[0].Record.Predicate.(record.TestResultPredicate).Result != "FAILED" {
		t.Fatalf("acme/bad after a certifier that records failures: %+v", bad)
	}
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 2 {
		t.Fatalf("acme/log: %d tested records, want acme-ci's and acme-ci-2's", len(got))
	}
}

func TestCertifyHangTimesOut(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	start := time.Now()
	g.run(g.certifier(Options{Command: "echo started; sleep 60", Timeout: 500 * time.Millisecond, OnFailure: OnFailureTested}, ""))
	if time.Since(start) > 30*time.Second {
		t.Fatalf("the certifier waited for the hung command")
	}
	got := g.records("acme/log", "1.0.0", record.Tested)
	if len(got) != 1 {
		t.Fatalf("tested records %+v, want one FAILED", got)
	}
	p := got[0].Record.Predicate.(record.TestResultPredicate)
	if p.Result != "FAILED" || p.Configuration[0].Annotations["timed_out"] != true {
		t.Fatalf("a timed-out run: %+v", p)
	}
}

// A --run the shell cannot run (not found: 127; not executable: 126) is
// the certifier's setup failing, not the package: the run is an error
// (Once returns it), the version is not counted, and once the command
// is mended it is tested and certified. It was counted as failed for
// good: never tested again, never certified.
func TestCertifyCommandNotFound(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	state := t.TempDir()
	notExec := filepath.Join(t.TempDir(), "test.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for cmd, code := range map[string]int{"/nonexistent/test.sh": 127, notExec: 126} {
		err := g.certifier(Options{Command: cmd}, state).Run(g.Ctx)
		var ce *CommandError
		if !errors.As(err, &ce) || ce.ExitCode != code || !strings.Contains(err.Error(), "could not run") {
			t.Fatalf("--run %s: %v, want a CommandError of exit %d", cmd, err, code)
		}
	}
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 0 {
		t.Fatalf("tested records %+v after runs that never ran", got)
	}
	g.run(g.certifier(Options{Command: "true"}, state))
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 1 {
		t.Fatalf("after --run was mended: %d tested records, want 1", len(got))
	}
}

// TestCertifyOnceEach: a version certified, but its progress lost (the
// certifier killed after its push landed), is not run or signed again;
// and a certifier run again finds nothing new.
func TestCertifyOnceEach(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	state := t.TempDir()
	count := filepath.Join(t.TempDir(), "runs")
	cmd := "echo run >> " + count
	g.run(g.certifier(Options{Command: cmd}, state))
	if err := os.Remove(filepath.Join(state, "public", "progress.json")); err != nil {
		t.Fatal(err)
	}
	g.run(g.certifier(Options{Command: cmd}, state))
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	g.run(g.certifier(Options{Command: cmd}, state))
	g.run(g.certifier(Options{Command: cmd}, state))
	runs, _ := os.ReadFile(count)
	if string(runs) != "run\nrun\n" {
		t.Fatalf("the command ran %d times for two versions", strings.Count(string(runs), "run"))
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if got := g.records("acme/log", v, record.Tested); len(got) != 1 {
			t.Fatalf("acme/log@%s: %d tested records", v, len(got))
		}
	}
	var p progress
	data, _ := os.ReadFile(filepath.Join(state, "public", "progress.json"))
	json.Unmarshal(data, &p)
	head, _ := g.Repo.Head(g.Ctx, index.MainRef)
	if len(p.Done) != 0 || p.Base == "" {
		t.Fatalf("progress %s: want every version behind the base (head %s)", data, head)
	}
	// The state belongs to this key and property.
	if _, err := New(g.Ctx, g.config, []string{"public"}, state, Options{Signer: indextest.NewSigner(), Property: record.Tested, Command: "true"}); err == nil || !strings.Contains(err.Error(), "the state of another certifier") {
		t.Fatalf("another key's certifier on this state: %v", err)
	}
}

// TestCertifyReplicas: two certifiers with one key run the same version
// at the same time; one record lands.
func TestCertifyReplicas(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	meet := t.TempDir()
	// Each run waits until both have started: both sign, both push.
	cmd := `touch ` + meet + `/$$; n=0; while [ $(ls ` + meet + ` | wc -l) -lt 2 ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done`
	a, b := g.certifier(Options{Command: cmd}, ""), g.certifier(Options{Command: cmd}, "")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*Certifier{a, b} {
		wg.Go(func() { errs[i] = c.Run(g.Ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 1 {
		t.Fatalf("two replicas with one key: %d tested records, want 1", len(got))
	}
	// One found the other's record first; neither left anything
	// unpushed behind.
	already := 0.0
	for _, c := range []*Certifier{a, b} {
		already += testutil.ToFloat64(c.o.Metrics.outcomes.WithLabelValues("public", "already"))
		f := c.follows[0]
		main, _ := f.repo.Head(g.Ctx, index.MainRef)
		at, _ := f.repo.Head(g.Ctx, remote.Ref("public"))
		if main != at {
			t.Fatalf("a replica's main %s is not the remote's %s", main, at)
		}
		if len(f.progress.Done) != 0 || f.progress.Base == "" {
			t.Fatalf("progress %+v", f.progress)
		}
	}
	if already != 1 {
		t.Fatalf("%v replicas found the record there first, want 1", already)
	}
}

func TestCertifyKeyScopes(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	fatal := func(c *Certifier, want string) {
		t.Helper()
		err := c.Run(g.Ctx)
		var fe *FatalError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want a FatalError saying %q", err, want)
		}
	}
	stranger := indextest.NewSigner()
	fatal(g.certifier(Options{Command: "true", Signer: stranger}, ""), "is not granted in public's index")
	// Granted tested, but it would also sign vulnerable findings.
	fatal(g.certifier(Options{Command: "true", Property: record.Scanned, Findings: true}, ""), "missing the grant of certify:scanned certify:vulnerable")
	// A key the root revokes stops certifying.
	c := g.certifier(Options{Command: "true"}, "")
	if _, err := author.RevokeKey(g.Ctx, g.Repo, keys.ID(g.ci.Public()), "the CI machine was compromised", g.Root); err != nil {
		t.Fatal(err)
	}
	fatal(c, "was revoked in public's index")
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 0 {
		t.Fatalf("a revoked key certified: %+v", got)
	}
	// A key whose scope does not cover the package skips it.
	narrow := indextest.NewSigner()
	g.Grant(narrow, "beta-ci", "certify:tested:beta/*")
	g.run(g.certifier(Options{Command: "true", Signer: narrow}, ""))
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 0 {
		t.Fatalf("a key without the scope certified: %+v", got)
	}
}

func TestCertifyFindings(t *testing.T) {
	g := newRig(t)
	scan := indextest.NewSigner()
	g.Grant(scan, "acme-scanner", "certify:scanned", "certify:vulnerable")
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	// The scanner finds something in 1.0.0 only.
	// It exits 1 when it finds something, as trivy --exit-code 1 does;
	// 1.2.0 it cannot scan at all.
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.2.0"})
	cmd := `case $CAIRN_VERSION in 1.0.0) echo '[{"id": "GHSA-aaaa-bbbb-cccc", "severity": "HIGH"}, {"id": "CVE-2026-1", "severity": 5.3}]'; exit 1;; 1.1.0) echo '[]';; *) echo 'cannot read the archive' >&2; exit 2;; esac`
	g.run(g.certifier(Options{Command: cmd, Signer: scan, Property: record.Scanned, Findings: true}, ""))
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if got := g.records("acme/log", v, record.Scanned); len(got) != 1 || got[0].Holder != "acme-scanner" {
			t.Fatalf("acme/log@%s: scanned records %+v", v, got)
		}
	}
	if got := g.records("acme/log", "1.1.0", record.Vulnerable); len(got) != 0 {
		t.Fatalf("a clean scan signed vulnerable records: %+v", got)
	}
	if got := append(g.records("acme/log", "1.2.0", record.Scanned), g.records("acme/log", "1.2.0", record.Vulnerable)...); len(got) != 0 {
		t.Fatalf("a scan that failed signed records: %+v", got)
	}
	got := g.records("acme/log", "1.0.0", record.Vulnerable)
	if len(got) != 1 || got[0].Holder != "acme-scanner" {
		t.Fatalf("acme/log@1.0.0: vulnerable records %+v", got)
	}
	res := got[0].Record.Predicate.(record.VulnsPredicate).Scanner.Result
	if len(res) != 2 || res[0].ID != "GHSA-aaaa-bbbb-cccc" || res[0].Severity[0].Score != "high" || res[1].ID != "CVE-2026-1" || res[1].Severity[0].Score != "medium" {
		t.Fatalf("findings %+v", res)
	}
}

func TestParseFindings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // id:severity ...
		err  string
	}{
		{in: "", want: ""},
		{in: "[]", want: ""},
		{in: `[{"id": "GHSA-1", "severity": "Critical", "affects": "<1.2"}]`, want: "GHSA-1:critical"},
		{in: `{"findings": [{"id": "CVE-1", "severity": 9.8}, {"id": "CVE-2", "severity": "3.1"}]}`, want: "CVE-1:critical CVE-2:low"},
		{in: `{"scanner": {"uri": "pkg:github/aquasecurity/trivy", "result": [{"id": "CVE-3", "severity": [{"method": "nvd", "score": "7.0"}]}]}}`, want: "CVE-3:high"},
		{in: `{"_type": "https://in-toto.io/Statement/v1", "predicate": {"scanner": {"uri": "x", "result": [{"id": "CVE-4", "severity": [{"method": "a", "score": "low"}, {"method": "b", "score": "moderate"}]}]}}}`, want: "CVE-4:medium"},
		{in: `[{"id": "GHSA-1", "severity": "bad"}]`, err: "no severity cairn can rank"},
		{in: `[{"id": "", "severity": "low"}]`, err: "want a non-empty advisory id"},
		{in: `PASS ok`, err: "not JSON findings"},
		{in: `{"results": []}`, want: ""},
		{in: `{"results": [{"packages": [{"package": {"name": "x"}, "vulnerabilities": [{"id": "GHSA-1"}]}]}]}`, err: "no modified time"},
		{in: `{"id": "GHSA-1", "modified": "2026-01-01T00:00:00Z", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}`, want: "GHSA-1:critical"},
		{in: `[{"id": "GHSA-1", "modified": "2026-01-01T00:00:00Z", "database_specific": {"severity": "LOW"}}, {"id": "GHSA-2", "modified": "2026-01-01T00:00:00Z", "withdrawn": "2026-01-02T00:00:00Z"}]`, want: "GHSA-1:low"},
		{in: `{"id": "GHSA-1", "modified": "2026-01-01T00:00:00Z", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}]}`, err: "malformed OSV: the scanner's output: GHSA-1: severity CVSS_V3"},
	} {
		f, err := ParseFindings([]byte(tc.in), "acme/log")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		var got []string
		for _, r := range f.Results {
			got = append(got, r.ID+":"+r.Severity[0].Score)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %v, want %s", tc.in, got, tc.want)
		}
	}
}

// TestCertifyUnpushedDropped: a certification that did not land (the
// server unreachable) is dropped, not pushed later beside a second one.
func TestCertifyUnpushedDropped(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	state := t.TempDir()
	c := g.certifier(Options{Command: "true"}, state)
	f := c.follows[0]
	// Pull, then certify on the replica as if the push had failed.
	if _, err := remote.Pull(g.Ctx, f.repo, "public", remote.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Certify(g.Ctx, f.repo, author.Certification{Name: "acme/log", Version: "1.0.0", Kind: record.Tested, Configuration: []record.ResourceDescriptor{}}, g.ci); err != nil {
		t.Fatal(err)
	}
	g.run(c)
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 1 {
		t.Fatalf("%d tested records landed, want 1", len(got))
	}
}

// TestCertifyWokenByPush: a certifier that polls once a minute certifies
// a version pushed meanwhile at once: the server answers its wait for
// main to move when the push lands.
func TestCertifyWokenByPush(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	c := g.certifier(Options{Command: "true", Poll: time.Minute}, "")
	c.o.Once = false
	ctx, cancel := context.WithCancel(g.Ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(version string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); len(g.records("acme/log", version, record.Tested)) == 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("acme/log@%s not certified within 30 s (the certifier polls once a minute)", version)
			}
		}
	}
	waitFor("1.0.0")

	// A publisher pushes 1.1.0 to the server.
	laptop, err := index.InitReplica(g.Ctx, filepath.Join(t.TempDir(), "laptop"), g.Intro)
	if err != nil {
		t.Fatal(err)
	}
	defer laptop.Close()
	if err := remote.Add(laptop, remote.Remote{Name: "origin", URL: g.url, Introduction: g.Intro}); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Pull(g.Ctx, laptop, "origin", remote.Options{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte("name: acme/log\nversion: 1.1.0\nartifacts:\n  - kind: source\n    file: src.txt\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.txt"), []byte("source\n"), 0o644)
	if _, err := author.Publish(g.Ctx, laptop, dir, g.Publisher); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Push(g.Ctx, laptop, "origin", g.Publisher, remote.Options{}); err != nil {
		t.Fatal(err)
	}
	waitFor("1.1.0")
}

// Attack: a server (or a mirror) that hands out other bytes than the
// descriptor names. The command never sees them and nothing is signed.
func TestCertifyTamperedArtifact(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	d, _, err := g.Repo.Descriptor(g.Ctx, "acme/log", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	src := d.Artifacts[0]
	target, _ := url.Parse(g.url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if strings.HasSuffix(resp.Request.URL.Path, "/blobs/sha256/"+src.SHA256) && resp.Request.Method == http.MethodGet {
			evil := bytes.Repeat([]byte("x"), int(src.Size))
			resp.Body = io.NopCloser(bytes.NewReader(evil))
		}
		return nil
	}
	evil := httptest.NewServer(proxy)
	defer evil.Close()
	if err := remote.Set(g.config, remote.Remote{Name: "public", URL: evil.URL, Introduction: g.Intro}); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(t.TempDir(), "ran")
	err = g.certifier(Options{Command: "touch " + ran}, "").Run(g.Ctx)
	if err == nil || !errors.Is(err, blob.ErrMismatch) || !strings.Contains(err.Error(), "artifact src.tar.gz") {
		t.Fatalf("a tampered artifact: err = %v, want a mismatch naming the artifact", err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the command ran on bytes the descriptor does not name")
	}
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 0 {
		t.Fatalf("certified on tampered bytes: %+v", got)
	}
}

// TestCertifyTwoRemotes: one certifier follows two indexes, each with its
// own introduction, replica and progress.
func TestCertifyTwoRemotes(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	other := indextest.New(t)
	otherURL := servertest.Serve(other)
	other.Grant(g.ci, "acme-ci", "certify:tested")
	other.Publish(indextest.Package{Name: "acme/db", Version: "2.0.0"})
	if err := remote.Add(g.config, remote.Remote{Name: "internal", URL: otherURL, Introduction: other.Intro}); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	c, err := New(g.Ctx, g.config, []string{"public", "internal"}, state, Options{Signer: g.ci, Property: record.Tested, Command: "true", Once: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g.run(c)
	if got := g.records("acme/log", "1.0.0", record.Tested); len(got) != 1 {
		t.Fatalf("public's acme/log: %d tested records", len(got))
	}
	cat, err := other.Repo.Catalog(g.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	_, _, recs, err := cat.Version("acme/db", "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rv := range recs {
		if rv.Kind == "tested" && rv.Holder == "acme-ci" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("internal's acme/db: %d tested records", n)
	}
	for _, name := range []string{"public", "internal"} {
		if _, err := os.Stat(filepath.Join(state, name, "progress.json")); err != nil {
			t.Fatalf("no progress of %s: %v", name, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	poll, most := time.Second, 10*time.Second
	within := func(got, want time.Duration) bool { return got <= want && got >= want-want/10 }
	w := backoff(0, poll, most)
	if !within(w, poll) {
		t.Fatalf("first wait %v, want about %v", w, poll)
	}
	for range 8 {
		next := backoff(w, poll, most)
		if !within(next, min(2*w, most)) {
			t.Fatalf("after %v: %v, want about %v", w, next, min(2*w, most))
		}
		w = next
	}
	if !within(w, most) {
		t.Fatalf("after 9 failures the wait is %v, want about %v", w, most)
	}
}

// TestCertifyJobs: with --jobs 2, two versions run at once (each run
// passes only if it meets the other).
func TestCertifyJobs(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	meet := t.TempDir()
	cmd := `touch ` + meet + `/$CAIRN_VERSION; n=0; while [ $(ls ` + meet + ` | wc -l) -lt 2 ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done; [ $(ls ` + meet + ` | wc -l) -ge 2 ]`
	g.run(g.certifier(Options{Command: cmd, Jobs: 2}, ""))
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if got := g.records("acme/log", v, record.Tested); len(got) != 1 {
			t.Fatalf("acme/log@%s: %d tested records: the two runs did not overlap", v, len(got))
		}
	}
}

// TestCertifyDiskAndOutput: a run that fills the disk fails alone, and
// one that prints megabytes leaves bounded evidence; the certifier goes on.
func TestCertifyDiskAndOutput(t *testing.T) {
	g := newRig(t)
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	g.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	cmd := `case $CAIRN_VERSION in 1.0.0) head -c 50000000 /dev/zero > big;; *) head -c 20000000 /dev/zero | tr '\0' x;; esac`
	g.run(g.certifier(Options{Command: cmd, MaxFileSize: 1 << 20, MaxOutput: 64 << 10, OnFailure: OnFailureTested}, ""))
	full := g.records("acme/log", "1.0.0", record.Tested)
	if len(full) != 1 || full[0].Record.Predicate.(record.TestResultPredicate).Result != "FAILED" {
		t.Fatalf("a run that filled the disk: %+v, want one FAILED", full)
	}
	loud := g.records("acme/log", "1.1.0", record.Tested)
	if len(loud) != 1 {
		t.Fatalf("a run that printed 20 MB: %d records", len(loud))
	}
	p := loud[0].Record.Predicate.(record.TestResultPredicate)
	ev := p.Configuration[len(p.Configuration)-1]
	size, _ := ev.Annotations["size"].(float64)
	if p.Result != "PASSED" || size > 65<<10 || p.Configuration[0].Annotations["output_dropped_bytes"].(float64) < 19_000_000 {
		t.Fatalf("20 MB of output: result %s, evidence of %v bytes, run %+v", p.Result, size, p.Configuration[0].Annotations)
	}
}
