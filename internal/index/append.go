package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cairn.dev/cairn/internal/gitx"
)

// packLimit is how many packs an index may have before appends repack.
const packLimit = 50

// maxRetries bounds how often Append retries after losing a race.
const maxRetries = 8

// Append adds files to the index in one commit on main. It first verifies
// whatever is new since the last verified head, then checks the commit
// against every rule, writes it, and moves main with compare-and-swap;
// if another writer moved main first, it checks again on the new head.
// Nothing is written to main unless the rules pass. It returns the commit.
func (r *Repo) Append(ctx context.Context, files []gitx.File, ident, message string) (string, error) {
	for attempt := 0; ; attempt++ {
		res, err := r.Verify(ctx, false)
		if err != nil {
			return "", fmt.Errorf("the index does not verify, so nothing was added: %w", err)
		}
		id, err := r.commit(ctx, res.Head, files, ident, message)
		if errors.Is(err, gitx.ErrRefMoved) && attempt < maxRetries {
			r.resetReader() // ask a new git process where main is now
			continue
		}
		return id, err
	}
}

// commit checks files as a commit on parent ("" for the introduction),
// writes it, and moves main from parent to it.
func (r *Repo) commit(ctx context.Context, parent string, files []gitx.File, ident, message string) (string, error) {
	// Start git's ref update now: its start-up overlaps the checks below.
	update, err := r.git.StartRefUpdate(ctx, "cairn: "+message)
	if err != nil {
		return "", err
	}
	defer update.Abort()
	id, err := r.build(ctx, r.Config.Introduction, parent, files, ident, message)
	if err != nil {
		return "", err
	}
	if err := update.Commit(ctx, MainRef, id, parent); err != nil {
		return "", err
	}
	m, _ := r.loadMarker()
	records := len(files)
	if m != nil {
		records += m.Records
	}
	if err := r.saveMarker(marker{Head: id, Records: records}); err != nil {
		return "", err
	}
	// One pack per append: roll them up now and then (best effort: a
	// failure here loses nothing).
	r.git.MaybeRepack(ctx, packLimit)
	if parent != "" {
		// A clone with a work tree: bring it along (best effort; the
		// index itself is already complete).
		r.git.CheckoutTree(ctx, parent, id)
	}
	return id, nil
}

// CommitOn checks files as one commit on parent, a verified head of line
// l, against every rule of l's index, and writes it — moving no ref. It
// is how a version is copied to another index (cairn promote): the commit
// is pushed there, and l's ref moves when the push lands.
func (r *Repo) CommitOn(ctx context.Context, l Line, parent string, files []gitx.File, ident, message string) (string, error) {
	head, _, err := r.VerifiedHead(l)
	if err != nil {
		return "", err
	}
	if head != parent || parent == "" {
		return "", fmt.Errorf("%s is verified at %q, not at %s: pull it first", l.Name, head, parent)
	}
	return r.build(ctx, l.Introduction, parent, files, ident, message)
}

// build checks files as a commit on parent (of the index whose
// introduction is given) and writes the commit's objects.
func (r *Repo) build(ctx context.Context, introduction, parent string, files []gitx.File, ident, message string) (string, error) {
	rd, err := r.reader(ctx)
	if err != nil {
		return "", err
	}
	now := time.Now()
	c := &Commit{Time: now}
	st := NewOverlay(nil)
	baseTree := ""
	if parent != "" {
		pc, err := rd.Commit(parent)
		if err != nil {
			return "", err
		}
		baseTree = pc.Tree
		c.Parents = []string{parent}
		// Commit times never go backwards, whatever this machine's clock says.
		c.ParentTime = time.Unix(pc.Time, 0)
		if now.Before(c.ParentTime) {
			now, c.Time = c.ParentTime, c.ParentTime
		}
		if st, err = r.State(ctx, parent); err != nil {
			return "", err
		}
	}
	for _, f := range files {
		af := &File{Path: f.Path, Status: 'A', Mode: gitx.ModeFile, Data: f.Data}
		prepare(af)
		c.Files = append(c.Files, af)
	}
	if err := Apply(st, c, introduction); err != nil {
		return "", err
	}
	batch := r.git.NewBatch()
	tree, err := batch.AddToTree(rd, baseTree, files)
	if errors.Is(err, gitx.ErrExists) {
		return "", &RuleError{Rule: RuleAppendOnly, Detail: err.Error()}
	}
	if err != nil {
		return "", err
	}
	id := batch.Write("commit", gitx.FormatCommit(tree, c.Parents, ident, now.Unix(), message))
	if err := batch.Flush(); err != nil {
		return "", err
	}
	return id, nil
}
