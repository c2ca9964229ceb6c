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

// closeWait bounds how long Close waits for the pulls it cancelled to
// end: a cancelled git fetch may linger (its transport helper holds its
// pipes until it stalls out). A pull still running after it closes its
// replica itself when it ends.
const closeWait = time.Second

// Auditor is a witness.Auditor keeping its replicas under a directory,
// one per index, named by the index's introduction.
//
// At most one pull of an index runs at a time (in this process), in a
// goroutine of its own, and all that touches the index's replica runs in
// it: the submissions of checkpoints of the head it pulls (replays of one
// checkpoint among them) wait for it together, and one that needs another
// head is answered witness.ErrAuditUnavailable at once, not queued. So
// abandoned submissions leave nothing behind but the one pull, which its
// own timeout bounds. The witness's state lock is never held while they
// run.
type Auditor struct {
	dir         string
	pullTimeout time.Duration

	// ctx is the pulls' context, cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc
	pulls  sync.WaitGroup // the running pulls

	mu       sync.Mutex
	closed   bool
	replicas map[string]*replica // by introduction
}

// replica is one audited index.
type replica struct {
	// running is the pull of the index running now, nil if none
	// (Auditor.mu).
	running *flight
	// r is the index's repository, opened by its first pull: only the
	// running pull uses it, and Close only while none runs.
	r *index.Repo
}

// flight is one pull of an index up to a head, and the checks of the
// checkpoints that wait for it.
type flight struct {
	url, head string

	// pulled is closed when the pull ended; then err is its error, and
	// verified and size the audited line's head and log size after it.
	pulled   chan struct{}
	err      error
	verified string
	size     int64

	// Under Auditor.mu: the checks by checkpoint text, and those whose
	// answer the pull has not given yet.
	checks  map[string]*check
	pending []*check
}

// check is the audit of one checkpoint against its flight's pull: err is
// its answer once done is closed.
type check struct {
	c    checkpoint.Checkpoint
	done chan struct{}
	err  error
}

// New returns an auditor keeping its replicas under dir (made if
// missing): dir/<introduction> for each index.
func New(dir string) *Auditor {
	ctx, cancel := context.WithCancel(context.Background())
	return &Auditor{dir: dir, pullTimeout: DefaultPullTimeout, ctx: ctx, cancel: cancel, replicas: map[string]*replica{}}
}

// Close stops the auditor: no audit or pull starts after it, the audits
// waiting are answered witness.ErrAuditUnavailable, the running pulls are
// cancelled, and the replicas' repositories closed. It returns within a
// few seconds even if a pull is slow to end (that pull closes its replica
// when it does).
func (a *Auditor) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.cancel()
	a.mu.Unlock()

	ended := make(chan struct{})
	go func() {
		a.pulls.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(closeWait):
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, rp := range a.replicas {
		if rp.running == nil && rp.r != nil {
			errs = append(errs, rp.r.Close())
			rp.r = nil
		}
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

// errClosed is the answer of an auditor closed (or closing).
func errClosed(origin string) error {
	return fmt.Errorf("%w: %s: the auditor is shutting down", witness.ErrAuditUnavailable, origin)
}

// Audit checks that the log's own verified replica of the index, pulled
// from l.Audit as far as the checkpoint's head, holds the checkpoint's
// tree (see the package's doc). Its errors wrap witness.ErrAudit when the
// tree is not the history's, or when the history breaks the rules;
// witness.ErrAuditUnavailable when it cannot tell now: among others, when
// a pull of the index up to another head is running (the log may submit
// again), or the auditor is closed. The pull goes on after ctx ends (up
// to its own timeout), for the next audit.
func (a *Auditor) Audit(ctx context.Context, l witness.Log, text string) error {
	c, err := checkpoint.Parse(text)
	if err != nil {
		return fmt.Errorf("%w: %s: not a cairn checkpoint: %w", witness.ErrAudit, l.Origin, err)
	}
	if c.Origin != l.Origin || c.Origin != checkpoint.Origin(c.Introduction()) {
		return fmt.Errorf("%w: the checkpoint's origin %s is not the audited log's, %s", witness.ErrAudit, c.Origin, l.Origin)
	}
	a.mu.Lock()
	f, err := a.join(c.Introduction(), l.Audit, c.Head)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	ck := f.checks[text]
	if ck == nil {
		ck = &check{c: c, done: make(chan struct{})}
		f.checks[text] = ck
		f.pending = append(f.pending, ck)
	}
	a.mu.Unlock()
	select {
	case <-ck.done:
		return ck.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: still pulling %s up to head %s: %w", witness.ErrAuditUnavailable, l.Origin, l.Audit, c.Head, ctx.Err())
	case <-a.ctx.Done():
		return errClosed(l.Origin)
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
	a.mu.Lock()
	f, err := a.join(introduction, url, c.Head)
	a.mu.Unlock()
	if err != nil {
		return "", 0, err
	}
	select {
	case <-f.pulled:
		return f.verified, f.size, f.err
	case <-ctx.Done():
		return "", 0, fmt.Errorf("pulling %s up to head %s: %w", url, c.Head, ctx.Err())
	case <-a.ctx.Done():
		return "", 0, errClosed(checkpoint.Origin(introduction))
	}
}

// join returns the pull of the index up to head from url, started if no
// pull of the index runs. Its caller holds a.mu.
func (a *Auditor) join(introduction, url, head string) (*flight, error) {
	origin := checkpoint.Origin(introduction)
	if a.closed {
		return nil, errClosed(origin)
	}
	rp := a.replicas[introduction]
	if rp == nil {
		rp = &replica{}
		a.replicas[introduction] = rp
	}
	if f := rp.running; f != nil {
		if f.url != url || f.head != head {
			return nil, fmt.Errorf("%w: %s: a pull of %s up to head %s is running (submit again once it ended)", witness.ErrAuditUnavailable, origin, f.url, f.head)
		}
		return f, nil
	}
	f := &flight{url: url, head: head, pulled: make(chan struct{}), checks: map[string]*check{}}
	rp.running = f
	a.pulls.Add(1)
	go a.run(rp, introduction, f)
	return f, nil
}

// run is the flight f: the pull, then the checks that wait for it (those
// that join meanwhile too).
func (a *Auditor) run(rp *replica, introduction string, f *flight) {
	defer a.pulls.Done()
	ctx, cancel := context.WithTimeout(a.ctx, a.pullTimeout)
	defer cancel()
	st, err := a.pull(ctx, rp, introduction, f.url, f.head)
	if err != nil && a.ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", errClosed(checkpoint.Origin(introduction)), err)
	}
	f.err = err
	if st != nil {
		f.verified, f.size = st.Head(), st.Size()
	}
	close(f.pulled)
	for {
		a.mu.Lock()
		todo := f.pending
		f.pending = nil
		if len(todo) == 0 {
			rp.running = nil
			if a.closed && rp.r != nil {
				rp.r.Close() // Close gave up waiting for this pull
				rp.r = nil
			}
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		for _, ck := range todo {
			if ck.err = err; err == nil {
				ck.err = holds(st, ck.c)
			}
			close(ck.done)
		}
	}
}

// pull opens the replica (made if missing) and verifies its audited line
// up to head, fetched from url: the running flight's work.
func (a *Auditor) pull(ctx context.Context, rp *replica, intro, url, head string) (*translog.Store, error) {
	if rp.r == nil {
		r, err := a.open(ctx, intro)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
		}
		rp.r = r
	}
	r := rp.r
	if err := pull(ctx, r, intro, url, head); err != nil {
		return nil, err
	}
	st, err := r.StoreOf(line(r, intro))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", witness.ErrAuditUnavailable, err)
	}
	return st, nil
}

// open opens (or makes) the replica of an index.
func (a *Auditor) open(ctx context.Context, introduction string) (*index.Repo, error) {
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
	return r, nil
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
