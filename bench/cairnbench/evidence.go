package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hdevalence/ed25519consensus"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/evidence"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
)

// evidencePackages is how many packages the evidence figures' lock holds.
const evidencePackages = 200

// benchEvidence: the evidence bundle of a 200-package lock (each package
// published, audited and tested: about 600 records, and the grants) from
// a cairn server — made by cairn evidence, verified by cairn evidence
// verify (a whole process, no network) and by evidence.Verify in this
// process — against the floor: the signatures of every record the
// bundle holds, verified by the fastest means this run has
// (ed25519consensus batches of 64 on every core), as verification must
// at least do. The artifacts are small (the SBOM's SHA-512 reads them).
func benchEvidence(ctx context.Context, cairn, work string) error {
	const n, size = evidencePackages, 16 << 10
	w, err := newPlanWorld(ctx, filepath.Join(work, "evidence"))
	if err != nil {
		return err
	}
	defer w.repo.Close()
	for i := 0; i < n; i++ {
		if err := w.publish(ctx, i, size, nil); err != nil {
			return err
		}
	}
	var cs []author.Certification
	for i := 0; i < n; i++ {
		for _, k := range []record.Kind{record.Audited, record.Tested} {
			cs = append(cs, author.Certification{Name: fmt.Sprintf("acme/p%d", i), Version: "1.0.0", Kind: k})
		}
	}
	if _, err := author.CertifyAll(ctx, w.repo, cs, w.auditor); err != nil {
		return err
	}
	srv, url, err := w.serve(ctx, cairn)
	if err != nil {
		return err
	}
	defer stop(srv)
	proj := filepath.Join(w.dir, "project")
	if err := w.project(proj, "url: "+url, n); err != nil {
		return err
	}
	cache := filepath.Join(w.dir, "cache")
	if _, _, err := runTimed(cairn, "lock", "--dir", proj, "--cache", cache); err != nil {
		return err
	}

	bundle := filepath.Join(w.dir, "plan.evidence")
	var makes, verifies, inProc []time.Duration
	for round := 0; round < 3; round++ {
		d, _, err := runTimed(cairn, "evidence", "--dir", proj, "-o", bundle)
		if err != nil {
			return err
		}
		makes = append(makes, d)
		if d, _, err = runTimed(cairn, "evidence", "verify", bundle, "--introduction", w.intro); err != nil {
			return err
		}
		verifies = append(verifies, d)
	}
	data, err := os.ReadFile(bundle)
	if err != nil {
		return err
	}
	// Left for inspection (and profiling: perf record cairn evidence verify).
	os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(w.dir)), "plan.evidence"), data, 0o644)

	// The floor: every record signature the bundle's documents hold,
	// under the keys that made them.
	b, err := evidence.Read(bytes.NewReader(data), 0)
	if err != nil {
		return err
	}
	pubs := map[string]ed25519.PublicKey{}
	for _, s := range []keys.Signer{w.root, w.alice, w.auditor} {
		pubs[keys.ID(s.Public())] = s.Public()
	}
	var sigs []gen.Sig
	records := 0
	for name, body := range b.Files {
		if !strings.Contains(name, "/api/v1/log/subject/") {
			continue
		}
		// A document in the compact encoding (version 3), or JSON
		// (version 2).
		var contents [][]byte
		if docs, _, err := translog.ParseSubjects(body); err == nil {
			for _, d := range docs {
				for _, f := range d.Files {
					contents = append(contents, f.Content)
				}
			}
		} else {
			var doc struct {
				Files []struct {
					Content []byte `json:"content"`
				} `json:"files"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			for _, f := range doc.Files {
				contents = append(contents, f.Content)
			}
		}
		for _, content := range contents {
			rec, err := record.Parse(content)
			if err != nil {
				continue
			}
			records++
			for _, s := range rec.Signatures {
				if p := pubs[s.KeyID]; p != nil {
					sigs = append(sigs, gen.Sig{Pub: p, Msg: dsse.PAE(record.PayloadType, rec.Payload), Sig: s.Sig, Raw: content})
				}
			}
		}
	}
	// The floor and evidence.Verify in turns, one warm-up each, so that
	// both see the same load on a shared machine.
	// Their CPU times too (this process's, every thread's), steadier
	// than wall times on a machine others share.
	var floors, floorCPUs, cpus []time.Duration
	for round := -1; round < 5; round++ {
		// The same cryptographic work by the faster, this round, of
		// cairn's own batch verifier and ed25519consensus's.
		own, ownCPU, err := floorCairnBatch(sigs)
		if err != nil {
			return err
		}
		c0 := processCPU()
		f := floorBatch(sigs)
		c1 := processCPU()
		fCPU := c1 - c0
		if d := time.Duration(float64(len(sigs)) / own * float64(time.Second)); d < f {
			f, fCPU = d, ownCPU
		}
		t0 := time.Now()
		if _, err := evidence.Verify(ctx, bytes.NewReader(data), evidence.VerifyOptions{Introductions: []string{w.intro}}); err != nil {
			return fmt.Errorf("evidence.Verify: %w", err)
		}
		if round >= 0 {
			floors, inProc = append(floors, f), append(inProc, time.Since(t0))
			floorCPUs, cpus = append(floorCPUs, fCPU), append(cpus, processCPU()-c1)
		}
	}
	f, m, v, p := median(floors), median(makes), median(verifies), median(inProc)
	line("floor_evidence", ms(f), "ms", 1, fmt.Sprintf("THE FLOOR the evidence figures' ratios are to: the %d signatures of the bundle's %d records (read in its documents, grants included), verified in batches of 64 on %d cores by the faster, each round, of cairn's own record.VerifyBatch and ed25519consensus's BatchVerifier, median of 5 (taken in turns with evidence_verify's)", len(sigs), records, runtime.GOMAXPROCS(0)))
	line("evidence_verify", ms(p), "ms", ms(f)/ms(p), fmt.Sprintf("evidence.Verify of a %d-package lock's bundle (%.0f KiB, %d records) from a cairn server, in this process, no network, median of 5 (goal ≥ 0.50: at most 2× the floor's time)", n, float64(len(data))/1024, records))
	line("evidence_verify_cpu", ms(median(cpus)), "ms", ms(median(floorCPUs))/ms(median(cpus)), fmt.Sprintf("the CPU time of evidence_verify's runs (user and system, every core), against the floor's own in the same turns (%.2f ms), medians of 5", ms(median(floorCPUs))))
	line("evidence_verify_cmd", ms(v), "ms", ms(f)/ms(v), "cairn evidence verify of the same bundle, a whole process, median of 3")
	line("evidence_make", ms(m), "ms", ms(f)/ms(m), fmt.Sprintf("cairn evidence of the same lock from the server (a light client's reads one by one, the records' proofs, the %d artifacts read for the SBOM's SHA-512), a whole process, median of 3", n))
	line("evidence_bytes", float64(len(data))/1024, "KiB", float64(5<<20)/float64(len(data)), "the bundle without blobs; ratio: the goal's 5 MiB ÷ the bundle (goal ≥ 1, the bundle ≤ 5 MiB)")
	return nil
}

// floorBatch verifies sigs with ed25519consensus in batches of 64 on
// every core and returns the time it took.
func floorBatch(sigs []gen.Sig) time.Duration {
	const batch = 64
	work := make(chan []gen.Sig)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range work {
				bv := ed25519consensus.NewPreallocatedBatchVerifier(len(chunk))
				for _, s := range chunk {
					bv.Add(s.Pub, s.Msg, s.Sig)
				}
				if !bv.Verify() {
					panic("floor: bad signature in a batch")
				}
			}
		}()
	}
	for i := 0; i < len(sigs); i += batch {
		work <- sigs[i:min(i+batch, len(sigs))]
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}
