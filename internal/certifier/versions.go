package certifier

import (
	"context"

	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index"
)

// Version is a version published in a repository's verified history.
type Version struct {
	Name, Version string
	Commit        string // the commit that published it
}

// ID is name@version.
func (v Version) ID() string { return v.Name + "@" + v.Version }

// NewVersions lists the versions published in r's history after from (a
// commit the certifier dealt with; "" for the whole history) up to to, in
// the order they were published. Only descriptors count: a record about an
// old version is not a new version.
func NewVersions(ctx context.Context, r *index.Repo, from, to string) ([]Version, error) {
	var out []Version
	err := r.Git.Walk(ctx, gitx.WalkOptions{From: from, To: to, Paths: []string{"packages"}}, func(e *gitx.LogEntry) error {
		for _, ch := range e.Changes {
			if ch.Status != 'A' {
				continue
			}
			loc, err := index.ParsePath(ch.Path)
			if err != nil || loc.Place != index.PlaceDescriptor {
				continue
			}
			out = append(out, Version{Name: loc.Name, Version: loc.Version, Commit: e.ID})
		}
		return nil
	})
	return out, err
}
