package certifier

import (
	"context"

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
// the order they were published (index.Repo.PublishedBetween). Only
// descriptors count: a record about an old version is not a new version.
func NewVersions(ctx context.Context, r *index.Repo, from, to string) ([]Version, error) {
	published, err := r.PublishedBetween(ctx, from, to)
	var out []Version
	for _, p := range published {
		out = append(out, Version{Name: p.Name, Version: p.Version, Commit: p.Commit})
	}
	return out, err
}
