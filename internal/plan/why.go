package plan

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/policy"
)

// Explanation says why a package is in a plan at its version: what chose
// it, every record about it, and the policy's verdict.
type Explanation struct {
	Package  Locked             `json:"package"`
	Snapshot *SnapshotPin       `json:"snapshot,omitempty"`
	Head     string             `json:"head"` // the index head the records are read at
	Records  []index.RecordView `json:"records"`
	// Via and Certifications: for a package of an upstream line, the
	// repository that follows it and its own records about the version.
	Via            string             `json:"via,omitempty"`
	Certifications []index.RecordView `json:"certifications,omitempty"`
	Verdict        *policy.Verdict    `json:"verdict,omitempty"`
}

// NotInPlanError says a package is not in a plan. It is an
// fs.ErrNotExist: the CLI exits "not found".
type NotInPlanError struct{ Name string }

func (e *NotInPlanError) Error() string {
	return fmt.Sprintf("%s is not in the plan: neither the snapshot, %s nor a dependency brings it in", e.Name, ProjectFile)
}

// Unwrap returns fs.ErrNotExist.
func (e *NotInPlanError) Unwrap() error { return fs.ErrNotExist }

// Why explains the package named name in lock l, its verdict judged at
// time at.
func Why(ctx context.Context, l *Lock, srcs Sources, pol *policy.Policy, name string, at time.Time) (*Explanation, error) {
	// NAME@VERSION names the version the plan holds, or none.
	name, version, pinned := strings.Cut(name, "@")
	pkg := l.Package(name)
	if pkg == nil {
		return nil, &NotInPlanError{Name: name}
	}
	if pinned && version != pkg.Version {
		return nil, fmt.Errorf("%s@%s is not in the plan, which holds %s (cairn why %s explains that one): %w", name, version, pkg.ID(), name, fs.ErrNotExist)
	}
	s := srcs.Get(pkg.Repository)
	if s == nil {
		return nil, fmt.Errorf("%s: repository %s is not in %s", pkg.ID(), pkg.Repository, ProjectFile)
	}
	views, err := s.Catalog.Show(ctx, pkg.Name, pkg.Version)
	if err != nil {
		return nil, err
	}
	e := &Explanation{Package: *pkg, Snapshot: l.Snapshot, Head: s.Head(), Records: views[0].Records}
	if s.Via != nil {
		e.Via = s.Via.Name
		if e.Certifications, err = s.Via.Catalog.ShowUpstream(ctx, s.Upstream, pkg.Name, pkg.Version); err != nil {
			return nil, err
		}
	}
	if pol != nil {
		if e.Verdict, err = Verdict(s, pol, pkg.Name, pkg.Version, pkg.Platforms(), at); err != nil {
			return nil, err
		}
	}
	return e, nil
}
