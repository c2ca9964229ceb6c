package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/keys"
)

// lightPackages is how many packages the light_lock figure locks.
const lightPackages = 200

// lightRounds is how many times light_lock and its floors are run, in
// turns: a run takes tens of milliseconds, and one in three or four
// lands on a moment the two cores are busy with something else (the
// server's collector, the kernel's write-back), so the median of three
// moved by a fifth between runs of the group.
const lightRounds = 9

// traffic is what a server did: requests, response bytes and the time
// spent in its handlers (summed over requests), read from its Prometheus
// metrics (the metrics scrapes themselves left out).
type traffic struct{ requests, bytes, seconds float64 }

var metricRE = regexp.MustCompile(`^(cairn_http_requests_total|cairn_http_response_bytes_total|cairn_http_request_duration_seconds_sum)\{([^}]*)\} ([0-9.e+-]+)$`)

func scrape(url string) (traffic, error) {
	body, err := httpGet(url + "/metrics")
	if err != nil {
		return traffic{}, err
	}
	var t traffic
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		m := metricRE.FindStringSubmatch(sc.Text())
		if m == nil || strings.Contains(m[2], `route="metrics"`) {
			continue
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		switch m[1] {
		case "cairn_http_requests_total":
			t.requests += v
		case "cairn_http_response_bytes_total":
			t.bytes += v
		default:
			t.seconds += v
		}
	}
	return t, sc.Err()
}

// measured runs f and returns its wall time and the server's traffic
// during it.
func measured(url string, f func() error) (time.Duration, traffic, error) {
	before, err := scrape(url)
	if err != nil {
		return 0, traffic{}, err
	}
	t := time.Now()
	if err := f(); err != nil {
		return 0, traffic{}, err
	}
	d := time.Since(t)
	after, err := scrape(url)
	if err != nil {
		return 0, traffic{}, err
	}
	return d, traffic{after.requests - before.requests, after.bytes - before.bytes, after.seconds - before.seconds}, nil
}

// hasReplica reports whether dir holds a git repository (a replica).
func hasReplica(dir string) bool {
	found := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasSuffix(d.Name(), ".git") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// benchLight: cairn lock of 200 packages from a server holding the large
// index, with no replica (the light client: per-package reads with their
// proofs, checkpoint, keys), against fetching the same 200 package
// documents with no proofs — by a curl process (the floor of the ratio:
// a whole process, as cairn lock is) and, for reference, in this process
// — and against a full cairn pull of the server.
func benchLight(ctx context.Context, cairn, work string, ix *gen.Index) error {
	work, err := filepath.Abs(filepath.Join(work, "light"))
	if err != nil {
		return err
	}
	os.MkdirAll(work, 0o755)
	keyFile := filepath.Join(work, "server.key")
	pub, err := keys.Generate(keyFile, "bench light server")
	if err != nil {
		return err
	}
	if _, err := author.Grant(ctx, ix.Repo, author.KeyGrant{Key: pub, Holder: "light-server", Scopes: []string{"checkpoint"}}, ix.Root); err != nil {
		return err
	}
	srv, url, err := startCairn(cairn, work, ix.Repo.Dir, keyFile)
	if err != nil {
		return err
	}
	defer stop(srv)

	// 200 packages spread over the index.
	versions := ix.Records / gen.RecordsPerVersion
	var names []string
	var spec strings.Builder
	fmt.Fprintf(&spec, "repositories:\n  - name: bench\n    url: %s\n    introduction: %s\n    light: true\npackages:\n", url, ix.Repo.Config.Introduction)
	for k := 0; k < lightPackages; k++ {
		i := k * (versions / lightPackages)
		name := fmt.Sprintf("ns%d/pkg%d", i%1000, i)
		names = append(names, name)
		fmt.Fprintf(&spec, "  %s: ^1.0\n", name)
	}
	proj := filepath.Join(work, "project")
	os.MkdirAll(proj, 0o755)
	if err := os.WriteFile(filepath.Join(proj, "cairn.yaml"), []byte(spec.String()), 0o644); err != nil {
		return err
	}
	// The server verifies and signs on its first reads: warm it up.
	for _, p := range []string{"/log/checkpoint", "/api/v1/packages/" + names[0]} {
		httpGet(url + p)
	}

	// The floor: the 200 package documents, 8 at a time, no proofs.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	fetchAll := func() error {
		work := make(chan string)
		errs := make(chan error, len(names))
		var wg sync.WaitGroup
		for j := 0; j < 8; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range work {
					resp, err := client.Get(url + "/api/v1/packages/" + n)
					if err != nil {
						errs <- err
						continue
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET /api/v1/packages/%s: %s", n, resp.Status)
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		for _, n := range names {
			work <- n
		}
		close(work)
		wg.Wait()
		close(errs)
		return <-errs
	}

	// The floor the ratio is to: a whole process too (cairn lock is one),
	// curl fetching the same documents, 8 at a time over keep-alive
	// connections, as the in-process floor does.
	curlCfg := filepath.Join(work, "curl.cfg")
	var cfg strings.Builder
	for _, n := range names {
		fmt.Fprintf(&cfg, "url = \"%s/api/v1/packages/%s\"\noutput = \"/dev/null\"\n", url, n)
	}
	if err := os.WriteFile(curlCfg, []byte(cfg.String()), 0o644); err != nil {
		return err
	}
	var curlCPU []time.Duration
	curlAll := func() error {
		cmd := exec.Command("curl", "--silent", "--show-error", "--no-progress-meter", "--fail", "--parallel", "--parallel-max", "8", "--config", curlCfg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("curl: %v\n%s", err, out)
		}
		curlCPU = append(curlCPU, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		return nil
	}

	// The client's CPU, the kernel's part of it and its minor page faults
	// (fresh memory: on some virtual machines a fault costs tens of µs).
	var locks, floors, curls, lockCPU, lockSys, starts []time.Duration
	var lockFaults []float64
	var lockT, floorT, curlT traffic
	replica := false
	for round := 0; round < lightRounds; round++ {
		settled(srv)
		d, t, err := measured(url, fetchAll)
		if err != nil {
			return err
		}
		floors, floorT = append(floors, d), t
		settled(srv)
		if d, t, err = measured(url, curlAll); err != nil {
			return err
		}
		curls, curlT = append(curls, d), t
		cache := filepath.Join(work, fmt.Sprintf("cache%d", round))
		var cpu, sys time.Duration
		var faults float64
		settled(srv)
		d, t, err = measured(url, func() error {
			cmd := exec.Command(cairn, "lock", "--dir", proj, "--cache", cache)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("cairn lock: %v\n%s", err, out)
			}
			cpu, sys = cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime(), cmd.ProcessState.SystemTime()
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				faults = float64(ru.Minflt)
			}
			return nil
		})
		if err != nil {
			return err
		}
		locks, lockT, lockCPU, lockSys, lockFaults = append(locks, d), t, append(lockCPU, cpu), append(lockSys, sys), append(lockFaults, faults)
		// What any cairn command costs before it reads anything (the
		// process, the runtime, package initialisation), which the
		// floor's in-process client does not pay.
		t0 := time.Now()
		if out, err := exec.Command(cairn, "version").CombinedOutput(); err != nil {
			return fmt.Errorf("cairn version: %v\n%s", err, out)
		}
		starts = append(starts, time.Since(t0))
		replica = replica || hasReplica(cache)
		os.RemoveAll(cache)
	}

	// A full replica of the same server: cairn pull into an empty one.
	full := filepath.Join(work, "replica")
	if out, err := exec.Command(cairn, "remote", "add", "origin", url, "--introduction", ix.Repo.Config.Introduction, "--repo", full).CombinedOutput(); err != nil {
		return fmt.Errorf("cairn remote add: %v\n%s", err, out)
	}
	pd, pt, err := measured(url, func() error {
		if out, err := exec.Command(cairn, "pull", "origin", "--repo", full).CombinedOutput(); err != nil {
			return fmt.Errorf("cairn pull: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	os.RemoveAll(full)

	f, c, l := median(floors), median(curls), median(locks)
	kib := func(t traffic) float64 { return t.bytes / 1024 }
	line("floor_light_curl", ms(c), "ms", 1, fmt.Sprintf("THE FLOOR light_lock's ratio is to: the same %d package documents from /api/v1/packages/, no proofs, by one curl process (--parallel --parallel-max 8, keep-alive), each run (the floors' and cairn's) once the server has been idle for 100 ms: %.0f requests, %.0f KiB, %.0f ms in the server's handlers, %.0f ms of curl's CPU, median of %d", lightPackages, curlT.requests, kib(curlT), curlT.seconds*1000, ms(median(curlCPU)), lightRounds))
	line("floor_light_fetch", ms(f), "ms", ms(c)/ms(f), fmt.Sprintf("a second reference: the same documents fetched in this process (no process start), Go client, 8 at a time: %.0f requests, %.0f KiB, %.0f ms in the server's handlers, median of %d", floorT.requests, kib(floorT), floorT.seconds*1000, lightRounds))
	line("pull_full", ms(pd), "ms", ms(c)/ms(pd), fmt.Sprintf("cairn pull of the whole %d-record index into an empty replica: %.0f requests, %.0f KiB", ix.Records, pt.requests, kib(pt)))
	name, note := "light_lock", ""
	if replica {
		name, note = "lock_replica", "NOT LIGHT: cairn lock made a git replica in its cache (the light client is not in cairn lock yet); "
	}
	line(name, ms(l), "ms", ms(c)/ms(l), fmt.Sprintf("%scairn lock of %d packages from the %d-record server, empty cache, the project's cairn.lock current after the first round (compared, not written again, as cargo leaves a Cargo.lock), ratio: floor_light_curl's time ÷ ours (in-process floor_light_fetch's ÷ ours: %.2f): %.0f requests, %.0f KiB (%.2f× the floor's bytes), %.0f ms in the server's handlers, %.0f ms of the client's CPU (%.0f ms of it in the kernel, %.0f minor page faults), %.2f× the pull's time (cairn version alone: %.0f ms), median of %d (goal ≥ 0.67: at most 1.5× the floor's time; < 2000 ms)", note, lightPackages, ix.Records, ms(f)/ms(l), lockT.requests, kib(lockT), lockT.bytes/curlT.bytes, lockT.seconds*1000, ms(median(lockCPU)), ms(median(lockSys)), medianF(lockFaults), ms(l)/ms(pd), ms(median(starts)), lightRounds))
	return nil
}
