package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/snapshot"
	"cairn.dev/cairn/internal/verdict"
)

// parsedRanges holds the semver ranges parsed (range → *semver.Constraints):
// cairn.yaml's are parsed when it is read and again when it is resolved,
// and many repeat (^1.0). A parsed range is only read (Check), so one
// serves every caller.
var parsedRanges sync.Map

// parseRange parses a semver range once per process.
func parseRange(r string) (*semver.Constraints, error) {
	if c, ok := parsedRanges.Load(r); ok {
		return c.(*semver.Constraints), nil
	}
	c, err := semver.NewConstraint(r)
	if err == nil {
		parsedRanges.Store(r, c)
	}
	return c, err
}

// LoadPolicy reads the project's policy (file overrides it when set;
// either may be index:NAME, a policy of the index: see readPolicy) and
// binds its issuers to the sources' names (policy.Bind); nil when there
// is none.
func LoadPolicy(p *Project, file string, srcs Sources) (*policy.Policy, error) {
	ref, read := file, os.ReadFile // a file named on the command line
	if ref == "" {
		ref, read = p.Policy, p.readFile
	}
	if ref == "" {
		return nil, nil
	}
	data, pin, err := readPolicy(ref, read, srcs)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	pol, err := policy.Parse(pin.File, data)
	if err != nil {
		return nil, err
	}
	return pol, pol.Bind(srcs.Names())
}

// CheckIssuers checks the issuers pol names against what the
// repositories the project reads have granted (policy.CheckIssuers): a
// light source reads every key's files for it, once.
func CheckIssuers(pol *policy.Policy, srcs Sources, warn func(string)) error {
	if pol == nil {
		return nil
	}
	return pol.CheckIssuers(srcs.Names(), func(repo string) (names, ids map[string]bool, err error) {
		s := srcs.Get(repo)
		if s == nil {
			return nil, nil, fmt.Errorf("repository %s is not in %s", repo, ProjectFile)
		}
		return s.Catalog.Holders()
	}, warn)
}

// readFile reads the project's file at name, a path relative to its
// directory (or absolute): from Files when the project holds them.
func (p *Project) readFile(name string) ([]byte, error) {
	if p.Files != nil {
		data, ok := p.Files[filepath.ToSlash(name)]
		if !ok {
			return nil, fmt.Errorf("%s: %w (not one of the project's files)", name, fs.ErrNotExist)
		}
		return data, nil
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(p.Dir, name)
	}
	return os.ReadFile(name)
}

func policyPin(p *Project, srcs Sources) (*PolicyPin, error) {
	if p.Policy == "" {
		return nil, nil
	}
	_, pin, err := readPolicy(p.Policy, p.readFile, srcs)
	if err != nil {
		return nil, err
	}
	if _, inIndex := IndexPolicy(p.Policy); !inIndex {
		pin.File = p.Policy // as cairn.yaml names it, relative to the project
	}
	return pin, nil
}

// ErrUnresolvable is the parent of the errors of resolution.
var ErrUnresolvable = errors.New("no build plan satisfies the project")

// choice is the version resolution settled on for a name.
type choice struct {
	src      *Source
	version  string
	desc     *descriptor.Descriptor
	ref      blob.Ref
	pinned   string       // why it cannot move: "snapshot lts-1.0", "cairn.yaml:12"
	withheld []string     // the higher versions the ranges accept that the server refused
	under    []constraint // the ranges choose chose it under
}

// constraint is a range some package puts on another.
type constraint struct {
	rng  string
	c    *semver.Constraints
	from string
}

type resolver struct {
	ctx  context.Context
	srcs Sources
	// withheld, when a lock is re-derived, are the versions it says the
	// server refused when it was resolved (Locked.Withheld, by name):
	// those are not offered, and the server is not asked (its word
	// changes with time, not with the heads).
	withheld map[string][]string
	sources  map[string]*sourceOf // by name: where it is published and its versions
	descs    map[string]*choice   // by name@version: a descriptor read once
	chosen   map[string]*choice
	roots    map[string][]string     // name → why it is wanted at all
	ranges   map[string][]constraint // the project's own ranges
	final    map[string][]constraint // every range of the settled closure
}

// Resolve resolves the project against the verified indexes into a lock:
// the snapshot's entries and the extra packages, then every dependency,
// one version per name — the snapshot's or the pin's, else the highest
// that satisfies every range on it — each taken from the first repository
// that publishes its name. The policy (if any) is not applied here: see
// Evaluate.
//
// A version the server of a light source refuses (light.Refusals: its
// policy's word) is not offered: a range takes the highest version it
// accepts among the others (the lock names those it passed over:
// Locked.Withheld), and a version pinned (by cairn.yaml or the snapshot)
// that the server refuses is a *ServerRefusedError.
func Resolve(ctx context.Context, p *Project, srcs Sources) (*Lock, error) {
	l, err := ResolveToWrite(ctx, p, srcs)
	if err != nil {
		return nil, err
	}
	// Its digest computed.
	if _, err := l.Marshal(); err != nil {
		return nil, err
	}
	return l, nil
}

// ResolveToWrite is Resolve, the lock's digest left empty: for a caller
// that writes the lock (WriteLock computes it), one encoding of the lock
// less.
func ResolveToWrite(ctx context.Context, p *Project, srcs Sources) (*Lock, error) {
	return resolve(ctx, p, srcs, nil)
}

// resolve is Resolve, without the lock's digest (a re-derived lock is
// compared without it); with withheld (a lock's, by name) not nil, the
// versions not offered are those, and the servers are not asked.
func resolve(ctx context.Context, p *Project, srcs Sources, withheld map[string][]string) (*Lock, error) {
	rs := &resolver{ctx: ctx, srcs: srcs, withheld: withheld, sources: map[string]*sourceOf{}, descs: map[string]*choice{}, chosen: map[string]*choice{}, roots: map[string][]string{}, ranges: map[string][]constraint{}}
	l := &Lock{Version: LockVersion, Project: digestOf(p.Raw), Platforms: p.Platforms}
	var err error
	if l.Policy, err = policyPin(p, srcs); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	for _, s := range srcs {
		lr := LockedRepo{Name: s.Name, Location: s.Where(), Introduction: s.Introduction, Head: s.Head(), Records: s.Records}
		if s.Checkpoint != nil {
			lr.Checkpoint = string(s.Checkpoint.Raw)
		}
		l.Repositories = append(l.Repositories, lr)
	}
	if p.Snapshot != nil {
		snap, pin, err := rs.snapshot(p.Snapshot)
		if err != nil {
			return nil, err
		}
		l.Snapshot = pin
		why := "snapshot " + snapName(pin)
		for _, e := range snap.Packages {
			src, d, ref, err := rs.descriptor(e.Name, e.Version)
			if err != nil {
				return nil, fmt.Errorf("%w: snapshot %s: entry %s@%s: %w", ErrUnresolvable, snapName(pin), e.Name, e.Version, err)
			}
			if err := rs.refused(src, e.Name, e.Version, why); err != nil {
				return nil, err
			}
			if ref != e.Descriptor {
				return nil, fmt.Errorf("%w: snapshot %s: entry %s@%s names descriptor %s, but repository %s has %s", ErrUnresolvable, snapName(pin), e.Name, e.Version, e.Descriptor, src.Name, ref)
			}
			rs.chosen[e.Name] = &choice{src: src, version: e.Version, desc: d, ref: ref, pinned: why}
			rs.roots[e.Name] = append(rs.roots[e.Name], why)
		}
	}
	for _, w := range p.Packages {
		where := w.where()
		if w.Pinned() {
			src, d, ref, err := rs.descriptor(w.Name, w.Version)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %s@%s: %w", ErrUnresolvable, where, w.Name, w.Version, err)
			}
			if ref != *w.Ref {
				return nil, fmt.Errorf("%w: %s: %s@%s is pinned to descriptor %s, but repository %s has %s", ErrUnresolvable, where, w.Name, w.Version, *w.Ref, src.Name, ref)
			}
			if err := rs.refused(src, w.Name, w.Version, where); err != nil {
				return nil, err
			}
			rs.chosen[w.Name] = &choice{src: src, version: w.Version, desc: d, ref: ref, pinned: where}
			rs.roots[w.Name] = append(rs.roots[w.Name], where+" pins "+w.Version)
			continue
		}
		c, _ := parseRange(w.Range)
		if old := rs.chosen[w.Name]; old != nil && old.pinned != "" && !c.Check(semver.MustParse(old.version)) {
			// A range the snapshot's version does not meet overrides the
			// snapshot for that package, as Stack's extra-deps do.
			delete(rs.chosen, w.Name)
			rs.roots[w.Name] = []string{fmt.Sprintf("%s wants %s, over %s's %s", where, w.Range, old.pinned, old.version)}
			rs.ranges[w.Name] = append(rs.ranges[w.Name], constraint{w.Range, c, where})
			continue
		}
		rs.ranges[w.Name] = append(rs.ranges[w.Name], constraint{w.Range, c, where})
		rs.roots[w.Name] = append(rs.roots[w.Name], where+" wants "+w.Range)
	}
	if err := rs.settle(); err != nil {
		return nil, err
	}
	if p.Verified {
		// Verified mode pins every package by hash: a dependency's range
		// would take whatever version was published last.
		var out []*LineError
		for _, name := range sortedNames(rs.chosen) {
			if ch := rs.chosen[name]; ch.pinned == "" {
				out = append(out, &LineError{File: ProjectFile, Msg: fmt.Sprintf("package %s@%s (%s) is pinned by nothing: add it to packages: as {version: %s, sha256: %s, size: %d}, or to the snapshot", name, ch.version, strings.Join(rs.why(name), "; "), ch.version, ch.ref.SHA256, ch.ref.Size)})
			}
		}
		if len(out) > 0 {
			return nil, &UnpinnedError{Offenders: out}
		}
	}
	// Sized once; none chosen is no list (the lock's "packages": null).
	if len(rs.chosen) > 0 {
		l.Packages = make([]Locked, 0, len(rs.chosen))
	}
	for _, name := range sortedNames(rs.chosen) {
		ch := rs.chosen[name]
		lp := Locked{Name: name, Version: ch.version, Repository: ch.src.Name, Descriptor: ch.ref, ChosenBy: rs.why(name), Withheld: ch.withheld}
		for _, pl := range p.Platforms {
			a, err := pick(ch.desc, pl)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrUnresolvable, ch.desc.ID(), err)
			}
			lp.Artifacts = append(lp.Artifacts, a)
		}
		l.Packages = append(l.Packages, lp)
	}
	return l, nil
}

func snapName(pin *SnapshotPin) string {
	if pin.Label != "" {
		return fmt.Sprintf("%s (label %s, sha256:%.12s)", pin.Name, pin.Label, pin.SHA256)
	}
	return fmt.Sprintf("%s (sha256:%.12s)", pin.Name, pin.SHA256)
}

// pick chooses a version's artifact for a platform: its binary, else its
// source.
func pick(d *descriptor.Descriptor, platform string) (LockedArtifact, error) {
	var src *descriptor.Artifact
	for i, a := range d.Artifacts {
		if a.Kind == "binary" && a.Platform == platform {
			return LockedArtifact{Platform: platform, Kind: a.Kind, File: a.File, Ref: a.Ref}, nil
		}
		if a.Kind == "source" {
			src = &d.Artifacts[i]
		}
	}
	if src == nil {
		return LockedArtifact{}, fmt.Errorf("no binary for %s and no source", platform)
	}
	return LockedArtifact{Platform: platform, Kind: src.Kind, File: src.File, Ref: src.Ref}, nil
}

// snapshot finds the project's snapshot in the first repository that has
// it (the label's target, or the pinned digest).
func (rs *resolver) snapshot(sr *SnapshotRef) (*snapshot.Snapshot, *SnapshotPin, error) {
	var errs []string
	for _, s := range rs.srcs {
		ref := sr.Ref
		if sr.Label != "" {
			m, err := s.Catalog.Label(sr.Label)
			if errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Sprintf("%s: no label %s", s.Name, sr.Label))
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			ref = &m.Snapshot
		}
		snap, err := s.Catalog.Snapshot(*ref)
		if errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Sprintf("%s: no snapshot sha256:%s", s.Name, ref.SHA256))
			continue
		}
		if errors.Is(err, index.ErrSizeMismatch) {
			return nil, nil, &LineError{File: ProjectFile, Line: sr.Line, Msg: "snapshot: " + err.Error()}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: snapshot: %w", ProjectFile, sr.Line, err)
		}
		if sr.Label == "" && sr.Name != "" && sr.Name != snap.Name {
			// What a reviewer reads ("bump to lts-2.0") must be what is
			// pinned.
			return nil, nil, &LineError{File: ProjectFile, Line: sr.Line, Msg: fmt.Sprintf("snapshot pinned as %s, but sha256:%s is snapshot %s: name the snapshot the digest is, or pin the digest of %s", sr.Name, ref.SHA256, snap.Name, sr.Name)}
		}
		return snap, &SnapshotPin{Name: snap.Name, Label: sr.Label, Repository: s.Name, Ref: *ref}, nil
	}
	return nil, nil, fmt.Errorf("%w: %s:%d: snapshot %s is in none of the repositories (%s)", ErrUnresolvable, ProjectFile, sr.Line, sr.Name, strings.Join(errs, "; "))
}

// sourceOf is where a name is published, and its versions there.
type sourceOf struct {
	src      *Source
	versions []string
}

// source is the first repository that publishes name (looked up once).
func (rs *resolver) source(name string) (*Source, []string, error) {
	if so, ok := rs.sources[name]; ok {
		return so.src, so.versions, nil
	}
	src, vs, err := rs.srcs.Publisher(name)
	if err == nil {
		rs.sources[name] = &sourceOf{src, vs}
	}
	return src, vs, err
}

// descriptor reads a version's descriptor from its source (once).
func (rs *resolver) descriptor(name, version string) (*Source, *descriptor.Descriptor, blob.Ref, error) {
	id := name + "@" + version
	if c, ok := rs.descs[id]; ok {
		return c.src, c.desc, c.ref, nil
	}
	s, _, err := rs.source(name)
	if err != nil {
		return nil, nil, blob.Ref{}, err
	}
	d, ref, err := s.Catalog.Descriptor(name, version)
	if err == nil {
		rs.descs[id] = &choice{src: s, version: version, desc: d, ref: ref}
	}
	return s, d, ref, err
}

// settle walks the closure from the roots until every name's version
// satisfies every range the chosen versions put on it: each round walks
// the closure of the current choices, collecting every range, then
// chooses each name again under all of them; it stops when no choice
// moves.
func (rs *resolver) settle() error {
	for round := 0; round < 100; round++ {
		ranges := map[string][]constraint{}
		for n, cs := range rs.ranges {
			ranges[n] = append(ranges[n], cs...)
		}
		seen := map[string]bool{}
		queue := sortedNames(rs.roots)
		for len(queue) > 0 {
			name := queue[0]
			queue = queue[1:]
			if seen[name] {
				continue
			}
			seen[name] = true
			ch := rs.chosen[name]
			if ch == nil {
				var err error
				if ch, err = rs.choose(name, ranges[name]); err != nil {
					return err
				}
				rs.chosen[name] = ch
			}
			for _, dep := range ch.desc.Dependencies {
				c, err := parseRange(dep.Version)
				if err != nil {
					return fmt.Errorf("%w: %s: dependency %s: %w", ErrUnresolvable, ch.desc.ID(), dep.Name, err)
				}
				ranges[dep.Name] = append(ranges[dep.Name], constraint{dep.Version, c, ch.desc.ID()})
				queue = append(queue, dep.Name)
			}
		}
		changed := false
		for _, name := range sortedNames(rs.chosen) {
			ch := rs.chosen[name]
			if !seen[name] {
				delete(rs.chosen, name) // no longer reachable
				changed = true
				continue
			}
			if ch.pinned != "" {
				v := semver.MustParse(ch.version)
				for _, c := range ranges[name] {
					if !c.c.Check(v) {
						return fmt.Errorf("%w: %s pins %s@%s, but %s requires %s %s", ErrUnresolvable, ch.pinned, name, ch.version, c.from, name, c.rng)
					}
				}
				continue
			}
			if sameRanges(ch.under, ranges[name]) {
				continue // chosen under these already: choose would say the same
			}
			next, err := rs.choose(name, ranges[name])
			if err != nil {
				return err
			}
			if next.version != ch.version {
				rs.chosen[name], changed = next, true
			}
		}
		if !changed {
			rs.final = ranges
			return nil
		}
	}
	return fmt.Errorf("%w: the ranges do not settle on one version per package after 100 rounds", ErrUnresolvable)
}

// sameRanges reports whether a and b are the same ranges from the same
// packages, in the same order.
func sameRanges(a, b []constraint) bool {
	return slices.EqualFunc(a, b, func(x, y constraint) bool { return x.rng == y.rng && x.from == y.from })
}

// choose picks the highest version satisfying every range (pre-releases
// only when a range names one).
func (rs *resolver) choose(name string, cs []constraint) (*choice, error) {
	s, versions, err := rs.source(name)
	if err != nil {
		var from []string
		for _, c := range cs {
			from = append(from, c.from)
		}
		var pe *light.ProofError
		var ie *light.InconsistentError
		if errors.As(err, &pe) || errors.As(err, &ie) || errors.Is(err, light.ErrUnavailable) || errors.Is(err, light.ErrNotKept) {
			// Not the ranges' fault: a server that lied, or did not
			// answer, or a read offline of what was never read.
			return nil, fmt.Errorf("%w (wanted by %s)", err, strings.Join(from, ", "))
		}
		return nil, fmt.Errorf("%w: %w (wanted by %s)", ErrUnresolvable, err, strings.Join(from, ", "))
	}
	rf, err := rs.refusals(s, name)
	if err != nil {
		return nil, err
	}
	var refused []light.Refusal
	var withheld []string
	for i := len(versions) - 1; i >= 0; i-- {
		v, err := semver.StrictNewVersion(versions[i])
		if err != nil {
			continue
		}
		ok := true
		for _, c := range cs {
			if !c.c.Check(v) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if rs.withheld != nil {
			if slices.Contains(rs.withheld[name], versions[i]) {
				withheld = append(withheld, versions[i])
				continue
			}
		} else if r := rf.Of(versions[i]); r != nil {
			refused = append(refused, *r)
			withheld = append(withheld, versions[i])
			continue
		}
		_, d, ref, err := rs.descriptor(name, versions[i])
		if err != nil {
			return nil, err
		}
		return &choice{src: s, version: versions[i], desc: d, ref: ref, withheld: withheld, under: slices.Clone(cs)}, nil
	}
	var want []string
	for _, c := range cs {
		want = append(want, fmt.Sprintf("%s (from %s)", c.rng, c.from))
	}
	if len(withheld) > 0 && len(refused) == 0 {
		return nil, fmt.Errorf("%w: every version of %s in repository %s that satisfies %s (%s) is withheld by %s: the server refused it when the lock was resolved", ErrUnresolvable, name, s.Name, strings.Join(want, " and "), strings.Join(withheld, ", "), LockFile)
	}
	if len(refused) > 0 {
		return nil, &ServerRefusedError{Name: name, Repository: s.Name, Wanted: strings.Join(want, " and "), Server: rf, Refused: refused, Introduction: s.server().Introduction}
	}
	return nil, fmt.Errorf("%w: no version of %s in repository %s satisfies %s; it has %s", ErrUnresolvable, name, s.Name, strings.Join(want, " and "), strings.Join(versions, ", "))
}

// refusals returns what the server of a light source refuses of name
// (see Source.Refusals); nil when a lock is re-derived (rs.withheld).
func (rs *resolver) refusals(s *Source, name string) (*light.Refusals, error) {
	if rs.withheld != nil {
		return nil, nil
	}
	return s.Refusals(rs.ctx, name)
}

// refused returns a *ServerRefusedError if the server of src refuses
// name@version, which where pins.
func (rs *resolver) refused(src *Source, name, version, where string) error {
	rf, err := rs.refusals(src, name)
	if err != nil {
		return err
	}
	if r := rf.Of(version); r != nil {
		return &ServerRefusedError{Name: name, Repository: src.Name, Pinned: where, Server: rf, Refused: []light.Refusal{*r}, Introduction: src.server().Introduction}
	}
	return nil
}

// why says what put a package in the plan at its version.
func (rs *resolver) why(name string) []string {
	out := append([]string(nil), rs.roots[name]...)
	for _, c := range rs.final[name] {
		if !strings.HasPrefix(c.from, ProjectFile+":") {
			out = append(out, "required by "+c.from+" ("+c.rng+")")
		}
	}
	sort.Strings(out)
	return out
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Evaluate applies a policy to every package of a lock, against each
// repository's verified index as it is now — so a vulnerability
// certified after the lock was written refuses the install — judged at
// time at (policy.Policy.Evaluate). It returns every verdict, and a
// *policy.RefusedError if any package is refused.
func Evaluate(l *Lock, srcs Sources, pol *policy.Policy, at time.Time) ([]*policy.Verdict, error) {
	if pol == nil {
		return nil, nil
	}
	var out []*policy.Verdict
	refused := &policy.RefusedError{}
	for i := range l.Packages {
		pkg := &l.Packages[i]
		s := srcs.Get(pkg.Repository)
		if s == nil {
			return nil, fmt.Errorf("package %s: repository %s is not in %s", pkg.ID(), pkg.Repository, ProjectFile)
		}
		v, err := Verdict(s, pol, pkg.Name, pkg.Version, pkg.Platforms(), at)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if !v.Allowed {
			refused.Verdicts = append(refused.Verdicts, v)
		}
	}
	if len(refused.Verdicts) > 0 {
		return out, refused
	}
	return out, nil
}

// Verdict is a policy's verdict on one version of a source, judged at
// time at, on the records verdict.Subject reads, about the artifacts a
// plan for platforms installs (pick: a record narrowed to other
// artifacts does not speak of them); with no platform, about the whole
// version.
func Verdict(s *Source, pol *policy.Policy, name, version string, platforms []string, at time.Time) (*policy.Verdict, error) {
	var local *verdict.Local
	if s.Via != nil {
		local = &verdict.Local{Catalog: s.Via.Catalog, Repository: s.Via.Name, Upstream: s.Upstream}
	}
	sub, err := verdict.Subject(s.Catalog, s.Name, name, version, local)
	if err != nil {
		return nil, err
	}
	for _, pl := range platforms {
		if a, err := pick(sub.Descriptor, pl); err == nil && !slices.Contains(sub.Artifacts, a.File) {
			sub.Artifacts = append(sub.Artifacts, a.File)
		}
	}
	return pol.Evaluate(sub, at), nil
}
