package install

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
)

// A pipeline fetches the jobs' blobs into the cache, o.Jobs at a time,
// and unpacks each package into the staging tree as soon as its blob is
// cached and the packages above it are unpacked, one worker a processor:
// downloads, copies and digests overlap, and use every core.
//
// A package is unpacked after those whose directories hold its own
// (example.com/greet before example.com/greet/v2): a repair of the one
// above removes its directory and unpacks it afresh. Packages that share
// a blob are unpacked one at a time, so that one's repair of the cached
// file never pulls it from under another.
type pipeline struct {
	ctx     context.Context
	fail    func(error)
	jobs    []job
	staging string
	o       Options
	res     *Result
	m       *Manifest
	bytes   atomic.Int64 // fetched (or found cached) so far

	mu       sync.Mutex // guards what follows, res and m
	err      error      // the first failure
	cached   []bool     // jobs whose blob is in the cache
	above    []int      // jobs: how many packages above it are not unpacked yet
	below    [][]int    // jobs: the packages beneath it
	byRef    map[blob.Ref][]int
	refMu    map[blob.Ref]*sync.Mutex
	fetched  int // packages whose blob is cached
	left     int // packages not unpacked yet
	ready    chan int
	finished chan struct{}
}

// fetchAndUnpack fetches and unpacks every job into staging, filling
// res and m.
func fetchAndUnpack(ctx context.Context, jobs []job, staging string, o Options, res *Result, m *Manifest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &pipeline{ctx: ctx, jobs: jobs, staging: staging, o: o, res: res, m: m,
		cached: make([]bool, len(jobs)), above: make([]int, len(jobs)), below: make([][]int, len(jobs)),
		byRef: map[blob.Ref][]int{}, refMu: map[blob.Ref]*sync.Mutex{},
		left: len(jobs), ready: make(chan int, len(jobs)), finished: make(chan struct{})}
	p.fail = func(err error) {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.mu.Unlock()
		cancel()
	}
	folded := make([]string, len(jobs))
	for i := range jobs {
		folded[i] = descriptor.FoldName(jobs[i].pkg.Name) + "/"
		jobs[i].beneath = beneath(jobs, jobs[i].pkg.Name)
		ref := jobs[i].art.Ref
		p.byRef[ref] = append(p.byRef[ref], i)
		if p.refMu[ref] == nil {
			p.refMu[ref] = new(sync.Mutex)
		}
	}
	for i := range jobs {
		for k := range jobs {
			if k != i && strings.HasPrefix(folded[i], folded[k]) {
				p.above[i]++
				p.below[k] = append(p.below[k], i)
			}
		}
	}
	if len(jobs) == 0 {
		close(p.finished)
	}
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.unpackWorker()
		}()
	}
	p.fetch()
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	if p.left > 0 {
		return ctx.Err()
	}
	return nil
}

// report tells o.Progress how far the install is.
func (p *pipeline) report(phase string) {
	if p.o.Progress == nil {
		return
	}
	p.mu.Lock()
	pkgs := p.fetched
	p.mu.Unlock()
	p.o.Progress(Progress{Bytes: p.bytes.Load(), TotalBytes: p.res.Bytes, Packages: pkgs, TotalPackages: len(p.jobs), Phase: phase})
}

// fetch brings every job's blob into the cache, o.Jobs at a time, and
// hands each package whose blob is cached to the unpackers.
// tampered notes a source that served other bytes than a digest names.
func (p *pipeline) tampered(t Tampered) {
	p.mu.Lock()
	p.res.Tampered = append(p.res.Tampered, t)
	p.mu.Unlock()
}

func (p *pipeline) fetch() {
	work := make(chan job)
	var wg sync.WaitGroup
	for w := 0; w < p.o.Jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				cached, repaired, err := fetchOne(p.ctx, j, p.o.Cache, p.o.Offline, func(n int64) { p.bytes.Add(n); p.report("fetching") }, p.tampered)
				p.mu.Lock()
				if repaired != nil {
					p.res.Repaired = append(p.res.Repaired, repaired)
				}
				if err == nil {
					if cached {
						p.res.Cached++
					} else {
						p.res.Fetched++
					}
					p.isCached(j.art.Ref)
				}
				p.mu.Unlock()
				if err != nil {
					p.fail(fmt.Errorf("package %s: artifact %s: %w", j.pkg.ID(), j.art.File, err))
					continue
				}
				p.report("fetching")
			}
		}()
	}
	seen := map[blob.Ref]bool{}
	for _, j := range p.jobs {
		if seen[j.art.Ref] {
			continue
		}
		seen[j.art.Ref] = true
		select {
		case work <- j:
		case <-p.ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// isCached marks the packages of a cached blob, and hands those whose
// packages above are unpacked to the unpackers; p.mu is held.
func (p *pipeline) isCached(ref blob.Ref) {
	for _, i := range p.byRef[ref] {
		p.cached[i] = true
		p.fetched++
		if p.above[i] == 0 {
			p.ready <- i
		}
	}
}

// unpackWorker unpacks packages as they become ready, until every one
// is unpacked or the install fails.
func (p *pipeline) unpackWorker() {
	for {
		var i int
		select {
		case i = <-p.ready:
		case <-p.finished:
			return
		case <-p.ctx.Done():
			return
		}
		j := p.jobs[i]
		p.report("unpacking " + j.pkg.ID())
		mu := p.refMu[j.art.Ref]
		mu.Lock()
		files, repaired, err := unpackCached(p.ctx, j, p.staging, p.o, p.tampered)
		mu.Unlock()
		if err != nil {
			p.fail(err)
			return
		}
		p.mu.Lock()
		if repaired != nil {
			p.res.Repaired = append(p.res.Repaired, repaired)
			p.res.Cached--
			p.res.Fetched++
		}
		p.res.Files += len(files)
		p.m.Packages[i] = Installed{Name: j.pkg.Name, Version: j.pkg.Version, Repository: j.pkg.Repository, Descriptor: j.pkg.Descriptor, Artifact: j.art, Files: files}
		for _, d := range p.below[i] {
			if p.above[d]--; p.above[d] == 0 && p.cached[d] {
				p.ready <- d
			}
		}
		if p.left--; p.left == 0 {
			close(p.finished)
		}
		p.mu.Unlock()
	}
}
