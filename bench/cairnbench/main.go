// Command cairnbench measures cairn against the floor of the same run and
// prints one line per figure: NAME VALUE UNIT RATIO-TO-FLOOR [note].
//
//	cairnbench [verify|publish|serve|plan]...   (default: all groups)
//	BENCH_RECORDS=N                  size of the large index (default 100000)
//	CAIRN=path                       the cairn binary for whole-command figures
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
)

const small = 1000

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cairnbench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	big := 100_000
	if s := os.Getenv("BENCH_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < small {
			return fmt.Errorf("BENCH_RECORDS=%q: want a number ≥ %d", s, small)
		}
		big = n
	}
	groups := os.Args[1:]
	if len(groups) == 0 {
		groups = []string{"verify", "publish", "serve", "plan", "certify"}
	}
	cairn := os.Getenv("CAIRN")
	if cairn == "" {
		return fmt.Errorf("set CAIRN to the cairn binary (bench/run does)")
	}
	os.MkdirAll("bench/out", 0o755)
	work, err := os.MkdirTemp("bench/out", "run-") // not /tmp: file creation there is slow on some machines
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// The large indexes, for the groups that read them.
	var smallIx, bigIx *gen.Index
	if slices.ContainsFunc(groups, func(g string) bool { return g == "verify" || g == "publish" || g == "serve" }) {
		t0 := time.Now()
		if smallIx, err = gen.Build(ctx, filepath.Join(work, "small"), small, false); err != nil {
			return err
		}
		if bigIx, err = gen.Build(ctx, filepath.Join(work, "big"), big, slices.Contains(groups, "verify")); err != nil {
			return err
		}
		fmt.Printf("# indexes: %d and %d signed records, generated in %s\n", smallIx.Records, bigIx.Records, time.Since(t0).Round(time.Millisecond))
	}
	fmt.Printf("# %d cores\n", runtime.GOMAXPROCS(0))

	for _, g := range groups {
		switch g {
		case "verify":
			if err := benchVerify(ctx, cairn, smallIx, bigIx); err != nil {
				return err
			}
		case "publish":
			if err := benchPublish(ctx, work, smallIx, bigIx); err != nil {
				return err
			}
		case "serve":
			if err := benchServe(ctx, cairn, work, bigIx); err != nil {
				return err
			}
		case "plan":
			if err := benchPlan(ctx, cairn, work); err != nil {
				return err
			}
		case "lock": // the plan group's figures, one at a time
			if err := benchLock(ctx, cairn, work); err != nil {
				return err
			}
		case "decision":
			if err := benchDecision(ctx, work); err != nil {
				return err
			}
		case "install":
			if err := benchInstall(ctx, cairn, work); err != nil {
				return err
			}
		case "certify":
			if err := benchCertify(cairn, work); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown group %q (want verify, publish, serve, plan or certify; or lock, decision or install of plan)", g)
		}
	}
	return nil
}

func line(name string, value float64, unit string, ratio float64, note string) {
	fmt.Printf("%-20s %10.2f %-10s %6.2f  %s\n", name, value, unit, ratio, note)
}

// floorVerify verifies every signature of the index with raw ed25519 on
// all cores, and returns signatures per second.
func floorVerify(sigs []gen.Sig) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(sigs) {
					return
				}
				if !ed25519.Verify(sigs[i].Pub, sigs[i].Msg, sigs[i].Sig) {
					panic("floor: bad signature")
				}
			}
		}()
	}
	wg.Wait()
	return float64(len(sigs)) / time.Since(start).Seconds()
}

// cairnVerify runs `cairn verify --json` with args and returns its wall
// time and the peak RSS (MiB) it reports of itself. (A child's rusage is
// no use here: on Linux it starts at the parent's RSS at fork.)
func cairnVerify(cairn string, args ...string) (time.Duration, float64, error) {
	cmd := exec.Command(cairn, append([]string{"verify", "--json"}, args...)...)
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("cairn verify %v: %v\n%s", args, err, out)
	}
	var res struct {
		PeakRSS float64 `json:"peak_rss_mib"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, 0, err
	}
	return d, res.PeakRSS, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchVerify(ctx context.Context, cairn string, smallIx, bigIx *gen.Index) error {
	// The machine's speed drifts (shared cores): measure the floor right
	// before each run, and compare medians.
	var floors []float64
	var walls []time.Duration
	var rss float64
	for i := 0; i < 5; i++ {
		floors = append(floors, floorVerify(bigIx.Sigs))
		d, r, err := cairnVerify(cairn, "--full", "--repo", bigIx.Repo.Dir)
		if err != nil {
			return err
		}
		walls, rss = append(walls, d), max(rss, r)
	}
	slices.Sort(floors)
	floor := floors[len(floors)/2]
	line("floor_ed25519", floor, "sigs/s", 1, fmt.Sprintf("raw ed25519.Verify of the same %d signatures on all cores, median of 5 (%.0f–%.0f)", len(bigIx.Sigs), floors[0], floors[len(floors)-1]))
	rate := float64(bigIx.Records) / median(walls).Seconds()
	line("verify_full", rate, "records/s", rate/floor, fmt.Sprintf("cairn verify --full, %d records, median of 5, each run right after a floor run (goal ≥ 0.70)", bigIx.Records))

	_, smallRSS, err := cairnVerify(cairn, "--full", "--repo", smallIx.Repo.Dir)
	if err != nil {
		return err
	}
	line("verify_peak_rss", rss, "MiB", rss/smallRSS, fmt.Sprintf("peak RSS of cairn verify --full on %d records; ratio to the %d-record index (%.1f MiB)", bigIx.Records, smallIx.Records, smallRSS))

	inc := func(ix *gen.Index) (time.Duration, error) {
		var ds []time.Duration
		for i := 0; i < 5; i++ {
			if err := ix.Add(ctx, 100); err != nil {
				return 0, err
			}
			r, err := index.Open(ctx, ix.Repo.Dir)
			if err != nil {
				return 0, err
			}
			start := time.Now()
			res, err := r.Verify(ctx, false)
			ds = append(ds, time.Since(start))
			r.Close()
			if err != nil {
				return 0, err
			}
			if res.Records < 100 {
				return 0, fmt.Errorf("incremental verify checked %d files, want ≥ 100", res.Records)
			}
		}
		return median(ds), nil
	}
	// Both indexes were fully verified above, so only the new records are checked.
	ds, err := inc(smallIx)
	if err != nil {
		return err
	}
	db, err := inc(bigIx)
	if err != nil {
		return err
	}
	line("verify_incremental", ms(db), "ms", ms(db)/ms(ds), fmt.Sprintf("100 new records on the %d-record index; ratio to the %d-record index (%.1f ms) (goal ≤ 1.2, < 100 ms)", bigIx.Records, smallIx.Records, ms(ds)))
	return nil
}

func benchPublish(ctx context.Context, work string, smallIx, bigIx *gen.Index) error {
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	pub := func(ix *gen.Index, tag string) (time.Duration, error) {
		r, err := index.Open(ctx, ix.Repo.Dir)
		if err != nil {
			return 0, err
		}
		defer r.Close()
		if _, err := r.Verify(ctx, false); err != nil { // what is new since generation
			return 0, err
		}
		var ds []time.Duration
		for i := 0; i < 21; i++ {
			dir := filepath.Join(work, fmt.Sprintf("pkg-%s-%d", tag, i))
			os.MkdirAll(dir, 0o755)
			rand.Read(payload[:64])
			os.WriteFile(filepath.Join(dir, "src.tar.gz"), payload, 0o644)
			os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(fmt.Sprintf("name: bench/pkg-%s-%d\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n", tag, i)), 0o644)
			start := time.Now()
			if _, err := author.Publish(ctx, r, dir, ix.Publisher); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(start))
		}
		return median(ds), nil
	}
	ps, err := pub(smallIx, "small")
	if err != nil {
		return err
	}
	pb, err := pub(bigIx, "big")
	if err != nil {
		return err
	}
	line("publish", ms(pb), "ms", ms(pb)/ms(ps), fmt.Sprintf("median of 21 publishes (descriptor, authored record, one 1 MiB blob) into the %d-record index; ratio to the %d-record index (%.1f ms) (goal ≤ 20 ms, ≤ 1.2)", bigIx.Records, smallIx.Records, ms(ps)))
	return nil
}
