package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hdevalence/ed25519consensus"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/evidence"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// evidencePackages is how many packages the evidence figures' lock holds.
const evidencePackages = 200

// benchEvidence: the evidence bundle of a 200-package lock against a
// server holding the large index — made by cairn evidence, verified by
// cairn evidence verify (a whole process, no network) and by
// evidence.Verify in this process — against the floor: the signatures of
// every record the bundle holds, verified by the fastest means this run
// has (ed25519consensus batches of 64 on every core), as verification
// must at least do.
func benchEvidence(ctx context.Context, cairn, work string, ix *gen.Index) error {
	work, err := filepath.Abs(filepath.Join(work, "evidence"))
	if err != nil {
		return err
	}
	os.MkdirAll(work, 0o755)
	keyFile := filepath.Join(work, "server.key")
	pub, err := keys.Generate(keyFile, "bench evidence server")
	if err != nil {
		return err
	}
	if _, err := author.Grant(ctx, ix.Repo, author.KeyGrant{Key: pub, Holder: "evidence-server", Scopes: []string{"checkpoint"}}, ix.Root); err != nil {
		return err
	}
	srv, url, err := startCairn(cairn, work, ix.Repo.Dir, keyFile)
	if err != nil {
		return err
	}
	defer stop(srv)

	versions := ix.Records / gen.RecordsPerVersion
	var spec strings.Builder
	fmt.Fprintf(&spec, "repositories:\n  - name: bench\n    url: %s\n    introduction: %s\npackages:\n", url, ix.Repo.Config.Introduction)
	for k := 0; k < evidencePackages; k++ {
		i := k * (versions / evidencePackages)
		fmt.Fprintf(&spec, "  ns%d/pkg%d: ^1.0\n", i%1000, i)
	}
	proj := filepath.Join(work, "project")
	os.MkdirAll(proj, 0o755)
	if err := os.WriteFile(filepath.Join(proj, "cairn.yaml"), []byte(spec.String()), 0o644); err != nil {
		return err
	}
	cache := filepath.Join(work, "cache")
	if out, err := exec.Command(cairn, "lock", "--dir", proj, "--cache", cache).CombinedOutput(); err != nil {
		return fmt.Errorf("cairn lock: %v\n%s", err, out)
	}

	bundle := filepath.Join(work, "plan.evidence")
	var makes, verifies, inProc []time.Duration
	for round := 0; round < 3; round++ {
		t0 := time.Now()
		if out, err := exec.Command(cairn, "evidence", "--dir", proj, "-o", bundle).CombinedOutput(); err != nil {
			return fmt.Errorf("cairn evidence: %v\n%s", err, out)
		}
		makes = append(makes, time.Since(t0))
		t0 = time.Now()
		if out, err := exec.Command(cairn, "evidence", "verify", bundle).CombinedOutput(); err != nil {
			return fmt.Errorf("cairn evidence verify: %v\n%s", err, out)
		}
		verifies = append(verifies, time.Since(t0))
	}
	data, err := os.ReadFile(bundle)
	if err != nil {
		return err
	}
	// Left for inspection (and profiling: perf record cairn evidence verify).
	os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(work)), "plan.evidence"), data, 0o644)
	for round := 0; round < 3; round++ {
		t0 := time.Now()
		if _, err := evidence.Verify(ctx, bytes.NewReader(data), evidence.VerifyOptions{}); err != nil {
			return fmt.Errorf("evidence.Verify: %w", err)
		}
		inProc = append(inProc, time.Since(t0))
	}

	// The floor: every record signature the bundle's documents hold.
	b, err := evidence.Read(bytes.NewReader(data), 0)
	if err != nil {
		return err
	}
	held := map[string]bool{}
	records := 0
	for name, body := range b.Files {
		if !strings.Contains(name, "/api/v1/log/subject/") {
			continue
		}
		var doc struct {
			Files []struct {
				Content []byte `json:"content"`
			} `json:"files"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, f := range doc.Files {
			if rec, err := record.Parse(f.Content); err == nil {
				records++
				for _, s := range rec.Signatures {
					held[string(s.Sig)] = true
				}
			}
		}
	}
	var sigs []gen.Sig
	for _, s := range ix.Sigs {
		if held[string(s.Sig)] {
			sigs = append(sigs, s)
		}
	}
	var floors []time.Duration
	for round := 0; round < 3; round++ {
		floors = append(floors, floorBatch(sigs))
	}
	f, m, v, p := median(floors), median(makes), median(verifies), median(inProc)
	line("floor_evidence", ms(f), "ms", 1, fmt.Sprintf("THE FLOOR the evidence figures' ratios are to: the %d signatures (of the bundle's %d records) that the generator made, verified by ed25519consensus in batches of 64 on %d cores, median of 3", len(sigs), records, runtime.GOMAXPROCS(0)))
	line("evidence_verify", ms(p), "ms", ms(p)/ms(f), fmt.Sprintf("evidence.Verify of a %d-package lock's bundle (%.0f KiB, %d records) from the %d-record server, in this process, no network, median of 3 (goal ≤ 2)", evidencePackages, float64(len(data))/1024, records, ix.Records))
	line("evidence_verify_cmd", ms(v), "ms", ms(v)/ms(f), "cairn evidence verify of the same bundle, a whole process, median of 3")
	line("evidence_make", ms(m), "ms", ms(m)/ms(f), fmt.Sprintf("cairn evidence of the same lock from the server (a light client's reads, one by one, and %d record proofs), a whole process, median of 3", records))
	line("evidence_bytes", float64(len(data))/1024, "KiB", float64(len(data))/(5<<20), "the bundle without blobs; ratio to the goal's 5 MiB (goal ≤ 1)")
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
