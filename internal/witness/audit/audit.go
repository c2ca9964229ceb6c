// Package audit is the auditing half of cairn's witness: for each cairn
// index whose log the witness audits (witness.Log.Audit), a full replica
// of the index in the witness's state directory, pulled from the index's
// server and verified by the index's rules, whose transparency log (a
// pure function of the history, docs/transparency.md) decides what the
// witness cosigns.
//
// A witness that checks only the consistency of trees cosigns any tree
// the log's key signs, so the key's holder can put a forged map leaf (a
// map that omits a `vulnerable` record) in a new tree and have it
// cosigned. An auditing witness cosigns a checkpoint only when its own
// verified log holds the checkpoint's tree: the tree's size ends at a
// commit (leaf size-1 is the map leaf of the checkpoint's cairn-head),
// its root is the checkpoint's, and so is that leaf's map root.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

// DefaultPullTimeout bounds one pull of an audited index: a pull goes on
// after the request that started it gave up (the log's submission times
// out first), so that the next submission finds the replica at the head.
const DefaultPullTimeout = 10 * time.Minute

// Auditor is a witness.Auditor keeping its replicas under a directory,
// one per index, named by the index's introduction. Audits of one index
// run one at a time (in this process); the witness's state lock is never
// held while they run.
type Auditor struct {
	dir         string
	pullTimeout time.Duration

	mu       sync.Mutex
	replicas map[string]*replica // by introduction
}

// replica is one audited index: its repository, opened once, and the
// lock its audits take.
type replica struct {
	mu sync.Mutex
	r  *index.Repo
}

// New returns an auditor keeping its replicas under dir (made if
// missing): dir/<introduction> for each index.
func New(dir string) *Auditor {
	return &Auditor{dir: dir, pullTimeout: DefaultPullTimeout, replicas: map[string]*replica{}}
}

// Close closes the replicas' repositories.
func (a *Auditor) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, rp := range a.replicas {
		rp.mu.Lock()
		if rp.r != nil {
			errs = append(errs, rp.r.Close())
			rp.r = nil
		}
		rp.mu.Unlock()
	}
	return errors.Join(errs...)
}

// line is the audited line of a replica: the server's main, verified
// against the index's introduction, as far as the checkpoints audited.
func line(r *index.Repo, introduction string) index.Line {
	return index.Line{Name: "audited index " + introduction, Ref: "refs/audit/main", Introduction: introduction,
		Marker: filepath.Join(r.LocalDir(), "audit.verified.json")}
}

// incoming is the ref a fetch lands at: the audited line's ref is moved
// to the head to audit only after, and the line's marker (its verified
// head, and the log committed with it) only by a verification.
const incoming = "refs/audit/incoming"

// Audit checks that the log's own verified replica of the index, pulled
// from l.Audit as far as the checkpoint's head, holds the checkpoint's
// tree (see the package's doc). Its errors wrap witness.ErrAudit when the
// tree is not the history's, or when the history breaks the rules;
// witness.ErrAuditUnavailable when it cannot tell now. The pull goes on
// after ctx ends (up to its own timeout), for the next audit.
func (a *Auditor) Audit(ctx context.Context, l witness.Log, text string) error {
	c, err := checkpoint.Parse(text)
	if err != nil {
		return fmt.Errorf("%w: %s: not a cairn checkpoint: %w", witness.ErrAudit, l.Origin, err)
	}
	if c.Origin != l.Origin || c.Origin != checkpoint.Origin(c.Introduction()) {
		return fmt.Errorf("%w: the checkpoint's origin %s is not the audited log's, %s", witness.ErrAudit, c.Origin, l.Origin)
	}
	done := make(chan error, 1)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.pullTimeout)
	go func() {
		defer cancel()
		done <- a.audit(pctx, l.Audit, c)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: still pulling %s up to head %s: %w", witness.ErrAuditUnavailable, l.Origin, l.Audit, c.Head, ctx.Err())
	}
}

// Pull brings the replica of the index whose introduction is given up to
// the head of the checkpoint the server at url serves now, verified: what
// `cairn witness add-log --audit` does once, so that the first checkpoint
// submitted is audited by a pull of a few commits. Its head is not
// trusted: the audits judge each checkpoint.
func (a *Auditor) Pull(ctx context.Context, introduction, url string, note []byte) (head string, size int64, err error) {
	c, err := checkpoint.Claimed(note)
	if err != nil {
		return "", 0, fmt.Errorf("the checkpoint of %s: %w", url, err)
	}
	if c.Introduction() != introduction {
		return "", 0, fmt.Errorf("the checkpoint of %s is of origin %s, not %s", url, c.Origin, checkpoint.Origin(introduction))
	}
	rp, err := a.replica(ctx, introduction)
	if err != nil {
		return "", 0, err
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if err := pull(ctx, rp.r, introduction, url, c.Head); err != nil {
		return "", 0, err
	}
	st, err := rp.r.StoreOf(line(rp.r, introduction))
	if err != nil {
		return "", 0, err
	}
	return st.Head(), st.Size(), nil
}

// replica opens (or makes) the replica of an index.
func (a *Auditor) replica(ctx context.Context, introduction string) (*replica, error) {
	a.mu.Lock()
	rp := a.replicas[introduction]
	if rp == nil {
		rp = &replica{}
		a.replicas[introduction] = rp
	}
	a.mu.Unlock()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.r != nil {
		return rp, nil
	}
	dir := filepath.Join(a.dir, introduction)
	var (
		r   *index.Repo
		err error
	)
	if index.IsRepository(dir) {
		r, err = index.Open(ctx, dir)
	} else {
		r, err = index.InitReplica(ctx, dir, introduction)
	}
	if err != nil {
		return nil, fmt.Errorf("the audit replica of %s at %s: %w", checkpoint.Origin(introduction), dir, err)
	}
	if r.Config.Introduction != introduction {
		r.Close()
		return nil, fmt.Errorf("the audit replica at %s is of introduction %s, not %s", dir, r.Config.Introduction, introduction)
	}
	rp.r = r
	return rp, nil
}

func (a *Auditor) audit(ctx context.Context, url string, c checkpoint.Checkpoint) error {
	intro := c.Introduction()
	rp, err := a.replica(ctx, intro)
	if err != nil {
		return fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	r := rp.r
	if err := pull(ctx, r, intro, url, c.Head); err != nil {
		return err
	}
	st, err := r.StoreOf(line(r, intro))
	if err != nil {
		return fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
	}
	return holds(st, c)
}

// pull verifies the audited line of r up to head, fetched from the
// server at url, unless the line holds it already.
func pull(ctx context.Context, r *index.Repo, intro, url, head string) error {
	ln := line(r, intro)
	verified, _, err := ln.VerifiedHead()
	if err != nil {
		return fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
	}
	if verified == head {
		return nil
	}
	if verified != "" {
		if ok, _ := r.IsAncestor(ctx, head, verified); ok {
			return nil
		}
	}
	if err := r.Fetch(ctx, url+"/index.git", index.MainRef, incoming, ""); err != nil {
		return fmt.Errorf("%w: fetching %s: %w", witness.ErrAuditUnavailable, url, err)
	}
	served, err := r.Head(ctx, incoming)
	if err != nil {
		return fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
	}
	if served != head {
		if ok, _ := r.IsAncestor(ctx, head, served); !ok {
			return fmt.Errorf("%w: the server at %s serves main at %s, which does not contain the checkpoint's head %s (not yet, or another history)", witness.ErrAuditUnavailable, url, served, head)
		}
	}
	old, err := r.Head(ctx, ln.Ref)
	if errors.Is(err, fs.ErrNotExist) {
		old, err = "", nil // the first pull
	}
	if err != nil {
		return fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
	}
	if old != head {
		if err := r.MoveRef(ctx, ln.Ref, head, old); err != nil {
			return fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
		}
	}
	// The replay from the head verified last is what checks that the
	// history continues it (else a *ForkError).
	if _, err := r.VerifyLine(ctx, ln, false); err != nil {
		var re *index.RuleError
		var se *index.SignError
		var fe *index.ForkError
		if errors.As(err, &re) || errors.As(err, &se) || errors.As(err, &fe) {
			return fmt.Errorf("%w: the history %s serves up to the checkpoint's head %s is refused by a full replica: %w", witness.ErrAudit, url, head, err)
		}
		return fmt.Errorf("%w: verifying the history %s serves: %w", witness.ErrAuditUnavailable, url, err)
	}
	return nil
}

// holds checks that the log st holds c's tree: size at a commit boundary
// (leaf size-1 the map leaf of c's head), root and map root c's.
func holds(st *translog.Store, c checkpoint.Checkpoint) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: the checkpoint signs size %d, root %x, map %x at head %s: %s", witness.ErrAudit, c.Size, c.Root[:], c.Map[:], c.Head, fmt.Sprintf(format, args...))
	}
	size := st.Size()
	if c.Size < 1 || c.Size > size {
		return refuse("the history verified up to that head has %d leaves", size)
	}
	text, err := st.Entry(c.Size - 1)
	if err != nil {
		return fmt.Errorf("%w: reading leaf %d of the audit log: %w", witness.ErrAuditUnavailable, c.Size-1, err)
	}
	me, err := translog.ParseMapEntry(text)
	if err != nil {
		return refuse("leaf %d of the history's log is not a map leaf (the size ends inside a commit): %q", c.Size-1, text)
	}
	root, err := st.TreeHash(c.Size)
	if err != nil {
		return fmt.Errorf("%w: the audit log's root at %d: %w", witness.ErrAuditUnavailable, c.Size, err)
	}
	if me.Commit != c.Head || root != c.Root || me.Root != c.Map {
		return refuse("the history gives, at size %d, root %x and leaf %d the map leaf of commit %s with map %x (a map leaf the history does not give: a forged map)", c.Size, root[:], c.Size-1, me.Commit, me.Root[:])
	}
	return nil
}
