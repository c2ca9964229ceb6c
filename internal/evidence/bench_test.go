package evidence

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index/indextest"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/server/servertest"
)

// benchPackages is how many packages BenchmarkVerify's lock holds, as
// bench/run evidence's (bench/cairnbench/evidence.go).
const benchPackages = 200

// BenchmarkVerify is Verify of the bundle of a lock of benchPackages
// packages, each published, audited and tested (about 600 records and
// their proofs), made from a served index as bench/run evidence makes
// it: the in-process half of its evidence_verify figure, to profile
// (go test -bench Verify -cpuprofile).
func BenchmarkVerify(b *testing.B) {
	w := &world{World: indextest.New(b), project: b.TempDir()}
	var cs []author.Certification
	for i := range benchPackages {
		name := fmt.Sprintf("acme/p%d", i)
		w.Publish(indextest.Package{Name: name, Version: "1.0.0", Files: map[string]string{"README": name + "\n"}})
		for _, k := range []record.Kind{record.Audited, record.Tested} {
			cs = append(cs, author.Certification{Name: name, Version: "1.0.0", Kind: k})
		}
	}
	if _, err := author.CertifyAll(w.Ctx, w.Repo, cs, w.Security); err != nil {
		b.Fatal(err)
	}
	w.url = servertest.Serve(w.World)
	var y strings.Builder
	fmt.Fprintf(&y, "repositories:\n  - name: acme\n    url: %s\n    introduction: %s\nplatforms: [linux-amd64]\npolicy: policy.yaml\npackages:\n", w.url, w.Intro)
	for i := range benchPackages {
		fmt.Fprintf(&y, "  acme/p%d: ^1.0\n", i)
	}
	w.write("cairn.yaml", y.String())
	w.write("policy.yaml", "issuers:\n  security: [acme-security]\nforbid:\n  - {name: high, property: vulnerable, severity: high}\n  - {name: deprecated, property: deprecated}\n")
	w.lock()
	data, _, err := w.bundle(Options{MadeBy: "cairn bench"})
	if err != nil {
		b.Fatal(err)
	}
	o := VerifyOptions{Introductions: []string{w.Intro}}
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cpu0, cpuOK := cpuTime()
	for b.Loop() {
		rep, err := Verify(ctx, bytes.NewReader(data), o)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Allowed || len(rep.Packages) != benchPackages {
			b.Fatalf("report: allowed %v, %d packages", rep.Allowed, len(rep.Packages))
		}
	}
	// The process's CPU time (every core's, the collector's too) per
	// verification: on a shared machine, steadier than the wall clock.
	if cpu1, ok := cpuTime(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(len(data)), "bundle-bytes")
}
