// Command cairnbench measures cairn against the floor of the same run and
// prints one line per figure: NAME VALUE UNIT RATIO-TO-FLOOR [note].
//
//	cairnbench [verify|publish|serve|plan|certify|proof|light|evidence|goproxy|replicas|s3]...   (default: all groups)
//	BENCH_RECORDS=N                  size of the large index (default 100000)
//	CAIRN=path                       the cairn binary for whole-command figures
//	WEED=path                        SeaweedFS's weed binary, for the s3 group
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
	"syscall"
	"time"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/translog"
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
		groups = []string{"verify", "publish", "serve", "plan", "certify", "proof", "light", "evidence", "goproxy", "replicas", "s3"}
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
	if slices.ContainsFunc(groups, func(g string) bool {
		return g == "verify" || g == "publish" || g == "serve" || g == "light"
	}) {
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
			if err := benchPublish(ctx, cairn, work, smallIx, bigIx); err != nil {
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
		case "proof":
			if err := benchProof(work); err != nil {
				return err
			}
		case "light":
			if err := benchLight(ctx, cairn, work, bigIx); err != nil {
				return err
			}
		case "evidence":
			if err := benchEvidence(ctx, cairn, work); err != nil {
				return err
			}
		case "goproxy":
			if err := benchGoproxy(ctx, cairn, work); err != nil {
				return err
			}
		case "replicas":
			if err := benchReplicas(cairn, work); err != nil {
				return err
			}
		case "s3":
			if err := benchS3Install(ctx, cairn, work); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown group %q (want verify, publish, serve, plan, certify, proof, light, evidence, goproxy, replicas or s3; or lock, decision or install of plan)", g)
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

// processCPU returns the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

	if err := benchVerifyLog(ctx, bigIx); err != nil {
		return err
	}

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

func benchPublish(ctx context.Context, cairn, work string, smallIx, bigIx *gen.Index) error {
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	// pub publishes 21 versions into ix, each followed by the floor: the
	// files of a generated version (a descriptor and its authored record,
	// as a publish adds) written as one commit with plain git on a side
	// ref, and the same 1 MiB artifact written to a file and synced.
	pub := func(ix *gen.Index, tag string) (ours, floor time.Duration, err error) {
		r, err := index.Open(ctx, ix.Repo.Dir)
		if err != nil {
			return 0, 0, err
		}
		defer r.Close()
		defer ix.Close()
		if _, err := r.Verify(ctx, false); err != nil { // what is new since generation
			return 0, 0, err
		}
		blobs := filepath.Join(work, "floor-blobs-"+tag)
		os.MkdirAll(blobs, 0o755)
		var ds, fs []time.Duration
		for i := 0; i < 21; i++ {
			dir := filepath.Join(work, fmt.Sprintf("pkg-%s-%d", tag, i))
			os.MkdirAll(dir, 0o755)
			rand.Read(payload[:64])
			os.WriteFile(filepath.Join(dir, "src.tar.gz"), payload, 0o644)
			os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(fmt.Sprintf("name: bench/pkg-%s-%d\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n", tag, i)), 0o644)
			lg, err := r.LogOf(r.Main())
			if err != nil {
				return 0, 0, err
			}
			before := lg.Size()
			start := time.Now()
			p, err := author.Publish(ctx, r, dir, ix.Publisher)
			if err != nil {
				return 0, 0, err
			}
			ds = append(ds, time.Since(start))
			// The log must have grown by the publish's files, durably, or
			// the figure is not the one the issue asks for.
			if lg, err = r.LogOf(r.Main()); err != nil {
				return 0, 0, err
			}
			if lg.Head() != p.Commit || lg.Size() != before+int64(len(p.Paths))+1 {
				return 0, 0, fmt.Errorf("publish %s: main's log is at %.12s with %d leaves, want %.12s with %d (the files and the map leaf): the publish did not append the log", tag, lg.Head(), lg.Size(), p.Commit, before+int64(len(p.Paths))+1)
			}

			files, err := ix.Version()
			if err != nil {
				return 0, 0, err
			}
			rand.Read(payload[:64])
			start = time.Now()
			if err := writeSynced(filepath.Join(blobs, fmt.Sprint(i)), payload); err != nil {
				return 0, 0, err
			}
			if _, err := ix.RawCommit(ctx, p.Commit, files[:2]); err != nil {
				return 0, 0, err
			}
			fs = append(fs, time.Since(start))
		}
		return median(ds), median(fs), nil
	}
	ps, _, err := pub(smallIx, "small")
	if err != nil {
		return err
	}
	pb, fb, err := pub(bigIx, "big")
	if err != nil {
		return err
	}
	// The log's share, measured alone: a log of the same size on the same
	// disk, two entries appended and committed durably, 21 times.
	lg, err := bigIx.Repo.LogOf(bigIx.Repo.Main())
	if err != nil {
		return err
	}
	logAlone, err := logCommitAlone(filepath.Join(work, "publish-log"), lg.Size())
	if err != nil {
		return err
	}
	cmd, err := publishCommand(ctx, cairn, work, bigIx)
	if err != nil {
		return err
	}
	line("floor_publish", ms(fb), "ms", 1, fmt.Sprintf("plain git: a descriptor and a record committed on a side ref of the %d-record index (one pack, tree grown on the path, update-ref) + the 1 MiB artifact written and synced, median of 21", bigIx.Records))
	line("publish", ms(pb), "ms", ms(pb)/ms(fb), fmt.Sprintf("median of 21 publishes (descriptor, authored record, one 1 MiB blob) into the %d-record index, its log appended and committed durably (that alone, on a log of the same %d leaves on the same disk: %.1f ms); ratio to the floor (goal ≤ 20 ms)", bigIx.Records, lg.Size(), ms(logAlone)))
	line("publish_scaling", ms(pb), "ms", ms(pb)/ms(ps), fmt.Sprintf("the same; ratio to the %d-record index (%.1f ms) (goal ≤ 1.2)", smallIx.Records, ms(ps)))
	line("publish_command", ms(cmd), "ms", ms(cmd)/ms(fb), fmt.Sprintf("cairn publish DIR --repo --key as a process, the same package shape into the %d-record index (start, open, verify what is new, load the log's map, publish), median of 11; ratio to the floor", bigIx.Records))
	return nil
}

// publishCommand returns the median wall time of `cairn publish` run as
// a process into ix, 11 times, with a key of its own granted publish:*.
func publishCommand(ctx context.Context, cairn, work string, ix *gen.Index) (time.Duration, error) {
	keyFile := filepath.Join(work, "publish-command.key")
	if _, err := keys.Generate(keyFile, "bench publish command"); err != nil {
		return 0, err
	}
	s, err := keys.LoadPrivate(keyFile)
	if err != nil {
		return 0, err
	}
	r, err := index.Open(ctx, ix.Repo.Dir)
	if err != nil {
		return 0, err
	}
	_, err = author.Grant(ctx, r, author.KeyGrant{Key: s.Public(), Holder: "publish command", Scopes: []string{"publish:*"}}, ix.Root)
	r.Close()
	if err != nil {
		return 0, err
	}
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	var ds []time.Duration
	for i := 0; i < 11; i++ {
		dir := filepath.Join(work, fmt.Sprintf("pkg-command-%d", i))
		os.MkdirAll(dir, 0o755)
		rand.Read(payload[:64])
		os.WriteFile(filepath.Join(dir, "src.tar.gz"), payload, 0o644)
		os.WriteFile(filepath.Join(dir, "cairn-package.yaml"), []byte(fmt.Sprintf("name: bench/pkg-command-%d\nversion: 1.0.0\nartifacts:\n  - kind: source\n    file: src.tar.gz\n", i)), 0o644)
		start := time.Now()
		out, err := exec.CommandContext(ctx, cairn, "publish", "--repo", ix.Repo.Dir, "--key", keyFile, dir).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("cairn publish %s: %v\n%s", dir, err, out)
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds), nil
}

// logCommitAlone returns the median time of appending a publish's two
// files to a log of size leaves and committing it, 21 times.
func logCommitAlone(dir string, size int64) (time.Duration, error) {
	s, err := newSynthLog()
	if err != nil {
		return 0, err
	}
	st, err := s.build(dir, int(size))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	t := time.Now().Unix()
	var ds []time.Duration
	for i := 0; i < 21; i++ {
		commit, paths, data := s.version(int(st.Size()) + i) // not a version build wrote
		start := time.Now()
		es := []translog.Entry{translog.NewEntry(commit, t, paths[0], data[0]), translog.NewEntry(commit, t, paths[1], data[1])}
		if _, err := st.AppendCommit(commit, t, es); err != nil {
			return 0, err
		}
		if err := st.Commit(commit); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds), nil
}

// writeSynced writes data to a temporary file, syncs it and renames it to
// file, as a blob store does.
func writeSynced(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// benchVerifyLog: a full verification that computes the transparency log
// (each file hashed, appended, its tiles written and synced) and then its
// map, against the same replay of the rules without them (the replay a
// server runs on a push, CheckUpdate, with the clock check opened wide),
// alternating, in this process.
func benchVerifyLog(ctx context.Context, ix *gen.Index) error {
	r, err := index.Open(ctx, ix.Repo.Dir)
	if err != nil {
		return err
	}
	defer r.Close()
	head, err := r.Head(ctx, index.MainRef)
	if err != nil {
		return err
	}
	const wide = 100 * 365 * 24 * time.Hour // generated commits are dated when generated
	var without, with, maps, cpuWithout, cpuWith []time.Duration
	var files, commits, leaves int64
	var subjects int
	for i := 0; i < 5; i++ {
		runtime.GC()
		t, c := time.Now(), processCPU()
		res, err := r.CheckUpdate(ctx, "", head, time.Now(), wide)
		if err != nil {
			return err
		}
		without, cpuWithout = append(without, time.Since(t)), append(cpuWithout, processCPU()-c)
		files, commits = int64(res.Records), int64(res.Commits)

		runtime.GC()
		t, c = time.Now(), processCPU()
		if _, err := r.Verify(ctx, true); err != nil {
			return err
		}
		st, err := r.StoreOf(r.Main())
		if err != nil {
			return err
		}
		tm := time.Now()
		m, err := st.Map()
		if err != nil {
			return err
		}
		with, maps, cpuWith = append(with, time.Since(t)), append(maps, time.Since(tm)), append(cpuWith, processCPU()-c)
		leaves, subjects = m.Size, m.Map.Len()
	}
	if leaves != files+commits {
		return fmt.Errorf("the log has %d leaves, but the replay checked %d files in %d commits (a leaf each, and a map leaf per commit)", leaves, files, commits)
	}
	// One more run, for the note only (progress costs a git count): how
	// long the log's commit, its install and the marker take once the
	// last commit passed the rules.
	l := r.Main()
	var replayed time.Time
	l.Progress = func(p index.Progress) { replayed = time.Now() }
	if _, err := r.VerifyLine(ctx, l, true); err != nil {
		return err
	}
	tail := time.Since(replayed)
	wo, w := median(without), median(with)
	rate := func(d time.Duration) float64 { return float64(ix.Records) / d.Seconds() }
	line("floor_verify_nolog", rate(wo), "records/s", 1, fmt.Sprintf("the same full replay of the rules with no log (index.CheckUpdate from the introduction), %d records, %d files, median of 5 (%.0f ms)", ix.Records, files, ms(wo)))
	line("verify_full_log", rate(w), "records/s", wo.Seconds()/w.Seconds(), fmt.Sprintf("full verify computing the log (%d leaves, a map leaf per commit) and its map (%d subjects; asked for after: %.0f ms), the log kept checked leaf by leaf and tile by tile against it (not written again), alternating with the floor, median of 5 (%.0f ms, of which %.0f ms after the last commit's rules: log commit, marker; CPU %.0f ms against %.0f ms: %.2f) (goal ≥ 0.90)", leaves, subjects, ms(median(maps)), ms(w), ms(tail), ms(median(cpuWith)), ms(median(cpuWithout)), median(cpuWithout).Seconds()/median(cpuWith).Seconds()))

	// A replica's first full verification: no log kept, so every tile is
	// written and synced (the log removed before each run, untimed).
	var fresh, floors []time.Duration
	for i := 0; i < 3; i++ {
		runtime.GC()
		t := time.Now()
		if _, err := r.CheckUpdate(ctx, "", head, time.Now(), wide); err != nil {
			return err
		}
		floors = append(floors, time.Since(t))
		if err := os.RemoveAll(l.LogDir()); err != nil {
			return err
		}
		runtime.GC()
		t = time.Now()
		if _, err := r.Verify(ctx, true); err != nil {
			return err
		}
		fresh = append(fresh, time.Since(t))
	}
	line("verify_full_log_new", rate(median(fresh)), "records/s", median(floors).Seconds()/median(fresh).Seconds(), fmt.Sprintf("the same with no log kept (a new replica's first full verify): every tile written and synced; alternating with the floor, median of 3 (%.0f ms; floor %.0f ms)", ms(median(fresh)), ms(median(floors))))
	return nil
}
