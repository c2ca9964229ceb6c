package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"cairn.dev/cairn/bench/gen"
	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/keys"
)

// benchPullCold: a new replica's first pull of the whole large index from
// cairn serve (checkpoint, fetch, verify from the introduction, log,
// refs), against its floor: git clone --bare of the same server's
// /index.git (no verification at all), alternating, median of 3. The CPU
// of each whole process tree (git children included) is reported too, as
// wall time is noisy on a shared machine.
func benchPullCold(ctx context.Context, cairn, work string, ix *gen.Index) error {
	work, err := filepath.Abs(filepath.Join(work, "pull"))
	if err != nil {
		return err
	}
	os.MkdirAll(work, 0o755)
	keyFile := filepath.Join(work, "server.key")
	pub, err := keys.Generate(keyFile, "bench pull server")
	if err != nil {
		return err
	}
	if _, err := author.Grant(ctx, ix.Repo, author.KeyGrant{Key: pub, Holder: "pull-server", Scopes: []string{"checkpoint"}}, ix.Root); err != nil {
		return err
	}
	srv, url, err := startCairn(cairn, work, ix.Repo.Dir, keyFile)
	if err != nil {
		return err
	}
	defer stop(srv)
	intro := ix.Repo.Config.Introduction
	// run times one command and its CPU (user+sys of it and its children).
	run := func(name string, args ...string) (time.Duration, time.Duration, error) {
		cmd := exec.Command(name, args...)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			return 0, 0, fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
		return d, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
	}
	var floors, ours, floorCPU, ourCPU []time.Duration
	for round := 0; round < 3; round++ {
		bare := filepath.Join(work, fmt.Sprintf("clone%d.git", round))
		d, c, err := run("git", "clone", "-q", "--bare", url+"/index.git", bare)
		if err != nil {
			return err
		}
		floors, floorCPU = append(floors, d), append(floorCPU, c)
		os.RemoveAll(bare)
		replica := filepath.Join(work, fmt.Sprintf("replica%d", round))
		if _, _, err := run(cairn, "remote", "add", "origin", url, "--introduction", intro, "--repo", replica); err != nil {
			return err
		}
		d, c, err = run(cairn, "pull", "origin", "--repo", replica)
		if err != nil {
			return err
		}
		ours, ourCPU = append(ours, d), append(ourCPU, c)
		os.RemoveAll(replica)
	}
	f, o := median(floors), median(ours)
	line("floor_clone", ms(f), "ms", 1, fmt.Sprintf("THE FLOOR of pull_cold: git clone --bare of the same server's /index.git (%d records, nothing verified), %.0f ms of CPU, median of 3", ix.Records, ms(median(floorCPU))))
	line("pull_cold", ms(o), "ms", ms(f)/ms(o), fmt.Sprintf("cairn pull into an empty replica (checkpoint, fetch, verify every commit from the introduction, log, refs), alternating with the floor, %.0f ms of CPU (%.2f× the floor's), median of 3 (goal ≥ 0.77: at most 1.3× the floor's time)", ms(median(ourCPU)), ms(median(ourCPU))/ms(median(floorCPU))))
	return nil
}
