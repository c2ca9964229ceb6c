package evidence

// The attacks an outside review of the evidence bundle found (issue 15),
// each a forged bundle that verified, or a verifier that hung or blew
// up, before the fixes these tests hold.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/server/servertest"
	"cairn.dev/cairn/internal/witness"
)

// relock replaces the bundle's cairn.yaml and recomputes what the lock
// derives from it (its project digest, the repositories' locations),
// then the lock's own digest: what any forger can do.
func relock(t *testing.T, m *Manifest, files map[string][]byte, yaml []byte, url string) {
	t.Helper()
	files["project/cairn.yaml"] = yaml
	l, err := plan.ParseLock(files["project/cairn.lock"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(yaml)
	l.Project = hex.EncodeToString(sum[:])
	if url != "" {
		for i := range l.Repositories {
			l.Repositories[i].Location = url
		}
		for i := range m.Repositories {
			m.Repositories[i].URL = url
		}
	}
	out, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	files["project/cairn.lock"] = out
}

// FINDING 1a. The trust roots are the forger's: the bundle's own
// cairn.yaml names the introduction and the witnesses. A forger with NO
// key of the project builds an index of its own (its own root, server
// key and a witness it names "w1.example"), puts the honest server's URL
// and name on it, and the bundle verifies as "sound, allowed", cosigned
// by "w1.example (quorum 1)" — while the honest index refuses the plan.
func TestReviewForeignIndexVerifies(t *testing.T) {
	w := newWorld(t)
	w.Certify(authorVuln("acme/log", "1.1.0", "GHSA-9999"))
	if _, _, err := w.bundle(Options{}); err == nil {
		t.Fatal("the honest bundle should be refused (acme/log@1.1.0 vulnerable)")
	}
	f := newWorld(t) // the forger's own index, same package names
	fdata, _, err := f.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	forged := rewrite(t, fdata, func(m *Manifest, files map[string][]byte) []string {
		y := bytes.ReplaceAll(files["project/cairn.yaml"], []byte(f.url), []byte(w.url))
		relock(t, m, files, y, w.url)
		return nil
	})
	// Pinned to the project's index: refused.
	_, err = Verify(context.Background(), bytes.NewReader(forged), VerifyOptions{Introductions: []string{w.Intro}})
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), f.Intro) {
		t.Fatalf("a bundle of the forger's own index, the project's pinned: %v", err)
	}
}

// FINDING 1b. Same root cause, with the project's real introduction: the
// holder of the checkpoint key forks the log to hide a vulnerability
// (servertest.OmitFile) and cosigns the fork with a witness key of its
// own that it names like the project's witness. The bundle's cairn.yaml
// names that key instead of the project's: the bundle verifies as
// allowed, "cosigned by w1.example (quorum 1)", introduction the
// project's. Dropping witnesses: instead gives the same verdict with only
// an "unwitnessed" line and exit 0.
func TestReviewForgerPicksWitnesses(t *testing.T) {
	w := newWorld(t)
	w.Certify(authorVuln("acme/log", "1.1.0", "GHSA-9999"))
	httpGet(t, w.url+"/log/checkpoint") // the honest, witnessed checkpoint
	honest, _, err := w.bundle(Options{})
	var re *policy.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("the honest bundle: %v", err)
	}
	_ = honest

	// The forged log: the vulnerability left out, signed with the real key.
	fg := servertest.OmitFile(w.World, "package acme/log", true)
	// The forger's witness, named like the project's.
	fws, fakeKey := servertest.Witness(w.World, "w1.example")
	cos, err := witness.Cosign(context.Background(), http.DefaultClient, fws, 0, fg.Note, fg.Prove)
	if err != nil {
		t.Fatal(err)
	}
	if fg.Note, err = witness.AppendCosignatures(fg.Note, cos); err != nil {
		t.Fatal(err)
	}
	forger := servertest.NewForger(w.World, w.url)
	forger.Serve(fg)

	// The forger's project: the project's own, with its witness key
	// replaced by the forger's; locked and evidenced through the forger.
	w.write("cairn.yaml", strings.Replace(readFile(t, w.project, "cairn.yaml"), w.witness, fakeKey, 1))
	hc := &http.Client{Transport: redirect{from: w.url, to: forger.URL}}
	p, err := plan.ReadProject(w.project)
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := plan.Open(context.Background(), p, plan.Options{Cache: t.TempDir(), NoLightState: true, Remote: remote.Options{Client: hc}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := plan.Resolve(context.Background(), p, srcs)
	srcs.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.WriteLock(w.project, l); err != nil {
		t.Fatal(err)
	}
	forged, _, err := w.bundle(Options{HTTP: hc})
	if err != nil {
		t.Fatalf("making the forged bundle: %v", err)
	}
	w.stop()
	// The verifier pins the project's index and its witness: refused.
	mine, err := witness.NewPolicy([]string{w.witness}, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(context.Background(), bytes.NewReader(forged), VerifyOptions{Introductions: []string{w.Intro}, Witnesses: mine})
	var qe *witness.QuorumError
	if !errors.Is(err, ErrRefused) || !errors.As(err, &qe) {
		t.Fatalf("a forked log hiding GHSA-9999, cosigned by the forger's witness, the project's pinned: %v", err)
	}
}

// FINDING 2. policy: is not confined to the bundle. cairn.yaml's policy
// path may climb out of the verifier's temporary project ("../../..")
// and Verify reads that file of the regulator's machine (LoadPolicy,
// policyPin): a FIFO hangs it forever, /dev/zero eats memory until the
// OOM killer, and an existing file is judged as "the bundle's policy".
func TestReviewPolicyOutsideBundle(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "policy.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	rel := strings.Repeat("../", 32) + strings.TrimPrefix(fifo, "/")
	forged := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		y := bytes.Replace(files["project/cairn.yaml"], []byte("policy: policy.yaml"), []byte("policy: "+rel), 1)
		relock(t, m, files, y, "")
		m.Policy = rel
		delete(files, "project/policy.yaml")
		var names []string
		for _, mem := range m.Members {
			if mem.Path != "project/policy.yaml" {
				names = append(names, mem.Path)
			}
		}
		return names
	})
	if out := os.Getenv("REVIEW_DUMP"); out != "" {
		// The same bundle naming /dev/zero: run `cairn evidence verify` on it.
		zero := strings.Repeat("../", 32) + "dev/zero"
		z := rewrite(t, forged, func(m *Manifest, files map[string][]byte) []string {
			relock(t, m, files, bytes.Replace(files["project/cairn.yaml"], []byte(rel), []byte(zero), 1), "")
			m.Policy = zero
			return nil
		})
		os.WriteFile(out, z, 0o644)
	}
	done := make(chan error, 1)
	go func() { _, err := verify(forged); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "which is not a member project/") {
			t.Fatalf("a policy path outside the bundle: %v", err)
		}
	case <-time.After(15 * time.Second):
		// Unblock the reader so the test ends.
		if fw, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			fw.Close()
		}
		t.Fatalf("Verify hangs reading %s, a file of the verifier's machine named by the bundle's cairn.yaml (policy: %s)", fifo, rel)
	}
}

// FINDING 3. judged_at is the newest time of ANY member named
// repos/N/…/log/checkpoint, read by checkpoint.Claimed (no signature
// checked), including ones the light client never reads. A forger adds
// an unsigned repos/0/upstreams/x/log/checkpoint claiming a later time:
// the bundle verifies "judged at" that time (up to the 24 h freshness
// bound later than the checkpoint that proves anything), and --at
// accepts times the bundle does not cover.
func TestReviewJudgedAtFromUnreadMember(t *testing.T) {
	w := newWorld(t)
	data, made, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	fake := made.Manifest.JudgedAt.Add(20 * time.Hour)
	forged := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		c, err := checkpoint.Claimed(files["repos/0/log/checkpoint"])
		if err != nil {
			t.Fatal(err)
		}
		c.Time = fake
		files["repos/0/upstreams/x/log/checkpoint"] = append([]byte(c.Text()+"\n"), "— nobody AAAA\n"...)
		m.JudgedAt = fake
		names := memberNames(m)
		return append(names, "repos/0/upstreams/x/log/checkpoint")
	})
	if rep, err := verify(forged); err == nil {
		t.Fatalf("verified, judged at %s: 20 h after the only checkpoint verified (%s), taken from an unsigned member nothing read", rep.JudgedAt, made.Manifest.JudgedAt)
	} else if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "the newest checkpoint verified is of") {
		t.Fatalf("a judging time from an unsigned member: %v", err)
	}
}

// FINDING 4. Decompression: --max-size bounds the members' sizes added
// up (4 GiB by default), not what the file costs: a member of zeros
// compressed ~1000:1, and Read held every member in memory. Version 2
// bundles are not compressed; what remains is a manifest that claims
// members far larger than the file: Read must not hold what it claims
// before the bytes are there (from a file, whose size it knows, or a
// stream, whose it does not).
func TestReviewDecompressionBomb(t *testing.T) {
	const size = 256 << 20
	zeros := make([]byte, 1<<20)
	h := sha256.New()
	for range size >> 20 {
		h.Write(zeros)
	}
	m := Manifest{Format: Format, Version: Version, Members: []Member{{Path: "repos/0/pad", Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}}}
	manifest, _ := json.Marshal(m)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg})
	tw.Write(manifest)
	tw.WriteHeader(&tar.Header{Name: "repos/0/pad", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
	tw.Write(zeros[:4096]) // and no more: the claim is the manifest's
	tw.Flush()
	file := buf.Len()
	for _, r := range []struct {
		what string
		r    func() io.Reader
	}{
		{"a file", func() io.Reader { return bytes.NewReader(buf.Bytes()) }},
		{"a stream", func() io.Reader { return io.MultiReader(bytes.NewReader(buf.Bytes())) }},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Read(r.r(), 0)
		runtime.ReadMemStats(&after)
		grew := after.TotalAlloc - before.TotalAlloc
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("%s claiming %d bytes in %d: %v", r.what, size, file, err)
		}
		if grew > 64<<20 {
			t.Fatalf("%s of %d bytes claiming %d MiB was read into %d MiB of memory before it was refused", r.what, file, size>>20, grew>>20)
		}
	}
}

// FINDING 1c. Same root cause, no key at all: the bundle's policy is the
// forger's. The plan the project's policy refuses (a high vulnerability)
// is evidenced under a policy.yaml with the forbid rule cut out, by
// cairn's own Make: it verifies "allowed ... under policy.yaml", and
// nothing in the report (text or JSON) gives the policy's digest.
func TestReviewForgerPicksPolicy(t *testing.T) {
	w := newWorld(t)
	w.Certify(authorVuln("acme/log", "1.1.0", "GHSA-9999"))
	if _, _, err := w.bundle(Options{}); err == nil {
		t.Fatal("the honest bundle should be refused")
	}
	w.write("policy.yaml", strings.Split(policyFile, "forbid:")[0])
	w.lock()
	forged, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify(forged)
	if err != nil {
		t.Fatal(err)
	}
	honest := sha256.Sum256([]byte(policyFile))
	if rep.PolicySHA256 == "" || rep.PolicySHA256 == hex.EncodeToString(honest[:]) {
		t.Fatalf("the report does not tell the forger's policy (sha256 %s) from the project's (%x)", rep.PolicySHA256, honest)
	}
	// Judged under the verifier's own copy of the project's policy.
	own := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(own, []byte(policyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	var re *policy.RefusedError
	if _, err := Verify(context.Background(), bytes.NewReader(forged), VerifyOptions{TrustBundle: true, Policy: own}); !errors.As(err, &re) || !strings.Contains(err.Error(), "GHSA-9999") {
		t.Fatalf("the forger's bundle under the project's policy: %v", err)
	}
}

// FINDING 5. Members nothing reads are accepted: any repos/N/… path, and
// blobs the lock does not name. (They carry Finding 3's checkpoint, and
// let a bundle ship arbitrary bytes under a "sound" verdict.)
func TestReviewUnreadMembers(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{WithBlobs: true})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("#!/bin/sh\necho not in the lock\n")
	sum := sha256.Sum256(payload)
	extra := []string{"repos/0/anything/at/all", "blobs/sha256/" + hex.EncodeToString(sum[:])}
	for _, n := range extra {
		one := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
			names := memberNames(m)
			files[n] = payload
			return append(names, n)
		})
		if _, err := verify(one); !errors.Is(err, ErrMalformed) {
			t.Fatalf("member %s, which nothing reads or checks: %v", n, err)
		}
	}
}
