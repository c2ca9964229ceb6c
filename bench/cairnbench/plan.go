package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/verdict"
	"golang.org/x/sys/unix"
)

// planWorld is an index for the plan figures: a publisher, an auditor,
// packages with real artifact files in the blob store.
type planWorld struct {
	repo                 *index.Repo
	root, alice, auditor keys.Signer
	intro                string
	dir                  string
}

func newPlanWorld(ctx context.Context, dir string) (*planWorld, error) {
	return newPlanWorldOn(ctx, dir, "")
}

// newPlanWorldOn is newPlanWorld with the repository's blobs on the
// object store blobs names ("": the files under the repository).
func newPlanWorldOn(ctx context.Context, dir, blobs string) (*planWorld, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	w := &planWorld{root: newBenchSigner(), alice: newBenchSigner(), auditor: newBenchSigner(), dir: dir}
	r, intro, err := index.InitWith(ctx, filepath.Join(dir, "repo"), []keys.Signer{w.root}, []string{"root"}, 1, index.InitOptions{Blobs: blobs})
	if err != nil {
		return nil, err
	}
	w.repo, w.intro = r, intro.ID
	for _, g := range []author.KeyGrant{
		{Key: w.alice.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}},
		{Key: w.auditor.Public(), Holder: "acme-security", Scopes: []string{"certify:audited", "certify:tested", "certify:vulnerable"}},
	} {
		if _, err := author.Grant(ctx, r, g, w.root); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func newBenchSigner() keys.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return keys.NewSigner(priv)
}

// publish publishes acme/pN@1.0.0 with a binary artifact of size bytes
// (random) and dependencies.
func (w *planWorld) publish(ctx context.Context, i int, size int, deps []int) error {
	d := filepath.Join(w.dir, fmt.Sprintf("pkg%d", i))
	os.MkdirAll(d, 0o755)
	var m strings.Builder
	fmt.Fprintf(&m, "name: acme/p%d\nversion: 1.0.0\nlicense: MIT\n", i)
	if len(deps) > 0 {
		m.WriteString("dependencies:\n")
		for _, dep := range deps {
			fmt.Fprintf(&m, "  - name: acme/p%d\n    version: ^1.0\n", dep)
		}
	}
	fmt.Fprintf(&m, "artifacts:\n  - kind: binary\n    platform: linux-amd64\n    file: p%d.bin\n", i)
	os.WriteFile(filepath.Join(d, "cairn-package.yaml"), []byte(m.String()), 0o644)
	f, err := os.Create(filepath.Join(d, fmt.Sprintf("p%d.bin", i)))
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, int64(size)); err != nil {
		return err
	}
	f.Close()
	_, err = author.Publish(ctx, w.repo, d, w.alice)
	os.RemoveAll(d)
	return err
}

func (w *planWorld) project(dir, location string, n int) error {
	os.MkdirAll(dir, 0o755)
	var b strings.Builder
	fmt.Fprintf(&b, "repositories:\n  - name: acme\n    %s\n    introduction: %s\nplatforms: [linux-amd64]\npolicy: policy.yaml\npackages:\n", location, w.intro)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  acme/p%d: ^1.0\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "cairn.yaml"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	pol := "issuers:\n  security: [acme-security]\nforbid:\n  - {name: high, property: vulnerable, severity: high}\n  - {name: deprecated, property: deprecated}\n"
	return os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(pol), 0o644)
}

// serve grants a new key the checkpoint scope and starts cairn serve on
// the world's index, signing checkpoints with it; stop it with stop.
func (w *planWorld) serve(ctx context.Context, cairn string) (*exec.Cmd, string, error) {
	keyFile := filepath.Join(w.dir, "server.key")
	pub, err := keys.Generate(keyFile, "server")
	if err != nil {
		return nil, "", err
	}
	if _, err := author.Grant(ctx, w.repo, author.KeyGrant{Key: pub, Holder: "server", Scopes: []string{"checkpoint"}}, w.root); err != nil {
		return nil, "", err
	}
	return startCairn(cairn, w.dir, w.repo.Dir, keyFile)
}

// runTimed runs a command and returns its wall time and peak RSS in MiB
// (the child's rusage maxrss, which starts from this process's own
// high-water mark at fork: treePeakRSS measures cairn's alone).
func runTimed(name string, args ...string) (time.Duration, float64, error) {
	cmd := exec.Command(name, args...)
	var errb strings.Builder
	cmd.Stderr = &errb
	t := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, errb.String())
	}
	d := time.Since(t)
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rss := 0.0
	if ru != nil {
		rss = float64(ru.Maxrss) / 1024
	}
	return d, rss, nil
}

func benchPlan(ctx context.Context, cairn, work string) error {
	if err := benchLock(ctx, cairn, work); err != nil {
		return err
	}
	if err := benchDecision(ctx, work); err != nil {
		return err
	}
	return benchInstall(ctx, cairn, work)
}

// benchLock: cairn lock of a 1,000-package plan (each package depending on
// up to three earlier ones) from an index on disk, against the floor of
// reading the same 1,000 descriptors with one raw git cat-file --batch.
func benchLock(ctx context.Context, cairn, work string) error {
	const n = 1000
	w, err := newPlanWorld(ctx, filepath.Join(work, "lock"))
	if err != nil {
		return err
	}
	defer w.repo.Close()
	for i := 0; i < n; i++ {
		var deps []int
		for k := 1; k <= 3 && i-k*7 >= 0; k++ {
			deps = append(deps, i-k*7)
		}
		if err := w.publish(ctx, i, 64, deps); err != nil {
			return err
		}
	}
	proj := filepath.Join(w.dir, "project")
	if err := w.project(proj, "path: "+w.repo.Dir, n); err != nil {
		return err
	}
	cache := filepath.Join(w.dir, "cache")
	args := []string{"lock", "--dir", proj, "--cache", cache}
	if _, _, err := runTimed(cairn, args...); err != nil { // the first run verifies the index
		return err
	}
	var runs []time.Duration
	for i := 0; i < 5; i++ {
		d, _, err := runTimed(cairn, args...)
		if err != nil {
			return err
		}
		runs = append(runs, d)
	}
	var paths strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("acme/p%d", i)
		fmt.Fprintf(&paths, "main:%s/%s\n", layout.VersionDir(name, "1.0.0"), layout.DescriptorFile)
	}
	var floors []time.Duration
	for i := 0; i < 5; i++ {
		cmd := exec.Command("git", "--git-dir", filepath.Join(w.repo.Dir, "index.git"), "cat-file", "--batch")
		cmd.Stdin, cmd.Stdout = strings.NewReader(paths.String()), io.Discard
		t := time.Now()
		if err := cmd.Run(); err != nil {
			return err
		}
		floors = append(floors, time.Since(t))
	}
	got, floor := median(runs), median(floors)
	line("lock_1000", ms(got), "ms", none, fmt.Sprintf("whole cairn lock of 1,000 packages from an index on disk, a new process, median of 5; absolute, no floor does the same work (for scale: git cat-file --batch of the 1,000 descriptors alone %.1f ms) (goal < 1000 ms)", ms(floor)))
	return nil
}

// benchDecision: one policy decision on a version with 50 records,
// against one raw ed25519 verification.
func benchDecision(ctx context.Context, work string) error {
	w, err := newPlanWorld(ctx, filepath.Join(work, "decision"))
	if err != nil {
		return err
	}
	defer w.repo.Close()
	if err := w.publish(ctx, 0, 64, nil); err != nil {
		return err
	}
	for i := 0; i < 48; i++ {
		c := author.Certification{Name: "acme/p0", Version: "1.0.0", Kind: record.Tested, Result: "PASSED", Note: fmt.Sprintf("https://ci.example/%d", i)}
		if _, err := author.Certify(ctx, w.repo, c, w.auditor); err != nil {
			return err
		}
	}
	if _, err := author.Certify(ctx, w.repo, author.Certification{Name: "acme/p0", Version: "1.0.0", Kind: record.Audited}, w.auditor); err != nil {
		return err
	}
	c, err := w.repo.Catalog(ctx, index.MainRef)
	if err != nil {
		return err
	}
	d, ref, recs, err := c.Version("acme/p0", "1.0.0")
	if err != nil {
		return err
	}
	pol, err := policy.Parse("policy.yaml", []byte(`
issuers:
  security: [acme-security]
require:
  - {name: audited, property: audited, by: security}
  - {name: ci, property: tested, where: 'record.result == "PASSED"'}
forbid:
  - {name: high, property: vulnerable, severity: high}
  - {name: deprecated, property: deprecated}
  - {name: mit, expr: 'pkg.license != "MIT"'}
`))
	if err != nil {
		return err
	}
	s := &policy.Subject{Descriptor: d, Ref: ref, Records: verdict.Records(recs, "acme")}
	const iters = 20000
	t := time.Now()
	for i := 0; i < iters; i++ {
		if v := pol.Evaluate(s, t); !v.Allowed {
			return fmt.Errorf("decision refused: %v", v.Failed())
		}
	}
	per := time.Since(t) / iters
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("a record's signing input")
	sig := ed25519.Sign(priv, msg)
	t = time.Now()
	for i := 0; i < iters; i++ {
		ed25519.Verify(pub, msg, sig)
	}
	floor := time.Since(t) / iters
	line("policy_decision", float64(per)/1e3, "µs", none, fmt.Sprintf("one decision on a version with %d records, 5 rules (one CEL where over 48 records), mean of %d; absolute, no floor does the same work (for scale: one raw ed25519 verify %.1f µs) (goal ≤ 50 µs)", len(recs), iters, float64(floor)/1e3))
	return nil
}

// benchInstall: cairn install of a 200-package plan (~1 GiB) from cairn
// serve into an empty cache, against parallel curl of the same blobs from
// nginx plus sha256sum of them.
func benchInstall(ctx context.Context, cairn, work string) error {
	const n, size = 200, 5 << 20
	w, err := newPlanWorld(ctx, filepath.Join(work, "install"))
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
	docroot := filepath.Join(w.dir, "docroot")
	os.MkdirAll(docroot, 0o755)
	ngx, nurl, err := startNginx(w.dir, docroot, filepath.Join(w.repo.Dir, "blobs"), "")
	if err != nil {
		return err
	}
	defer stop(ngx)
	proj := filepath.Join(w.dir, "project")
	if err := w.project(proj, "url: "+url, n); err != nil {
		return err
	}
	// The lock is made once (the light client: no replica, only the
	// checkpoint and the subjects it proves, kept in the cache); each run
	// installs into an empty blob cache.
	cache := filepath.Join(w.dir, "cache")
	if _, _, err := runTimed(cairn, "lock", "--dir", proj, "--cache", cache); err != nil {
		return err
	}
	l, err := plan.ReadLock(proj)
	if err != nil {
		return err
	}
	var runs []time.Duration
	for i := 0; i < 3; i++ {
		os.RemoveAll(filepath.Join(cache, "blobs"))
		into := filepath.Join(w.dir, fmt.Sprintf("deps%d", i))
		d, _, err := runTimed(cairn, "install", "--dir", proj, "--cache", cache, "--into", into)
		if err != nil {
			return err
		}
		os.RemoveAll(into)
		runs = append(runs, d)
	}
	// The peak RSS from a run of its own, sampled from /proc: a child's
	// rusage maxrss starts from this process's high-water mark at fork,
	// which after the serve group's index is far above cairn's.
	os.RemoveAll(filepath.Join(cache, "blobs"))
	into := filepath.Join(w.dir, "deps-rss")
	peak, err := treePeakRSS(cairn, "install", "--dir", proj, "--cache", cache, "--into", into)
	if err != nil {
		return err
	}
	os.RemoveAll(into)
	fetches, installs, err := curlFloors(l, w.dir, func(sha string) []string { return []string{nurl + "/blobs/sha256/" + sha} })
	if err != nil {
		return err
	}
	got, floor, full := median(runs), median(fetches), median(installs)
	line("floor_install_fetch", ms(floor), "ms", 1, fmt.Sprintf("THE FLOOR of install_plan_fetch: the %d artifacts (%d MiB) from nginx by 8 parallel curl, each checked by sha256sum, median of 3", n, n*size>>20))
	line("floor_install", ms(full), "ms", 1, "THE FLOOR of install_plan: the same, each artifact then copied into a tree as cairn unpacks it (Go's copy: copy_file_range where the file system allows), 8 at a time, then one syncfs making the downloads and the tree durable at once, median of 3")
	line("install_plan", ms(got), "ms", float64(full)/float64(got), fmt.Sprintf("whole cairn install of 200 packages, %d MiB, from cairn serve into an empty cache, unpacked, a new process; peak RSS %.0f MiB (sampled in a run of its own, the process tree's); median of 3; ratio: floor_install's time ÷ ours (goal ≥ 0.90, ≤ 100 MiB)", n*size>>20, peak))
	line("install_plan_fetch", ms(got), "ms", float64(floor)/float64(got), "the same install; ratio: floor_install_fetch's time (download and verify alone) ÷ ours (goal ≥ 0.80)")
	return nil
}

// curlFloors measures, 3 times each in turns, curlInstall of every
// artifact of l without the install's disk work (download and verify)
// and with it; args as curlAll's.
func curlFloors(l *plan.Lock, dir string, args func(sha string) []string) (fetches, installs []time.Duration, err error) {
	for i := 0; i < 3; i++ {
		for _, tree := range []string{"", filepath.Join(dir, fmt.Sprintf("curl-tree%d", i))} {
			out := filepath.Join(dir, fmt.Sprintf("curl%d", i))
			os.MkdirAll(out, 0o755)
			t := time.Now()
			if err := curlInstall(l, out, tree, 8, args); err != nil {
				return nil, nil, err
			}
			if tree == "" {
				fetches = append(fetches, time.Since(t))
			} else {
				installs = append(installs, time.Since(t))
				os.RemoveAll(tree)
			}
			os.RemoveAll(out)
		}
	}
	return fetches, installs, nil
}

// curlAll fetches every locked blob with jobs parallel curl processes,
// then checks each with sha256sum; args gives curl's arguments (the URL
// last) for a blob's sha256. If tree is set, it then does the rest of an
// install's work on disk by the fastest means: each blob copied to
// tree/NAME/FILE (Go's copy: copy_file_range where the file system
// allows), then one syncfs of the file system, which makes the downloads
// (cairn's cache keeps them durably) and the tree durable at once.
func curlAll(l *plan.Lock, out string, jobs int, args func(sha string) []string) error {
	return curlInstall(l, out, "", jobs, args)
}

func curlInstall(l *plan.Lock, out, tree string, jobs int, args func(sha string) []string) error {
	work := make(chan int)
	errs := make(chan error, len(l.Packages))
	var wg sync.WaitGroup
	for j := 0; j < jobs; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				a := l.Packages[i].Artifacts[0]
				file := filepath.Join(out, a.SHA256)
				if err := exec.Command("curl", append([]string{"-sf", "-o", file}, args(a.SHA256)...)...).Run(); err != nil {
					errs <- fmt.Errorf("curl %s: %v", a.SHA256, err)
					continue
				}
				sum, err := exec.Command("sha256sum", file).Output()
				if err != nil || !strings.HasPrefix(string(sum), a.SHA256) {
					errs <- fmt.Errorf("sha256sum %s: %v %s", a.SHA256, err, sum)
					continue
				}
				if tree != "" {
					if err := copyFile(file, filepath.Join(tree, filepath.FromSlash(l.Packages[i].Name), a.File)); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	for i := range l.Packages {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil || tree == "" {
		return err
	}
	f, err := os.Open(tree)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// copyFile copies src to dst, its directories made.
func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := o.ReadFrom(in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}
