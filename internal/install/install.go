// Package install fetches, verifies and materialises a locked build plan.
//
// Blobs come from the repositories' servers and mirrors into a shared
// content-addressed cache, in parallel, each verified by sha256 and size
// while it streams (a mirror that sends more is cut at size+1 bytes, and
// the next one is tried). A cached blob is verified again as it is
// unpacked (a file artifact, copied by the kernel from the cache, is
// verified as installed); one whose file no longer matches its digest is
// named, removed and fetched again. Each package is unpacked as soon as
// its blob is cached, one worker a processor, into a staging directory
// beside the target, through an os.Root for each package, refusing paths
// that leave it, symlinks that lead out of it (judged through all of the
// archive's links), hard links to anything but an earlier file of the
// archive, devices, fifos and oversized entries; a manifest lists every
// file and where it came from; then the staging tree is made durable in
// one pass (syncfs on Linux) and replaces the target in one atomic
// rename. A crash leaves the old install or the new
// one, never a mix. When the cache holds every blob, nothing is fetched.
package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/plan"
)

// ManifestFile is the manifest's name in an installed directory.
const ManifestFile = ".cairn-manifest.json"

// Cache is the blob cache an install reads and fills: a store whose
// blobs are files. *blob.FS is one.
type Cache interface {
	blob.Store
	// Path returns the file that holds a stored blob.
	Path(ref blob.Ref) (string, error)
	// Scrub checks a stored blob's file against its digest; if it does
	// not hold the blob, Scrub removes it and returns the evidence (see
	// blob.FS.Scrub).
	Scrub(ref blob.Ref) (*blob.CorruptError, error)
}

var _ Cache = (*blob.FS)(nil)

// Options says where and how to install.
type Options struct {
	Into     string // the target directory
	Cache    Cache  // the shared blob cache
	Platform string // which of the lock's platforms (default: this machine's if locked, else the first)
	Jobs     int    // parallel downloads (default 8)
	Limits   Limits
	// Progress, if set, hears how far the install is; it is called from
	// several goroutines, never concurrently.
	Progress func(Progress)
	// Offline: the sources were opened offline (plan.Options.Offline),
	// their servers left out of their stores: a blob the cache lacks (or
	// holds corrupt) comes from the mirrors the project names, and with
	// none fails the install at once with ErrNotCached.
	Offline bool
	// Waiting, if set, hears that another install into the same
	// directory holds it (this one waits for it to end).
	Waiting func(lockFile string)
}

// ErrNotCached is why an offline install (Options.Offline) fails on a
// blob the cache lacks and no mirror may give.
var ErrNotCached = errors.New("not in the cache, and an offline install asks no server (and the project names no mirror: mirrors: in cairn.yaml): install once online to fill the cache")

// Progress is how far an install is.
type Progress struct {
	Bytes, TotalBytes       int64 // downloaded (or found in the cache) so far, of all
	Packages, TotalPackages int   // fetched and verified, of all
	Phase                   string
}

// Manifest is what an install wrote and where each file came from.
type Manifest struct {
	Lock     string      `json:"lock"` // the lock's digest
	Platform string      `json:"platform"`
	Packages []Installed `json:"packages"`
}

// Installed is one package of a manifest.
type Installed struct {
	Name       string              `json:"name"`
	Version    string              `json:"version"`
	Repository string              `json:"repository"`
	Descriptor blob.Ref            `json:"descriptor"`
	Artifact   plan.LockedArtifact `json:"artifact"`
	Files      []File              `json:"files"`
}

// Result reports an install.
type Result struct {
	Into     string `json:"into"`
	Platform string `json:"platform"`
	Packages int    `json:"packages"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`   // of the artifacts
	Fetched  int    `json:"fetched"` // blobs downloaded
	Cached   int    `json:"cached"`  // blobs already in the cache
	Replaced bool   `json:"replaced"`
	// Repaired lists the cached blobs whose files no longer matched their
	// digests: each was removed and fetched again.
	Repaired []*blob.CorruptError `json:"repaired,omitempty"`
	// Tampered lists the sources (a repository's server, a mirror) that
	// served bytes other than a blob's digest names: each was skipped
	// for the next, and is named here so that it can be acted on.
	Tampered []Tampered `json:"tampered,omitempty"`
}

// Tampered is a source that served other bytes than a blob's digest
// names (a *blob.MismatchError).
type Tampered struct {
	Source string   `json:"source"`
	Blob   blob.Ref `json:"blob"`
	Error  string   `json:"error"`
}

// Platform picks the platform to install: this machine's if the lock has
// it, else the lock's first.
func Platform(l *plan.Lock) string {
	here := runtime.GOOS + "-" + runtime.GOARCH
	if slices.Contains(l.Platforms, here) {
		return here
	}
	return l.Platforms[0]
}

type job struct {
	pkg     *plan.Locked
	art     plan.LockedArtifact
	src     *plan.Source
	beneath map[string]string // see beneath: set as it is unpacked
}

// Install fetches and verifies every artifact of the lock for one
// platform and materialises them into o.Into, atomically. The lock must
// have been checked against the indexes (plan.Check) and the policy.
func Install(ctx context.Context, l *plan.Lock, srcs plan.Sources, o Options) (*Result, error) {
	if o.Platform == "" {
		o.Platform = Platform(l)
	}
	if !slices.Contains(l.Platforms, o.Platform) {
		return nil, fmt.Errorf("the lock has no artifacts for platform %s (it has %s): add it to platforms in %s and lock again", o.Platform, strings.Join(l.Platforms, ", "), plan.ProjectFile)
	}
	if o.Jobs <= 0 {
		o.Jobs = 8
	}
	into, err := filepath.Abs(o.Into)
	if err != nil {
		return nil, err
	}
	unlock, err := holdTarget(ctx, into, o.Waiting)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := checkTarget(into); err != nil {
		return nil, err
	}
	res := &Result{Into: into, Platform: o.Platform, Packages: len(l.Packages)}
	var jobs []job
	for i := range l.Packages {
		pkg := &l.Packages[i]
		src := srcs.Get(pkg.Repository)
		if src == nil {
			return nil, fmt.Errorf("package %s: repository %s is not in %s", pkg.ID(), pkg.Repository, plan.ProjectFile)
		}
		i := slices.IndexFunc(pkg.Artifacts, func(a plan.LockedArtifact) bool { return a.Platform == o.Platform })
		if i < 0 {
			return nil, fmt.Errorf("package %s: the lock has no artifact for %s", pkg.ID(), o.Platform)
		}
		jobs = append(jobs, job{pkg: pkg, art: pkg.Artifacts[i], src: src})
		res.Bytes += pkg.Artifacts[i].Size
	}
	if o.Progress != nil {
		var mu sync.Mutex
		progress := o.Progress
		o.Progress = func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			progress(p)
		}
	}
	staging, err := os.MkdirTemp(filepath.Dir(into), "."+filepath.Base(into)+".cairn-staging-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	sy, err := newSyncer(staging)
	if err != nil {
		return nil, err
	}
	defer sy.close()
	m := Manifest{Lock: l.Digest, Platform: o.Platform, Packages: make([]Installed, len(jobs))}
	if err := fetchAndUnpack(ctx, jobs, staging, o, res, &m); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeNew(filepath.Join(staging, ManifestFile), append(data, '\n')); err != nil {
		return nil, err
	}
	if err := sy.sync(); err != nil {
		return nil, err
	}
	if res.Replaced, err = swap(staging, into); err != nil {
		return nil, err
	}
	return res, nil
}

// beneath maps the first element, case-folded, of each package's
// directory that lies in name's (v2 of example.com/greet/v2 in
// example.com/greet) to that package: name's archive may not write there.
func beneath(jobs []job, name string) map[string]string {
	var out map[string]string
	prefix := descriptor.FoldName(name) + "/"
	for _, k := range jobs {
		rest, ok := strings.CutPrefix(descriptor.FoldName(k.pkg.Name), prefix)
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		first, _, _ := strings.Cut(rest, "/")
		out[first] = k.pkg.Name
	}
	return out
}

// unpackCached unpacks a job's artifact from the cache into its
// package's directory under staging. The cache is a disk, not a proof:
// unpack verifies the digest again as it reads, and when unpacking fails
// the cached file is checked; one that no longer holds the blob is named,
// removed and fetched again, and the package unpacked afresh (the
// evidence is returned with the files).
func unpackCached(ctx context.Context, j job, staging string, o Options, tampered func(Tampered)) ([]File, *blob.CorruptError, error) {
	dir := filepath.Join(staging, filepath.FromSlash(j.pkg.Name))
	try := func() ([]File, error) {
		src, err := o.Cache.Path(j.art.Ref)
		if err != nil {
			return nil, err
		}
		return unpack(src, j.art.Ref, j.art.File, dir, j.pkg.Name, j.beneath, o.Limits)
	}
	files, err := try()
	if err == nil {
		return files, nil, nil
	}
	ce, serr := o.Cache.Scrub(j.art.Ref)
	if ce == nil {
		if serr != nil {
			err = fmt.Errorf("%w (and %w)", err, serr)
		}
		return nil, nil, fmt.Errorf("package %s: %w", j.pkg.ID(), err)
	}
	if serr != nil {
		return nil, ce, fmt.Errorf("package %s: artifact %s: %w", j.pkg.ID(), j.art.File, serr)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, ce, err
	}
	if _, _, err := fetchOne(ctx, j, o.Cache, o.Offline, func(int64) {}, tampered); err != nil {
		return nil, ce, fmt.Errorf("package %s: artifact %s: %w; removed it; fetching it again: %w", j.pkg.ID(), j.art.File, ce, err)
	}
	if files, err = try(); err != nil {
		return nil, ce, fmt.Errorf("package %s: %w", j.pkg.ID(), err)
	}
	return files, ce, nil
}

// holdTarget takes the lock of installs into into, a file beside it
// (.NAME.cairn-lock, left in place), and returns its release: installs
// into one directory run one after the other. Two at once removed each
// other's staging directories as an interrupted install's, and swapped
// in trees that lacked whole packages their manifests listed, each
// saying it had installed them. A second install waits (waiting hears
// of it) until the first ends or ctx is done.
func holdTarget(ctx context.Context, into string, waiting func(string)) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(into), 0o755); err != nil {
		return nil, err
	}
	name := filepath.Join(filepath.Dir(into), "."+filepath.Base(into)+".cairn-lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("the lock of installs into %s: %w", into, err)
	}
	ok, err := tryLockTarget(f)
	if err == nil && !ok && waiting != nil {
		waiting(name)
	}
	// Asked again every tenth of a second: a flock that waits cannot
	// be given up when ctx is done.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ; err == nil && !ok; ok, err = tryLockTarget(f) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another cairn install into %s to end (%s): %w", into, name, context.Cause(ctx))
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("the lock of installs into %s: %w", into, err)
	}
	return func() { f.Close() }, nil
}

// checkTarget refuses to replace a directory that is not an install of
// cairn's (or empty), and clears what interrupted installs left (no
// other install runs: holdTarget).
func checkTarget(into string) error {
	if err := os.MkdirAll(filepath.Dir(into), 0o755); err != nil {
		return err
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(into), "."+filepath.Base(into)+".cairn-staging-*"))
	for _, d := range leftovers {
		os.RemoveAll(d)
	}
	entries, err := os.ReadDir(into)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(into, ManifestFile)); err != nil {
		return fmt.Errorf("%s exists and is not a cairn install (no %s): choose another --into or empty it", into, ManifestFile)
	}
	return nil
}

// ReadManifest reads an installed directory's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	return &m, json.Unmarshal(data, &m)
}

// fetchOne brings one blob into the cache from the source's stores in
// order, verified as it streams; it reports whether the cache had it,
// and the evidence of a cached file it found corrupt (of another size)
// and removed before fetching the blob again.
func fetchOne(ctx context.Context, j job, cache Cache, offline bool, progress func(int64), tampered func(Tampered)) (bool, *blob.CorruptError, error) {
	if ok, err := cache.Stat(ctx, j.art.Ref); err != nil || ok {
		if ok {
			progress(j.art.Size)
		}
		return ok, nil, err
	}
	ce, err := cache.Scrub(j.art.Ref)
	if err != nil {
		return false, ce, err
	}
	var mirrors []blob.Store
	for _, s := range j.src.Blobs {
		mirrors = append(mirrors, counting{s, progress})
	}
	if offline && len(mirrors) == 0 {
		if ce != nil {
			return false, ce, fmt.Errorf("%w; removed it; %s: %w", ce, j.art.Ref, ErrNotCached)
		}
		return false, nil, fmt.Errorf("%s: %w", j.art.Ref, ErrNotCached)
	}
	c := &blob.Chain{Local: cache, Mirrors: mirrors, OnMirrorError: func(i int, ref blob.Ref, err error) {
		if errors.Is(err, blob.ErrMismatch) {
			tampered(Tampered{Source: blob.Name(mirrors[i]), Blob: ref, Error: err.Error()})
		}
	}}
	if err := c.Fetch(ctx, j.art.Ref); err != nil {
		if ce != nil {
			return false, ce, fmt.Errorf("%w; removed it; fetching it again: %w", ce, err)
		}
		return false, nil, err
	}
	return false, ce, nil
}

// counting is a store whose reads report their bytes.
type counting struct {
	blob.Store
	add func(int64)
}

// String names the store as the store itself does (a mirror's URL), for
// a chain's errors.
func (c counting) String() string {
	if s, ok := c.Store.(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}

func (c counting) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	rc, err := c.Store.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &countingReader{rc, c.add}, nil
}

type countingReader struct {
	io.ReadCloser
	add func(int64)
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.add(int64(n))
	}
	return n, err
}

// writeNew writes a new file; the staging tree's sync makes it durable.
func writeNew(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncTree flushes every file and directory of the staging tree, so that
// what the rename exposes is on disk.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
