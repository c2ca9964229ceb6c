package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	_ "gocloud.dev/blob/s3blob" // the repository's blobs are on S3

	"cairn.dev/cairn/internal/plan"
)

// The identity the bench's SeaweedFS accepts, for cairn (through the
// environment, as a user gives it) and for curl's SigV4.
const (
	s3Key    = "cairn-bench"
	s3Secret = "cairn-bench-secret"
)

// benchS3Install: `cairn install` of the 200-package plan whose blobs
// are on SeaweedFS's S3 (the repository made with --blobs s3://…; cairn
// serve answers each artifact with a redirect to a URL the store signs,
// and the client reads it there, verifying every byte), against the
// floor: the same objects fetched from the same S3 by 8 parallel curl
// processes signing their requests (--aws-sigv4), each checked by
// sha256sum. WEED is the weed binary (bench/run builds it with
// scripts/seaweedfs --build).
func benchS3Install(ctx context.Context, cairn, work string) error {
	weed := os.Getenv("WEED")
	if weed == "" {
		return fmt.Errorf("the s3 group needs SeaweedFS: set WEED to the weed binary (bench/run does, building it with scripts/seaweedfs --build)")
	}
	work, err := filepath.Abs(filepath.Join(work, "s3"))
	if err != nil {
		return err
	}
	endpoint, stopWeed, err := startWeed(weed, work)
	if err != nil {
		return err
	}
	defer stopWeed()
	os.Setenv("AWS_ACCESS_KEY_ID", s3Key) // for this process (the publisher) and cairn serve's
	os.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	bucket := "cairn-bench"
	if err := s3Curl(endpoint, "-X", "PUT", endpoint+"/"+bucket); err != nil {
		return fmt.Errorf("creating bucket %s: %w", bucket, err)
	}
	blobs := "s3://" + bucket + "?endpoint=" + endpoint + "&region=us-east-1&use_path_style=true&disable_https=true"

	const n, size = 200, 5 << 20
	w, err := newPlanWorldOn(ctx, work, blobs)
	if err != nil {
		return err
	}
	defer w.repo.Close()
	for i := 0; i < n; i++ {
		if err := w.publish(ctx, i, size, nil); err != nil {
			return err
		}
	}
	srv, url, err := w.serve(ctx, cairn)
	if err != nil {
		return err
	}
	defer stop(srv)
	proj := filepath.Join(work, "project")
	if err := w.project(proj, "url: "+url, n); err != nil {
		return err
	}
	cache := filepath.Join(work, "cache")
	if _, _, err := runTimed(cairn, "lock", "--dir", proj, "--cache", cache); err != nil {
		return err
	}
	l, err := plan.ReadLock(proj)
	if err != nil {
		return err
	}
	var runs, floors, fulls []time.Duration
	for i := 0; i < 3; i++ { // in turns, so that both see the same store
		os.RemoveAll(filepath.Join(cache, "blobs"))
		into := filepath.Join(work, fmt.Sprintf("deps%d", i))
		d, _, err := runTimed(cairn, "install", "--dir", proj, "--cache", cache, "--into", into)
		if err != nil {
			return err
		}
		os.RemoveAll(into)
		runs = append(runs, d)

		for _, tree := range []string{"", filepath.Join(work, fmt.Sprintf("curl-tree%d", i))} {
			out := filepath.Join(work, fmt.Sprintf("curl%d", i))
			os.MkdirAll(out, 0o755)
			t := time.Now()
			err = curlInstall(l, out, tree, 8, func(sha string) []string {
				return append(s3CurlAuth(), endpoint+"/"+bucket+"/sha256/"+sha)
			})
			if err != nil {
				return err
			}
			if tree == "" {
				floors = append(floors, time.Since(t))
			} else {
				fulls = append(fulls, time.Since(t))
				os.RemoveAll(tree)
			}
			os.RemoveAll(out)
		}
	}
	got, floor, full := median(runs), median(floors), median(fulls)
	line("floor_s3_curl", ms(floor), "ms", 1, fmt.Sprintf("THE FLOOR of s3_install_fetch: the %d artifacts (%d MiB) from SeaweedFS's S3 by 8 parallel curl --aws-sigv4, each checked by sha256sum, median of 3", n, n*size>>20))
	line("floor_s3_install", ms(full), "ms", 1, "THE FLOOR of s3_install: the same, each artifact then copied into a tree as cairn unpacks it, then one syncfs making the downloads and the tree durable at once, median of 3")
	line("s3_install", ms(got), "ms", float64(full)/float64(got), "whole cairn install of the same plan into an empty cache, unpacked, a new process: cairn serve redirects each artifact to a URL SeaweedFS signs, the client verifies every byte; median of 3 taken in turns with the floors; ratio: floor_s3_install's time ÷ ours (goal ≥ 0.90)")
	line("s3_install_fetch", ms(got), "ms", float64(floor)/float64(got), "the same install; ratio: floor_s3_curl's time (download and verify alone) ÷ ours (goal ≥ 0.80)")
	return nil
}

// startWeed starts `weed server -s3` on loopback with the bench's
// identity, data under work, and returns its S3 endpoint.
func startWeed(weed, work string) (string, func(), error) {
	if err := os.MkdirAll(filepath.Join(work, "weed"), 0o755); err != nil {
		return "", nil, err
	}
	conf := filepath.Join(work, "s3.json")
	ident := fmt.Sprintf(`{"identities": [{"name": "cairn", "credentials": [{"accessKey": %q, "secretKey": %q}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}`, s3Key, s3Secret)
	if err := os.WriteFile(conf, []byte(ident), 0o644); err != nil {
		return "", nil, err
	}
	// weed takes no port 0, and its gRPC ports are its ports + 10000.
	base := 20000 + rand.IntN(20000)
	s3Port := base
	cmd := exec.Command(weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir="+filepath.Join(work, "weed"),
		"-master.port="+strconv.Itoa(base+1), "-volume.port="+strconv.Itoa(base+2), "-filer.port="+strconv.Itoa(base+3),
		"-s3", "-s3.port="+strconv.Itoa(s3Port), "-s3.config="+conf, "-volume.max=200", "-master.volumeSizeLimitMB=64")
	logFile, err := os.Create(filepath.Join(work, "weed.log"))
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stopIt := func() { stop(cmd); logFile.Close() }
	addr := "127.0.0.1:" + strconv.Itoa(s3Port)
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(250 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr, stopIt, nil
		}
	}
	stopIt()
	return "", nil, fmt.Errorf("SeaweedFS's S3 did not come up on %s (see %s)", addr, logFile.Name())
}

// s3CurlAuth are curl's arguments that sign a request for the bench's
// identity (SigV4).
func s3CurlAuth() []string {
	return []string{"--aws-sigv4", "aws:amz:us-east-1:s3", "--user", s3Key + ":" + s3Secret}
}

// s3Curl runs one signed curl request, retrying for a minute while the
// store comes up (its filer answers after its S3 port opens).
func s3Curl(endpoint string, args ...string) error {
	var out []byte
	var err error
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(500 * time.Millisecond) {
		out, err = exec.Command("curl", append(append([]string{"-sSf"}, s3CurlAuth()...), args...)...).CombinedOutput()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("curl %v on %s: %v: %s", args, endpoint, err, bytes.TrimSpace(out))
}
