package index

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
)

// ErrFork is the parent of ForkError.
var ErrFork = errors.New("history rewritten")

// ForkError is a security error: the index's head does not descend from
// the head verified before. History was rewritten (reset, force-push) or
// two different histories were shown.
type ForkError struct {
	Verified string // the head verified before
	Head     string // the head now
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: history rewritten: main is at %s, which does not descend from %s, verified earlier; records may have been removed (rule %s)", e.Head, e.Verified, RuleAppendOnly)
}

func (e *ForkError) Unwrap() error { return ErrFork }

// VerifyResult reports a verification.
type VerifyResult struct {
	From     string        `json:"from,omitempty"` // the verified head it started from ("" = the introduction)
	Head     string        `json:"head"`
	Commits  int           `json:"commits"`
	Records  int           `json:"files"`       // files checked in this run
	Total    int           `json:"total_files"` // files in the index, as far as verified
	Full     bool          `json:"full"`
	Duration time.Duration `json:"duration_ns"`
	// Unsaved is why the new verified head could not be remembered (nil
	// when it was). The verification stands; the next one starts again
	// from the head remembered before. Remembering is best effort, so
	// that a command that only reads still works on a full disk.
	Unsaved error `json:"-"`
	// LogErr is why the line's transparency log could not be kept at the
	// verified head (nil when it was). The verification stands; the next
	// one brings the log to the head it remembers.
	LogErr error `json:"-"`
	// DroppedLocal are the commits of the history verified before that
	// main no longer holds, made in this clone and never pushed (see
	// verifyDroppedLocal): main was verified again from the introduction.
	DroppedLocal []string `json:"dropped_local,omitempty"`
}

// batchSize is how many files a worker checks together: ed25519 batch
// verification costs well under half as much per signature from a few
// dozen signatures on.
const batchSize = 64

// rebaseAt bounds the overlay a long verification holds in memory: past
// it, the state is re-read lazily from the tree of the last verified commit.
// (A variable so that tests can make it small.)
var rebaseAt = 50_000

// Line is one history the repository verifies and remembers: its own
// main, or its copy of a remote's or an upstream's main, each pinned by
// its own introduction.
type Line struct {
	Name         string // how messages call it: "main", "remote public", …
	Ref          string
	Introduction string
	Marker       string // the file that remembers the verified head
	// Progress, if set, hears how far a verification of the line is,
	// after each commit replayed (from one goroutine).
	Progress func(Progress)
	// Carry, if set, keeps the state a verification of the line ends
	// with for the next one of the same line to start from, in this
	// process, rather than read it again from git's trees.
	Carry *Carry
}

// Carry holds the state a verification of a line ended with, at the
// head it verified: a verification of the same line from that head (a
// sliced pull's next slice) starts from it instead of reading the state
// from git's trees, each name a new package takes looked up there (on
// 100,000 records, the second half verified from the first paid a sixth
// more CPU for it, git's included). A verification takes the state out
// and puts back its own only if it passed and remembered its head. The
// zero Carry holds nothing; a Carry is safe for concurrent use.
type Carry struct {
	mu    sync.Mutex
	head  string
	st    *Overlay
	names *nameSet
}

// take returns the state held at head, and lets it go; nil if it holds
// none at head.
func (c *Carry) take(head string) (*Overlay, *nameSet) {
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, names := c.st, c.names
	ok := c.head == head && head != ""
	c.head, c.st, c.names = "", nil, nil
	if !ok {
		return nil, nil
	}
	return st, names
}

// keep holds st, the state at head.
func (c *Carry) keep(head string, st *Overlay, names *nameSet) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head, c.st, c.names = head, st, names
}

// Progress is how far a verification is.
type Progress struct {
	Line           string // the line's Name
	Commits, Total int    // commits replayed, of all to replay
	Files          int    // files checked so far
}

// Main returns the repository's own line.
func (r *Repo) Main() Line {
	return Line{Name: "main", Ref: MainRef, Introduction: r.Config.Introduction, Marker: filepath.Join(r.local, "verified.json")}
}

// Verify verifies the repository's own main: see VerifyLine.
func (r *Repo) Verify(ctx context.Context, full bool) (*VerifyResult, error) {
	return r.VerifyLine(ctx, r.Main(), full)
}

// VerifyLine replays the rules over every commit of a line after its last
// verified head (all of them from the introduction if full), checking
// signatures in parallel on all cores, and remembers the new head if it
// can (see VerifyResult.Unsaved). A head that does not descend from the
// remembered one is a *ForkError.
//
// The line's transparency log (LogOf) is computed as it goes and
// committed with the new head. A full verification computes it afresh
// and checks the log kept against it, every leaf, stored hash and tile
// (translog.Store.BeginRecompute): a log found right is kept as it is
// and extended, without writing its tiles again; one that differs is
// replaced, and if its tree differs, the verification says so with a
// *LogMismatchError (the verification itself stands: res is returned).
func (r *Repo) VerifyLine(ctx context.Context, l Line, full bool) (*VerifyResult, error) {
	defer lockLine(l)()
	for tries := 0; ; tries++ {
		res, err := r.verifyLine(ctx, l, full)
		if errors.Is(err, translog.ErrMoved) && tries < 3 {
			// Another process verified the line meanwhile: start again
			// from where it left the marker.
			continue
		}
		var fe *ForkError
		if errors.As(err, &fe) && l.Ref == MainRef && r.git.WorkTree != "" {
			return r.verifyDroppedLocal(ctx, l, fe, err)
		}
		return res, err
	}
}

// verifyDroppedLocal verifies main again from the introduction when, in a
// git clone of an index, the history verified before is gone from it
// only by commits made in this clone that never reached a remote (a
// publish whose push lost the race, then a git pull --rebase or a reset
// to the remote's main): those were this machine's own, which no server
// saw, and dropping them rewrites nothing anyone else holds. The marker
// and the line's log, which held them, are dropped and computed again;
// VerifyResult.DroppedLocal lists those commits. Any other fork is the
// rewritten history fork says it is (err).
func (r *Repo) verifyDroppedLocal(ctx context.Context, l Line, fork *ForkError, err error) (*VerifyResult, error) {
	dropped, ok, derr := r.git.DroppedLocal(ctx, fork.Verified, fork.Head)
	if derr != nil || !ok {
		return nil, err
	}
	if rerr := os.Remove(l.Marker); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return nil, err
	}
	if rerr := os.RemoveAll(l.LogDir()); rerr != nil {
		return nil, err
	}
	res, verr := r.verifyLine(ctx, l, true)
	if res != nil {
		res.DroppedLocal = dropped
	}
	return res, verr
}

func (r *Repo) verifyLine(ctx context.Context, l Line, full bool) (*VerifyResult, error) {
	start := time.Now()
	head, err := r.Head(ctx, l.Ref)
	if err != nil {
		return nil, err
	}
	m, err := loadMarker(l.Marker)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Head: head, Full: full}
	var st *Overlay
	var lg *translog.Store   // what the replay appends to
	var fresh *freshLog      // or a log computed from the introduction
	var kept *translog.Store // the line's log, for a full verification to check
	var keptSize int64
	var keptRoot tlog.Hash
	var keptHead string
	var names *nameSet // carried with st, see replayOptions.names
	if m != nil && !full {
		res.From, res.Total = m.Head, m.Records
		if m.Head != head {
			if st, names = l.Carry.take(m.Head); st == nil {
				if st, err = r.State(ctx, m.Head); err != nil {
					return nil, err
				}
			}
		}
		// The log follows the marker; a log that cannot be kept does not
		// stop a verification (reads go on; the next one catches up).
		s, err := r.logAt(ctx, l, m.Head)
		if err == nil && m.Head != head {
			err = s.Begin(m.Head)
			if errors.Is(err, translog.ErrCorrupt) {
				// Its map does not follow from its entries: compute it again.
				if s, err = r.rebuildLog(ctx, l, m.Head); err == nil {
					err = s.Begin(m.Head)
				}
			}
			if err == nil {
				lg = s
			}
		}
		if errors.Is(err, translog.ErrMoved) || ctx.Err() != nil {
			return nil, cmp.Or(ctx.Err(), err)
		}
		if err != nil {
			res.LogErr = fmt.Errorf("%s: %w", l.LogDir(), err)
		}
		if m.Head == head {
			res.Duration = time.Since(start)
			return res, nil
		}
	} else {
		l.Carry.take("")
		st = NewOverlay(nil)
		if _, err := os.Stat(l.LogDir()); err == nil && full {
			kept, _ = r.StoreOf(l) // one that does not open is replaced
		}
		if kept != nil && kept.Size() > 0 {
			// The log kept is computed again and checked leaf by leaf,
			// tile by tile: kept if it is right, replaced if not (below).
			if testHookBeforeRecompute != nil {
				testHookBeforeRecompute()
			}
			if err := kept.BeginRecompute(); err == nil {
				lg = kept
				// Read under the log's write lock, which another process
				// (a server verifying each push) takes to extend it: the
				// log stays as read now, and main, read again, is at or
				// past the head it covers. Read before the lock, the log
				// could have grown past both, and the log recomputed then
				// taken for one that differs from the history, or
				// computed back to the older head.
				keptSize, keptRoot, keptHead = kept.Size(), kept.Root(), kept.Head()
				if head, err = r.Head(ctx, l.Ref); err != nil {
					lg.Rollback()
					return nil, err
				}
				res.Head = head
			}
		}
		if lg != nil {
			// Recomputing the kept log.
		} else if fresh, err = newFreshLog(l); err != nil {
			res.LogErr = fmt.Errorf("%s: %w", l.LogDir(), err)
		} else {
			defer fresh.discard()
			lg = fresh.log
		}
	}
	opts := replayOptions{introduction: l.Introduction, log: lg, mark: -1, names: names}
	if m != nil {
		opts.verified = m.Head
	}
	if kept != nil && kept.Head() != "" {
		opts.markAt = kept.Head()
	}
	if l.Progress != nil {
		// Counted by git first: the display's total, not a check.
		total, err := r.git.Count(ctx, res.From, head)
		if err != nil {
			if lg != nil {
				lg.Rollback()
			}
			return nil, err
		}
		opts.progress = func(res *VerifyResult) {
			l.Progress(Progress{Line: l.Name, Commits: res.Commits, Total: total, Files: res.Records})
		}
		opts.progress(res)
	}
	if err := r.replay(ctx, res, st, &opts); err != nil {
		if lg != nil {
			lg.Rollback()
		}
		return nil, err
	}
	res.Total += res.Records
	res.Duration = time.Since(start)
	// The log, then the marker: a log that cannot be committed (a full
	// disk) keeps the marker where it was too; a marker ahead of its log
	// (one that could not be opened) is caught up with next time.
	var mismatch error
	if lg == nil {
		// No log to keep: the marker moves alone.
	} else if lg == kept {
		err := opts.logDiffers
		if err == nil && opts.mark != keptSize {
			// Its leaves are the history's, but its state names a head
			// the history reaches at another size, or not at all.
			err = fmt.Errorf("%w: %s names head %s at %d leaves, the history reaches it at %d", translog.ErrDiffers, l.LogDir(), keptHead, keptSize, opts.mark)
		}
		if err == nil {
			err = lg.Commit(head)
		} else {
			lg.Rollback()
		}
		if errors.Is(err, translog.ErrDiffers) {
			// The kept log is not the history's: computed afresh,
			// replaced, and compared.
			var rebuilt *translog.Store
			if rebuilt, err = r.rebuildLog(ctx, l, head); err == nil {
				mismatch = r.logMismatch(l, rebuilt, opts.mark, keptHead, keptSize, keptRoot)
			}
		}
		if err != nil {
			res.Unsaved = fmt.Errorf("%s not written, as its transparency log could not be: %w", l.Marker, err)
			return res, nil
		}
	} else if err := lg.Commit(head); err != nil {
		res.Unsaved = fmt.Errorf("%s not written, as its transparency log could not be: %w", l.Marker, err)
		return res, nil
	} else if fresh != nil {
		if kept != nil {
			mismatch = r.logMismatch(l, lg, opts.mark, kept.Head(), kept.Size(), kept.Root())
		}
		if err := r.install(l, fresh); err != nil {
			res.LogErr = fmt.Errorf("%s: %w", l.LogDir(), err)
		}
	}
	if err := saveMarker(l.Marker, marker{Head: head, Records: res.Total}); err != nil {
		res.Unsaved = fmt.Errorf("%s: %w", l.Marker, err)
	} else {
		l.Carry.keep(head, opts.final, opts.names)
	}
	res.Duration = time.Since(start)
	return res, mismatch
}

// logMismatch returns the *LogMismatchError of a kept log of size leaves
// with root at head, if the recomputed log lg gives another tree there (at
// mark, its size after head; nothing if the history does not pass head).
func (r *Repo) logMismatch(l Line, lg *translog.Store, mark int64, head string, size int64, root tlog.Hash) error {
	if mark < 0 {
		return nil
	}
	if rec, err := lg.TreeHash(mark); err == nil && (mark != size || rec != root) {
		return &LogMismatchError{Line: l.Name, Head: head, Size: size, Stored: root, Recomputed: rec, RecSize: mark}
	}
	return nil
}

// CheckUpdate checks the commits from old (a head already verified; ""
// for an empty index) to new against the rules, as a server does before
// it lets a push move main, without remembering anything. The rules judge
// grant expiry and revocation by commit time, so the checker bounds it by
// its own clock: every new commit must be dated within skew of now, in
// the past as in the future. A commit dated earlier could claim a time
// before a grant expired (backdating); one dated later could outlive a
// revocation. A record's time is thus its commit's, give or take skew of
// when the server received it.
func (r *Repo) CheckUpdate(ctx context.Context, old, new string, now time.Time, skew time.Duration) (*VerifyResult, error) {
	start := time.Now()
	res := &VerifyResult{From: old, Head: new}
	st := NewOverlay(nil)
	if old != "" {
		var err error
		if st, err = r.State(ctx, old); err != nil {
			return nil, err
		}
	}
	if err := r.replay(ctx, res, st, &replayOptions{introduction: r.Config.Introduction, verified: old, clock: now, skew: skew}); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// MaxClockSkew is how far apart two honest clocks may be: a server
// refuses pushed commits, signed requests and checkpoints dated further
// from its own clock, in either direction (a server may be set to
// another bound).
const MaxClockSkew = 5 * time.Minute

// testHookBeforeRecompute, if set, runs in a full verification between
// its first look at the log kept and taking the log's write lock: where a
// test lets another process extend the log.
var testHookBeforeRecompute func()

// replayOptions says what a replay checks against.
type replayOptions struct {
	introduction string              // the line's pinned first root record
	verified     string              // the head verified before, which the line must pass through
	clock        time.Time           // if set, every commit must be dated within skew of it
	skew         time.Duration       // (see CheckUpdate)
	progress     func(*VerifyResult) // if set, called after each commit

	// log, if set, gets each commit's added files, in index order, and
	// its map leaf (AppendCommit), once the commit passed the rules (its write lock held; the caller
	// commits or rolls it back).
	log *translog.Store
	// markAt, if set, is a commit whose log size the replay writes to mark
	// (-1 if it does not pass it).
	markAt string
	mark   int64
	// logDiffers is why log, recomputing the line's kept log
	// (translog.Store.BeginRecompute), found it differs: the replay goes
	// on without appending, and the caller computes the log afresh.
	logDiffers error
	// names, if set, holds the hashes of the folded names of every
	// package from the introduction to the replay's start (a replay from
	// the introduction makes it): the replay adds those it sees, and a
	// state rebased on a tree knows a name not in it absent without
	// asking git.
	names *nameSet
	// final is the state the replay ended with, when it passed.
	final *Overlay
}

// checkClock refuses a commit dated further than skew from clock.
func (o *replayOptions) checkClock(c *Commit) error {
	if o.clock.IsZero() {
		return nil
	}
	const layout = time.RFC3339
	switch {
	case c.Time.After(o.clock.Add(o.skew)):
		return &RuleError{Rule: RuleTimeOrder, Commit: c.ID, Detail: fmt.Sprintf("commit is dated %s, in this server's future (its clock says %s; a pushed commit must be dated within %s of it): commit with a correct clock", c.Time.UTC().Format(layout), o.clock.UTC().Format(layout), o.skew)}
	case c.Time.Before(o.clock.Add(-o.skew)):
		return &RuleError{Rule: RuleTimeOrder, Commit: c.ID, Detail: fmt.Sprintf("commit is dated %s, %s before this server's clock (%s); a pushed commit must be dated within %s of it, since grant expiry and revocation are judged by commit time", c.Time.UTC().Format(layout), o.clock.Sub(c.Time).Round(time.Second), o.clock.UTC().Format(layout), o.skew)}
	}
	return nil
}

// namedKeys calls add with each key rec names (a grant's key, a root's
// keys) and the key's id. A key that does not parse is skipped: the rules
// refuse its record.
func namedKeys(rec *record.Record, add func(id string, pub ed25519.PublicKey)) {
	add1 := func(line string) {
		if pub, _, err := keys.ParsePublic([]byte(line)); err == nil {
			add(keys.ID(pub), pub)
		}
	}
	switch p := rec.Predicate.(type) {
	case record.GrantPredicate:
		add1(p.Key)
	case record.RootPredicate:
		for _, k := range p.Keys {
			add1(k.Key)
		}
	}
}

// appendChecks appends to checks a check of each of rec's signatures
// under a key that lookup knows (nil: unknown), for record.VerifyBatch
// to run ahead of the rules. A key id is the hash of its key: whichever
// record named the key, it is the right one; whether the key may sign is
// the rules' business.
func appendChecks(checks []record.Check, rec *record.Record, lookup func(id string) ed25519.PublicKey) []record.Check {
	for i, s := range rec.Signatures {
		if pub := lookup(s.KeyID); pub != nil {
			checks = append(checks, record.Check{Rec: rec, Sig: i, Pub: pub})
		}
	}
	return checks
}

type fileJob struct {
	f  *File
	id string // blob to read
	cj *commitJob
	// For the log: the commit that adds the file, and the file's leaf,
	// made by the worker (or why it could not be).
	commit  string
	time    int64
	leaf    translog.Leaf
	leafErr error
}

type commitJob struct {
	c    *Commit
	jobs []*fileJob
	// done counts the jobs the workers have not finished.
	done sync.WaitGroup
}

// replay runs the pipeline: one git log stream → one cat-file stream →
// parallel parsing and signature prechecks → the rules, in order. The
// commits must form one chain from res.From (each the parent of the next)
// that passes through verified, the head verified before, if any: so a
// rewritten history is a *ForkError, with no extra git process to ask.
func (r *Repo) replay(ctx context.Context, res *VerifyResult, st *Overlay, o *replayOptions) error {
	verified := o.verified
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Parsing allocates briskly and what it allocates dies young; the
	// memory a replay holds is bounded (rebaseAt), so trade GC cycles for
	// a constant headroom (replayHeadroom).
	defer startReplayGC()()
	stream, err := r.git.NewStream(ctx)
	if err != nil {
		return err
	}
	defer stream.Wait()

	// Workers check signatures ahead of the rules under any key they can
	// name: a key id is the hash of its key, so whichever grant or tree
	// supplied the key, it is the right one. Whether the key may sign is
	// the rules' business.
	var pubs sync.Map // key id → ed25519.PublicKey (nil: not in the base)
	var baseKeys *treeState
	switch b := st.base.(type) {
	case *treeState:
		baseKeys = b
	case *seenState:
		baseKeys = b.treeState
	}
	// The keys the state holds in memory (one carried from the
	// verification before holds those granted since its base tree),
	// read before the rules change it.
	for id, k := range st.keys {
		if k != nil && k.Pub != nil {
			pubs.Store(id, k.Pub)
		}
	}
	lookup := func(id string) ed25519.PublicKey {
		if v, ok := pubs.Load(id); ok {
			return v.(ed25519.PublicKey)
		}
		if baseKeys == nil {
			return nil
		}
		var pub ed25519.PublicKey
		if k, err := baseKeys.Key(id); err == nil && k != nil {
			pub = k.Pub
		}
		pubs.LoadOrStore(id, pub)
		return pub
	}
	learn := func(id string, pub ed25519.PublicKey) { pubs.Store(id, pub) }

	workers := runtime.GOMAXPROCS(0)
	hashFiles := o.log != nil
	work := make(chan *fileJob, 4096)
	toRead := make(chan *fileJob, 4096)
	ordered := make(chan *commitJob, 4096)
	errc := make(chan error, 2)

	// Stage 1: walk history; request each added blob.
	go func() {
		defer close(ordered)
		defer close(toRead)
		defer stream.CloseRequests()
		err := r.git.Walk(ctx, gitx.WalkOptions{From: res.From, To: res.Head}, func(e *gitx.LogEntry) error {
			// A commit's files and jobs, each in one allocation.
			n := len(e.Changes)
			files, jobs := make([]File, n), make([]fileJob, n)
			cj := &commitJob{c: &Commit{ID: e.ID, Parents: e.Parents, Time: time.Unix(e.Time, 0), Files: make([]*File, 0, n)}, jobs: make([]*fileJob, 0, n)}
			cj.done.Add(n)
			for i, ch := range e.Changes {
				f := &files[i]
				*f = File{Path: ch.Path, Status: ch.Status, Mode: ch.NewMode}
				j := &jobs[i]
				*j = fileJob{f: f, cj: cj, commit: e.ID, time: e.Time}
				if ch.Status == 'A' {
					j.id = ch.NewID
					if err := stream.Request(ch.NewID); err != nil {
						return err
					}
				}
				cj.c.Files = append(cj.c.Files, f)
				cj.jobs = append(cj.jobs, j)
				if err := sendFlushed(ctx, stream, toRead, j); err != nil {
					return err
				}
			}
			return sendFlushed(ctx, stream, ordered, cj)
		})
		if err != nil {
			errc <- err
		}
	}()
	// Stage 2: take the blobs as git sends them, in request order.
	go func() {
		defer close(work)
		for j := range toRead {
			if j.id != "" {
				o, err := stream.Next()
				if err != nil {
					j.f.Status, j.f.Err = 'A', err
				} else {
					j.f.Data = o.Data
				}
			}
			select {
			case work <- j:
			case <-ctx.Done():
				// Stage 4 waits on each commit's files: those not
				// passed on are done, failed.
				for ; j != nil; j = <-toRead {
					j.f.Err = ctx.Err()
					j.cj.done.Done()
				}
				return
			}
		}
	}()
	// Stage 3: parse, and check signatures in batches, on every core. A
	// worker takes what is ready, up to batchSize files, so a batch never
	// waits for files that are not there yet.
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs := make([]*fileJob, 0, batchSize)
			var checks []record.Check
			var memo subjectMemo // this worker's
			for j := range work {
				jobs = append(jobs[:0], j)
			more:
				for len(jobs) < batchSize {
					select {
					case j, ok := <-work:
						if !ok {
							break more
						}
						jobs = append(jobs, j)
					default:
						break more
					}
				}
				for _, j := range jobs {
					if hashFiles && j.id != "" {
						if j.f.Err != nil {
							j.leafErr = j.f.Err
						} else {
							// The file's leaf, ready for the log's writer:
							// its entry line, leaf hash and subjects.
							e := translog.Entry{Commit: j.commit, Time: j.time, SHA256: sha256.Sum256(j.f.Data), Size: int64(len(j.f.Data)), Path: j.f.Path}
							j.leaf, j.leafErr = translog.NewLeaf(e, memo.subjectsOf(e.Path))
						}
					}
					if j.f.Err == nil {
						prepare(j.f)
						if j.f.Rec != nil {
							namedKeys(j.f.Rec, learn)
						}
					}
				}
				checks = checks[:0]
				for _, j := range jobs {
					if j.f.Rec != nil {
						checks = appendChecks(checks, j.f.Rec, lookup)
					}
				}
				record.VerifyBatch(checks)
				for _, j := range jobs {
					j.cj.done.Done()
				}
			}
		}()
	}
	defer wg.Wait()
	// A replay from the introduction sees every package as it appears: it
	// keeps their names' hashes, so that once its state is rebased on the
	// tree, a package it never saw is known absent without asking git.
	names := o.names
	if res.From == "" {
		names = newNameSet()
		o.names = names
	}
	// Stage 4: the rules, commit by commit, in order.
	prev, passed := res.From, verified == ""
	var prevTime time.Time
	if prev != "" {
		rd, err := r.reader(ctx)
		if err != nil {
			return err
		}
		pc, err := rd.Commit(prev)
		if errors.Is(err, fs.ErrNotExist) && verified != "" {
			// The verified head is gone: history was rewritten and collected.
			return &ForkError{Verified: verified, Head: res.Head}
		}
		if err != nil {
			return err
		}
		prevTime = time.Unix(pc.Time, 0)
	}
	var lw *logWriter
	if o.log != nil {
		lw = startLogWriter(o.log, o.markAt, cancel)
		defer lw.close()
	}
	fail := func(err error) error {
		cancel()
		for range ordered {
		}
		return err
	}
	for cj := range ordered {
		cj.done.Wait()
		if err := ctx.Err(); err != nil {
			return fail(err) // interrupted: its files were not all read
		}
		if len(cj.c.Parents) > 0 && cj.c.Parents[0] != prev || len(cj.c.Parents) == 0 && prev != "" {
			parent := "none"
			if len(cj.c.Parents) > 0 {
				parent = cj.c.Parents[0]
			}
			if !passed || prev == verified {
				// The line breaks before or right at the verified head: a
				// fork of it, unless the head still descends from it, by a
				// merge that brings in another line (a commit of no parent,
				// say) — not a rewritten history, but not one line either.
				if ok, _ := r.git.IsAncestor(ctx, verified, res.Head); verified == "" || !ok {
					return fail(&ForkError{Verified: verified, Head: res.Head})
				}
				return fail(&RuleError{Rule: RuleLinear, Commit: cj.c.ID, Detail: fmt.Sprintf("commit does not continue the line of history from %s (its parent is %s): it begins another line, which a merge into %s brings in; the index is one line of commits: rebase instead of merging", prev, parent, res.Head)})
			}
			return fail(&RuleError{Rule: RuleLinear, Commit: cj.c.ID, Detail: fmt.Sprintf("commit does not continue the line of history from %s (its parent is %s): the index is one line of commits, and the branches of a merge are two: rebase instead of merging", prev, parent)})
		}
		cj.c.ParentTime, cj.c.Received = prevTime, o.clock
		if !o.clock.IsZero() && cj.c.Time.After(o.clock) {
			if err := o.checkClock(cj.c); err != nil {
				return fail(err)
			}
		}
		if err := Apply(st, cj.c, o.introduction); err != nil {
			if !passed && verified != "" {
				// A history that does not pass through the verified head
				// is a fork first, whatever else is wrong with it.
				if ok, _ := r.git.IsAncestor(ctx, verified, res.Head); !ok {
					return fail(&ForkError{Verified: verified, Head: res.Head})
				}
			}
			return fail(err)
		}
		// Dated too far in the past: checked after the rules, so that a
		// commit older than its parent says so first.
		if err := o.checkClock(cj.c); err != nil {
			return fail(err)
		}
		// The line continues from the verified head, or reaches it.
		if prev == verified || cj.c.ID == verified {
			passed = true
		}
		if lw != nil {
			leaves := make([]translog.Leaf, 0, len(cj.jobs))
			var err error
			for _, j := range cj.jobs {
				if j.f.Status == 'A' {
					if j.leafErr != nil {
						err = fmt.Errorf("appending %s of commit %s to transparency log %s: %w", j.f.Path, cj.c.ID, o.log.Dir(), j.leafErr)
						break
					}
					leaves = append(leaves, j.leaf)
				}
			}
			lw.add(cj.c.ID, cj.c.Time.Unix(), leaves, err)
		}
		prev, prevTime = cj.c.ID, cj.c.Time
		res.Commits++
		res.Records += len(cj.c.Files)
		if res.Commits%256 == 0 {
			var noscan int64
			if o.log != nil {
				noscan = o.log.Unscanned()
			}
			replayGCAdjust(uint64(noscan))
		}
		if o.progress != nil {
			o.progress(res)
		}
		if names != nil {
			for _, f := range cj.c.Files {
				if f.Desc != nil {
					names.add(descriptor.FoldName(f.Desc.Name))
				}
			}
		}
		if st.Size() > rebaseAt {
			rd, err := r.reader(ctx)
			if err != nil {
				return err
			}
			var base State = &treeState{files: newGitFiles(r.git, rd, cj.c.ID)}
			if names != nil {
				base = &seenState{treeState: base.(*treeState), names: names}
			}
			st = NewOverlay(base)
		}
	}
	if lw != nil {
		// The log's error first: a failed append stops the walk.
		err := lw.close()
		if lw.mark >= 0 {
			o.mark = lw.mark
		}
		o.logDiffers = lw.differs
		if err != nil {
			return err
		}
	}
	select {
	case err := <-errc:
		if !passed && verified != "" {
			// git cannot walk from a verified head it no longer has.
			if ok, _ := r.git.IsAncestor(ctx, verified, res.Head); !ok {
				return &ForkError{Verified: verified, Head: res.Head}
			}
		}
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !passed || prev != res.Head {
		return &ForkError{Verified: verified, Head: res.Head}
	}
	o.final = st
	return nil
}
