package index

import (
	"context"

	"cairn.dev/cairn/internal/gitx"
)

// Doors for the external tests (package index_test) into what they need
// of the inside: the tests author records through package author, which
// imports index, so they cannot live in package index.

// Prepare readies an added file of a hand-built commit for Apply.
var Prepare = prepare

// ResetReader drops the repository's git reader, as a lost race does.
func (r *Repo) ResetReader() { r.resetReader() }

// SetRebaseAt sets how many commits a rebased line may replay before it is
// verified from its introduction again, and returns the restore.
func SetRebaseAt(n int) (restore func()) {
	old := rebaseAt
	rebaseAt = n
	return func() { rebaseAt = old }
}

// GitReader is the repository's shared git reader.
func (r *Repo) GitReader(ctx context.Context) (*gitx.Reader, error) { return r.reader(ctx) }

// GitRepo is the repository's git door.
func (r *Repo) GitRepo() *gitx.Repo { return r.git }

// Detail is what show says of a record.
var Detail = detail

// Path is where the entry lives in the layout.
func (e Entry) Path() string { return e.path }

// FileAt reads a path of the layout at rev.
func (r *Repo) FileAt(ctx context.Context, rev, path string) ([]byte, bool, error) {
	return r.fileAt(ctx, rev, path)
}
