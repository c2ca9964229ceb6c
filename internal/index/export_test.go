package index

import (
	"context"
	"sort"
	"time"

	"cairn.dev/cairn/internal/gitx"
)

// Doors for the external tests (package index_test) into what they need
// of the inside: the tests author records through package author, which
// imports index, so they cannot live in package index.

// Prepare readies an added file of a hand-built commit for Apply.
var Prepare = prepare

// ResetReader drops the repository's git reader, as a lost race does.
func (r *Repo) ResetReader() { r.resetReader() }

// SetDeriveAhead sets how many commits deriveLog's walk may run ahead of
// its reader, and returns the restore.
func SetDeriveAhead(n int) (restore func()) {
	old := deriveAhead
	deriveAhead = n
	return func() { deriveAhead = old }
}

// SetRebaseAt sets how many commits a rebased line may replay before it is
// verified from its introduction again, and returns the restore.
func SetRebaseAt(n int) (restore func()) {
	old := rebaseAt
	rebaseAt = n
	return func() { rebaseAt = old }
}

// SetNameSetExact sets how many package names a replay keeps exactly
// before its Bloom filter, and returns the restore.
func SetNameSetExact(n int) (restore func()) {
	old := nameSetExact
	nameSetExact = n
	return func() { nameSetExact = old }
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

// HistoryFiles lists every file the history up to commit added, in index
// order (commits oldest first, then by path), with its leaf index,
// commit and time: what a light client would prove of the whole index.
func (r *Repo) HistoryFiles(ctx context.Context, commit string) ([]MemFile, error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, err
	}
	var out []MemFile
	err = r.git.Walk(ctx, gitx.WalkOptions{To: commit}, func(e *gitx.LogEntry) error {
		var added []MemFile
		for _, ch := range e.Changes {
			if ch.Status != 'A' {
				continue
			}
			o, err := rd.Read(ch.NewID)
			if err != nil {
				return err
			}
			added = append(added, MemFile{Path: ch.Path, Data: o.Data, Commit: e.ID, Time: time.Unix(e.Time, 0).UTC()})
		}
		sort.Slice(added, func(i, j int) bool { return added[i].Path < added[j].Path })
		for _, f := range added {
			f.Index = int64(len(out))
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// SubjectsMemo returns SubjectsOf with a memo of its own, as a replay's
// worker keeps one.
func SubjectsMemo() func(path string) []string {
	var m subjectMemo
	return m.subjectsOf
}

// SetHookBeforeRecompute sets what a full verification runs between its
// first look at the log kept and taking the log's write lock, and returns
// the restore.
func SetHookBeforeRecompute(f func()) (restore func()) {
	old := testHookBeforeRecompute
	testHookBeforeRecompute = f
	return func() { testHookBeforeRecompute = old }
}

// HoldsTree reports whether p holds its package tree's bytes.
func (p PackageTree) HoldsTree() bool { return p.tree != nil }

// WithTreeID is p with its Tree id replaced, its bytes kept.
func (p PackageTree) WithTreeID(id string) PackageTree { p.Tree = id; return p }
