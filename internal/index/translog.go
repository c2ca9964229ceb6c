package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/translog"
)

// Every line keeps a transparency log (docs/transparency.md) beside its
// marker: the log of the files its verified head holds, in index order.
// VerifyLine computes it as it replays, and commits it with the marker;
// an append to main (publish, certify, …) adds its files; a log that is
// not at the marker's head (a replica made before logs were kept, a main
// that adopted a remote's head, a crash between the two) is brought to
// it from the history, without the rules, which the marker vouches for.

// LogDir returns the directory of the line's transparency log, beside
// its marker: log/ beside main's verified.json, NAME.log/ beside
// NAME.verified.json.
func (l Line) LogDir() string {
	dir, base := filepath.Split(l.Marker)
	if base == "verified.json" {
		return filepath.Join(dir, "log")
	}
	return filepath.Join(dir, strings.TrimSuffix(base, ".verified.json")+".log")
}

// lineLocks serializes, within this process, what writes a line's log
// (verifications, appends), by log directory: the log's own file lock
// serializes processes.
var lineLocks sync.Map // log directory → *sync.Mutex

func lockLine(l Line) func() {
	dir, _ := filepath.Abs(l.LogDir())
	v, _ := lineLocks.LoadOrStore(dir, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// StoreOf returns the line's transparency log with its map, as the
// line's last verification left it: at the verified head (see
// VerifyLine). A line never verified has an empty log.
func (r *Repo) StoreOf(l Line) (*translog.Store, error) {
	dir := l.LogDir()
	r.storesMu.Lock()
	defer r.storesMu.Unlock()
	if s := r.stores[dir]; s != nil {
		// Another process may have moved it.
		if err := s.Reload(); err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := translog.OpenStore(dir, SubjectsOf)
	if err != nil {
		return nil, err
	}
	if r.stores == nil {
		r.stores = map[string]*translog.Store{}
	}
	r.stores[dir] = s
	return s, nil
}

// LogOf returns the line's transparency log (see StoreOf). Range reads
// its (index, entry) pairs; ReadTile its C2SP tiles.
func (r *Repo) LogOf(l Line) (*translog.Log, error) {
	s, err := r.StoreOf(l)
	if err != nil {
		return nil, err
	}
	return s.Log, nil
}

func (r *Repo) closeStores() {
	r.storesMu.Lock()
	defer r.storesMu.Unlock()
	for dir, s := range r.stores {
		s.Close()
		delete(r.stores, dir)
	}
}

// ErrLogMismatch is the parent of LogMismatchError.
var ErrLogMismatch = errors.New("transparency log differs from the history")

// LogMismatchError is a full verification's finding that the log a line
// kept is not the one its history gives: its root at the size it stood
// at differs from the recomputed one (a bug, a disk fault, or someone
// who edited the replica's files). The recomputed log replaced it.
type LogMismatchError struct {
	Line       string
	Head       string    // the head the kept log covered
	Size       int64     // its size
	Stored     tlog.Hash // its root
	Recomputed tlog.Hash // the root the history gives at that head
	RecSize    int64     // the size the history gives at that head
}

func (e *LogMismatchError) Error() string {
	return fmt.Sprintf("%s: the transparency log of %s kept at %s (%d leaves) has root %s, but the history gives %s (%d leaves) there; the recomputed log replaced it: if a server signed the kept one, report it",
		ErrLogMismatch, e.Line, e.Head, e.Size, e.Stored, e.Recomputed, e.RecSize)
}

func (e *LogMismatchError) Unwrap() error { return ErrLogMismatch }

// freshLog is a log being computed from the introduction, in a directory
// beside the line's, to replace it.
type freshLog struct {
	dir string
	log *translog.Store
}

func newFreshLog(l Line) (*freshLog, error) {
	dir := l.LogDir()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".new-*")
	if err != nil {
		return nil, err
	}
	lg, err := translog.OpenStore(tmp, SubjectsOf)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &freshLog{dir: tmp, log: lg}, nil
}

// discard removes the fresh log unless it was installed.
func (f *freshLog) discard() {
	if f.log != nil {
		f.log.Close()
		f.log = nil
	}
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

// install makes the fresh (committed) log the line's, with the map the
// replay built beside it.
func (r *Repo) install(l Line, f *freshLog) error {
	fresh := f.log
	fresh.Close()
	f.log = nil
	dir := l.LogDir()
	// Forgotten, not closed: a reader may hold it still (its files stay
	// readable until it lets go).
	r.storesMu.Lock()
	delete(r.stores, dir)
	r.storesMu.Unlock()
	// Under the old log's write lock: no writer of another process is
	// between its hashes and its state; readers move to the new one on
	// their next reload.
	if err := translog.Replace(dir, f.dir); err != nil {
		return err
	}
	f.dir = ""
	if s, err := r.StoreOf(l); err == nil {
		s.AdoptMap(fresh)
	}
	return nil
}

// logAt returns the line's log brought to head, a verified head of the
// line: appended from its own head if that is an ancestor, computed
// afresh otherwise. (Under the line's lock.)
func (r *Repo) logAt(ctx context.Context, l Line, head string) (*translog.Store, error) {
	s, err := r.StoreOf(l)
	if errors.Is(err, translog.ErrCorrupt) {
		// The history gives it again.
		return r.rebuildLog(ctx, l, head)
	}
	if err != nil {
		return nil, err
	}
	from := s.Head()
	if from != "" || s.Size() != 0 {
		// Every commit ends with its map leaf: a log that does not (one
		// kept before map leaves were) is computed again.
		me, _, ok, err := s.LastMap()
		if err != nil || !ok || me.Commit != from {
			return r.rebuildLog(ctx, l, head)
		}
	}
	if from == head {
		return s, nil
	}
	begin := func(from string) error {
		err := s.Begin(from)
		if errors.Is(err, translog.ErrCorrupt) {
			err = errRebuild
		}
		return err
	}
	if from == "" && s.Size() == 0 {
		if err := begin(""); err != nil {
			if err == errRebuild {
				return r.rebuildLog(ctx, l, head)
			}
			return nil, err
		}
		return s, r.deriveLog(ctx, s, "", head)
	}
	if ok, _ := r.git.IsAncestor(ctx, from, head); ok {
		if err := begin(from); err != nil {
			if err == errRebuild {
				return r.rebuildLog(ctx, l, head)
			}
			return nil, err
		}
		return s, r.deriveLog(ctx, s, from, head)
	}
	return r.rebuildLog(ctx, l, head)
}

// errRebuild says a kept log's map does not follow from its entries.
var errRebuild = errors.New("transparency log map corrupt")

// rebuildLog computes the line's log up to head afresh and installs it.
func (r *Repo) rebuildLog(ctx context.Context, l Line, head string) (*translog.Store, error) {
	f, err := newFreshLog(l)
	if err != nil {
		return nil, err
	}
	defer f.discard()
	if err := r.deriveLog(ctx, f.log, "", head); err != nil {
		return nil, err
	}
	if err := r.install(l, f); err != nil {
		return nil, err
	}
	return r.StoreOf(l)
}

// deriveLog appends to lg (its write lock held) the files and map leaf of
// each commit after from up to to, a verified line, and commits it at to;
// on failure it rolls lg back. No rule is checked: only a verified head
// may be given.
// deriveAhead is how many commits deriveLog's walk may run ahead of
// the reader.
var deriveAhead = 256

func (r *Repo) deriveLog(ctx context.Context, lg *translog.Store, from, to string) (err error) {
	defer func() {
		if err != nil {
			lg.Rollback()
			err = fmt.Errorf("computing the transparency log from %.12s to %.12s: %w", from, to, err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := r.git.NewStream(ctx)
	if err != nil {
		return err
	}
	defer stream.Wait()
	commits := make(chan *gitx.LogEntry, deriveAhead)
	errc := make(chan error, 1)
	go func() {
		defer close(commits)
		defer stream.CloseRequests()
		errc <- r.git.Walk(ctx, gitx.WalkOptions{From: from, To: to}, func(e *gitx.LogEntry) error {
			for _, ch := range e.Changes {
				if ch.Status == 'A' {
					if err := stream.Request(ch.NewID); err != nil {
						return err
					}
				}
			}
			return sendFlushed(ctx, stream, commits, e)
		})
	}()
	drain := func(err error) error {
		cancel()
		for range commits {
		}
		return err
	}
	var entries []translog.Entry
	for e := range commits {
		entries = entries[:0]
		for _, ch := range e.Changes {
			if ch.Status != 'A' {
				continue
			}
			o, err := stream.Next()
			if err != nil {
				return drain(err)
			}
			entries = append(entries, translog.NewEntry(e.ID, e.Time, ch.Path, o.Data))
		}
		if _, err := lg.AppendCommit(e.ID, e.Time, entries); err != nil {
			return drain(err)
		}
	}
	if err := <-errc; err != nil {
		return err
	}
	return lg.Commit(to)
}

// sendFlushed sends v on ch for a goroutine that requests objects of
// stream while another takes the replies and drains ch: when ch is full,
// the requests made so far are sent to git before it waits, for the
// reader may be waiting on one of them (a walk of more commits than ch
// holds hung for ever with the last requests in this side's buffer).
func sendFlushed[T any](ctx context.Context, stream *gitx.Stream, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	default:
	}
	if err := stream.Flush(); err != nil {
		return err
	}
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logWriter appends a replay's commits to a line's log on a goroutine of
// its own, so that the log's hashing, map and writes run beside the
// rules rather than after each commit's: the rules' goroutine hands it
// every commit that passed them, in order, and waits for it (close)
// before it returns, so that the caller commits or rolls back a log
// nobody appends to any more.
type logWriter struct {
	lg      *translog.Store
	markAt  string
	mark    int64 // the log's size right after markAt, -1 if not passed
	next    int64 // the log's size after the commits handed over
	commits chan logCommit
	done    chan struct{}
	err     error // the first append that failed; read after done
	// differs is the first append that found the log recomputed is not
	// the one kept (translog.ErrDiffers): it does not stop the replay,
	// and nothing is appended after it (read after done).
	differs error
	fail    func()
	closed  bool
}

// logCommit is one commit's files, for AppendLeaves, or why they could
// not be made (err).
type logCommit struct {
	id     string
	time   int64
	leaves []translog.Leaf
	err    error
}

// startLogWriter starts appending to lg (its write lock held). markAt is
// replayOptions.markAt; fail is called once if an append fails (the
// replay stops: it reports the error from close).
func startLogWriter(lg *translog.Store, markAt string, fail func()) *logWriter {
	w := &logWriter{lg: lg, markAt: markAt, mark: -1, next: lg.Next(), commits: make(chan logCommit, 256), done: make(chan struct{}), fail: fail}
	go func() {
		defer close(w.done)
		for c := range w.commits {
			if w.err != nil {
				continue // the replay is stopping: drain
			}
			// A commit's files, then its map leaf.
			if c.err != nil {
				w.err = c.err
				w.fail()
				continue
			}
			w.next += int64(len(c.leaves)) + 1
			if c.id == w.markAt {
				w.mark = w.next
			}
			if w.differs != nil {
				continue // counted only
			}
			if _, err := lg.AppendLeaves(c.id, c.time, c.leaves); errors.Is(err, translog.ErrDiffers) {
				w.differs = err
			} else if err != nil {
				w.err = err
				w.fail()
			}
		}
	}()
	return w
}

// add hands over the next commit; leaves are the log's from now on. A
// commit whose leaves could not be made (err) stops the log's appends
// and the replay, as a failed append does.
func (w *logWriter) add(id string, time int64, leaves []translog.Leaf, err error) {
	w.commits <- logCommit{id, time, leaves, err}
}

// close waits until every commit handed over is appended, and returns
// the first append's error. It may be called again.
func (w *logWriter) close() error {
	if !w.closed {
		w.closed = true
		close(w.commits)
	}
	<-w.done
	return w.err
}
