package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/light"
)

// at returns the sources read at the given heads (by source name)
// instead of at their verified heads, each with records[name] records:
// each head must be a commit of the source's verified history, which the
// caller checks first (checkHead). A source with no head given is left
// out.
func (ss Sources) at(ctx context.Context, heads map[string]string, records map[string]int) (Sources, error) {
	out := make(Sources, 0, len(ss))
	byOld := map[*Source]*Source{}
	for _, s := range ss {
		head, ok := heads[s.Name]
		if !ok {
			continue
		}
		c := s.Catalog
		if head != s.Head() {
			var err error
			if c, err = s.Repo.Catalog(ctx, head); err != nil {
				return nil, fmt.Errorf("repository %s at %s: %w", s.Name, head, err)
			}
		}
		at := *s
		at.Catalog, at.Records = c, records[s.Name]
		byOld[s] = &at
		out = append(out, &at)
	}
	for _, s := range out {
		if s.Via != nil {
			if via := byOld[s.Via]; via != nil {
				s.Via = via
			}
		}
	}
	return out, nil
}

// checkHead checks that head, which a lock pins for source s, is a
// commit of s's verified history, and says what is wrong if not.
func checkHead(ctx context.Context, s *Source, head string) string {
	if !index.IsCommitID(head) {
		return fmt.Sprintf("repository %s: head %q is not a commit id", s.Name, head)
	}
	if s.Repo == nil { // a light view: only its own head (see Check)
		if head != s.Head() {
			return fmt.Sprintf("repository %s: head %s is not the head %s the server's checkpoint signs", s.Name, head, s.Head())
		}
		return ""
	}
	id, err := s.Repo.Head(ctx, head)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && id != head) {
		return fmt.Sprintf("repository %s: head %s is not in the verified replica of its index (verified at %s): pull it (run without --offline), or the lock was made from another history", s.Name, head, s.Head())
	}
	if err != nil {
		return fmt.Sprintf("repository %s: head %s: %v", s.Name, head, err)
	}
	if ok, err := s.Repo.IsAncestor(ctx, head, s.Head()); err != nil || !ok {
		return fmt.Sprintf("repository %s: head %s is not in the verified history of its index (at %s)", s.Name, head, s.Head())
	}
	return ""
}

// rederive resolves the project again at the heads the lock pins and
// names every entry of the lock that differs from what that gives (nil
// if it could not resolve, which the rest says); the caller has checked
// the heads. It reads descriptors only, never archives.
func rederive(ctx context.Context, p *Project, l *Lock, srcs Sources) (map[string][]string, []string, error) {
	heads, records := map[string]string{}, map[string]int{}
	for _, lr := range l.Repositories {
		heads[lr.Name], records[lr.Name] = lr.Head, lr.Records
	}
	pinned, err := srcs.at(ctx, heads, records)
	if errors.Is(err, light.ErrNotKept) {
		return nil, nil, err // offline, and never read here: not the lock's fault
	}
	if err != nil {
		return nil, []string{fmt.Sprintf("reading the indexes at the heads the lock pins: %v", err)}, nil
	}
	// The versions withheld are the lock's word of what the server
	// refused when it was resolved, not the server's now (its refusals
	// change with time, not with the heads): a lock checks offline, from
	// an evidence bundle, and after the server refuses the version it
	// pins (the install then says the server's refusal: CheckServed).
	// A lock that withholds more only picks lower versions, which a
	// server may always make a client do by refusing to serve; each is
	// still judged by the project's policy.
	withheld := map[string][]string{}
	for _, pkg := range l.Packages {
		withheld[pkg.Name] = pkg.Withheld
	}
	want, err := resolve(ctx, p, pinned, withheld)
	if errors.Is(err, light.ErrNotKept) {
		return nil, nil, err
	}
	if err != nil {
		return nil, []string{fmt.Sprintf("%s does not resolve at the heads the lock pins: %v", ProjectFile, err)}, nil
	}
	pkgs, rest := diffLocks(want, l)
	return pkgs, rest, nil
}

// diffLocks compares the lock as written (got) with the lock re-derived
// (want): per package name, what differs (a map, never nil); and the
// rest (the snapshot, the order).
func diffLocks(want, got *Lock) (map[string][]string, []string) {
	pkgs := map[string][]string{}
	var rest []string
	if !samePin(want.Snapshot, got.Snapshot) {
		switch {
		case want.Snapshot == nil:
			rest = append(rest, fmt.Sprintf("snapshot: cairn.lock says %s, but %s names no snapshot", describePin(got.Snapshot, nil), ProjectFile))
		case got.Snapshot == nil:
			rest = append(rest, fmt.Sprintf("snapshot: %s resolves %s at the pinned heads, cairn.lock has none", ProjectFile, describePin(want.Snapshot, nil)))
		default:
			rest = append(rest, fmt.Sprintf("snapshot: %s resolves %s at the pinned heads, cairn.lock says %s", ProjectFile, describePin(want.Snapshot, got.Snapshot), describePin(got.Snapshot, want.Snapshot)))
		}
	}
	have := map[string]*Locked{}
	for i := range got.Packages {
		g := &got.Packages[i]
		if have[g.Name] != nil {
			pkgs[g.Name] = append(pkgs[g.Name], fmt.Sprintf("package %s: listed twice in cairn.lock", g.Name))
			continue
		}
		have[g.Name] = g
	}
	wanted := map[string]bool{}
	for i := range want.Packages {
		w := &want.Packages[i]
		wanted[w.Name] = true
		g := have[w.Name]
		if g == nil {
			pkgs[w.Name] = append(pkgs[w.Name], fmt.Sprintf("package %s: missing from cairn.lock; %s resolves %s at the pinned heads", w.Name, ProjectFile, w.Version))
			continue
		}
		if d := diffLocked(w, g); len(d) > 0 {
			pkgs[w.Name] = append(pkgs[w.Name], d...)
		}
	}
	for _, g := range got.Packages {
		if !wanted[g.Name] {
			pkgs[g.Name] = append(pkgs[g.Name], fmt.Sprintf("package %s: in cairn.lock, but %s does not resolve to it at the pinned heads", g.Name, ProjectFile))
		}
	}
	if len(pkgs) > 0 || len(rest) > 0 {
		return pkgs, rest
	}
	// Entry by entry they agree: so must the whole, in order.
	if !slices.IsSortedFunc(got.Packages, func(a, b Locked) int { return cmpString(a.Name, b.Name) }) {
		return pkgs, []string{"packages are not in name order"}
	}
	// The repositories were checked one by one (their checkpoints
	// against the index, as a lock keeps an earlier one of the same head).
	w, g := *want, *got
	w.Digest, g.Digest = "", ""
	w.Repositories = g.Repositories
	// Compared compact: the lock's indented body is a function of its
	// compact encoding, and that is a function of the indented one, so
	// they are equal exactly when the bodies are (without indenting two
	// bodies of every package).
	wb, err1 := json.Marshal(&w)
	gb, err2 := json.Marshal(&g)
	if err1 != nil || err2 != nil || string(wb) != string(gb) {
		return pkgs, []string{fmt.Sprintf("it is not what %s resolves to at the pinned heads", ProjectFile)}
	}
	return pkgs, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// diffLocked says how entry g differs from the re-derived entry w.
func diffLocked(w, g *Locked) []string {
	var out []string
	add := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("package %s: ", w.Name)+fmt.Sprintf(format, args...))
	}
	if g.Version != w.Version {
		add("%s resolves %s at the pinned heads, cairn.lock says %s", ProjectFile, w.Version, g.Version)
		return out // the rest follows from the version
	}
	if g.Repository != w.Repository {
		add("%s resolves it from repository %s at the pinned heads, cairn.lock says %s", ProjectFile, w.Repository, g.Repository)
	}
	if g.Descriptor != w.Descriptor {
		add("%s resolves descriptor %s at the pinned heads, cairn.lock says %s", ProjectFile, w.Descriptor, g.Descriptor)
	}
	if !slices.Equal(g.Withheld, w.Withheld) {
		add("withheld %q in cairn.lock; %s resolves it withholding %q", g.Withheld, ProjectFile, w.Withheld)
	}
	if !slices.Equal(g.ChosenBy, w.ChosenBy) {
		add("chosen_by %q in cairn.lock; %s resolves it as %q", g.ChosenBy, ProjectFile, w.ChosenBy)
	}
	for _, wa := range w.Artifacts {
		var gs []LockedArtifact
		for _, ga := range g.Artifacts {
			if ga.Platform == wa.Platform {
				gs = append(gs, ga)
			}
		}
		switch {
		case len(gs) == 0:
			add("no artifact for %s in cairn.lock; %s resolves it to %s", wa.Platform, ProjectFile, describeArtifact(wa))
		case len(gs) > 1:
			add("%d artifacts for %s in cairn.lock; %s resolves it to %s", len(gs), wa.Platform, ProjectFile, describeArtifact(wa))
		case gs[0] != wa:
			add("artifact for %s in cairn.lock is %s; %s resolves it to %s", wa.Platform, describeArtifact(gs[0]), ProjectFile, describeArtifact(wa))
		}
	}
	for _, ga := range g.Artifacts {
		if !slices.ContainsFunc(w.Artifacts, func(a LockedArtifact) bool { return a.Platform == ga.Platform }) {
			add("artifact for %s in cairn.lock, which %s's platforms do not name", ga.Platform, ProjectFile)
		}
	}
	if len(out) == 0 && !slices.Equal(g.Artifacts, w.Artifacts) {
		add("artifacts are not in the order of %s's platforms", ProjectFile)
	}
	return out
}

func describeArtifact(a LockedArtifact) string {
	return fmt.Sprintf("%s %s %s", a.Kind, a.File, a.Ref)
}

func samePin(a, b *SnapshotPin) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// describePin names a snapshot pin, in full when its short name would
// not tell it from other.
func describePin(pin, other *SnapshotPin) string {
	s := snapName(pin)
	if other != nil && snapName(other) == s {
		s = fmt.Sprintf("%s in repository %s, %s", s, pin.Repository, pin.Ref)
	}
	return s
}
