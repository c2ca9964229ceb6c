package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
)

// Maintain lets git tidy the repository when it needs it (git gc
// --auto: too many loose objects or packs): what a replica calls after
// a pull, which leaves a pack or loose objects each time and, unlike
// git fetch's, runs no gc of its own.
func (r *Repo) Maintain(ctx context.Context) error {
	return r.git.AutoGC(ctx)
}

// packLimit is how many packs an index may have before appends repack.
const packLimit = 50

// maxRetries bounds how often Append retries after losing a race.
const maxRetries = 8

// Change is what one append adds to the index: signed records and the
// documents they sign. The index places each where the layout says, by
// what it is about; its authors never name a path.
type Change struct {
	// Records are placed by their kind and subject: a root record by its
	// version, a grant or key revocation by its key, an upstream's
	// declaration by its name, a package record by its version (see
	// Upstream), a snapshot record beside its snapshot, a label move with
	// its label, a policy's version with its policy, a revoke or supersede record beside the record it ends.
	Records []*record.Record
	// Descriptor is a version's descriptor (JSON), published with its
	// authored record.
	Descriptor []byte
	// Snapshot is a snapshot (JSON), created with its snapshot record.
	Snapshot []byte
	// Upstream names, by record id, the followed upstream whose version a
	// package record is about; a record it does not name is about a
	// version this index publishes.
	Upstream map[string]string
	// Replayed are the files of a commit of another line of this index,
	// added at their own paths (a local commit replayed onto a remote's
	// head). The rules check them as any other.
	Replayed []gitx.File
	// Blobs, when set, is waited for once the commit's objects are
	// written and before main moves: it returns when the blobs the
	// change's documents name are durably stored, or the error that
	// abandons the append (main does not move). Their writes then
	// overlap the building of the commit instead of preceding it.
	Blobs func() error
}

// Appended reports an append: the commit and the paths it added.
type Appended struct {
	Commit string   `json:"commit"`
	Paths  []string `json:"paths"`
}

// Append adds a change to the index in one commit on main. It first
// verifies whatever is new since the last verified head, then checks the
// commit against every rule, writes it, and moves main with
// compare-and-swap; if another writer moved main first, it checks again on
// the new head. Nothing is written to main unless the rules pass.
func (r *Repo) Append(ctx context.Context, ch Change, ident, message string) (*Appended, error) {
	files, err := r.place(ctx, ch)
	if err != nil {
		return nil, err
	}
	if ch.Blobs != nil {
		ch.Blobs = sync.OnceValue(ch.Blobs) // waited for once, however often the append retries
	}
	out := &Appended{}
	for _, f := range files {
		out.Paths = append(out.Paths, f.Path)
	}
	for attempt := 0; ; attempt++ {
		res, err := r.Verify(ctx, false)
		if err != nil {
			return nil, fmt.Errorf("the index does not verify, so nothing was added: %w", err)
		}
		id, err := r.commit(ctx, res.Head, files, ident, message, ch.Blobs)
		if errors.Is(err, gitx.ErrRefMoved) && attempt < maxRetries {
			r.resetReader() // ask a new git process where main is now
			continue
		}
		if err != nil {
			return nil, err
		}
		out.Commit = id
		return out, nil
	}
}

// place lays a change out as files of the layout.
func (r *Repo) place(ctx context.Context, ch Change) ([]gitx.File, error) {
	files := append([]gitx.File(nil), ch.Replayed...)
	if ch.Descriptor != nil {
		d, err := descriptor.Parse(ch.Descriptor)
		if err != nil {
			return nil, err
		}
		files = append(files, gitx.File{Path: layout.VersionDir(d.Name, d.Version) + "/" + layout.DescriptorFile, Data: ch.Descriptor})
	}
	if ch.Snapshot != nil {
		files = append(files, gitx.File{Path: layout.SnapshotDir(blob.DigestBytes(ch.Snapshot).SHA256) + "/" + layout.SnapshotFile, Data: ch.Snapshot})
	}
	for _, rec := range ch.Records {
		p, err := r.recordPath(ctx, rec, ch.Upstream[rec.ID])
		if err != nil {
			return nil, err
		}
		files = append(files, gitx.File{Path: p, Data: rec.Raw})
	}
	return files, nil
}

// recordPath is where rec goes: the layout implied by its content.
func (r *Repo) recordPath(ctx context.Context, rec *record.Record, upstream string) (string, error) {
	subject := rec.Statement.Subject
	if len(subject) == 0 {
		return "", fmt.Errorf("record %.16s (%s) has no subject: the index cannot place it", rec.ID, rec.Kind)
	}
	switch p := rec.Predicate.(type) {
	case record.RootPredicate:
		return layout.RootPath(p.Version), nil
	case record.UpstreamPredicate:
		return layout.RecordPath(layout.UpstreamDir(p.Name), rec.ID), nil
	case record.LabelPredicate:
		return layout.RecordPath(layout.LabelDir(p.Label), rec.ID), nil
	case record.PolicyPredicate:
		return layout.RecordPath(layout.PolicyDir(p.Name), rec.ID), nil
	case record.SnapshotPredicate:
		return layout.RecordPath(layout.SnapshotDir(p.Snapshot.SHA256), rec.ID), nil
	}
	switch {
	case rec.Kind == record.Grant || rec.Kind == record.RevokeKey:
		if !blob.IsDigest(subject[0].SHA256()) {
			return "", fmt.Errorf("record %.16s (%s): its subject is not a key digest", rec.ID, rec.Kind)
		}
		return layout.RecordPath(layout.KeyDir(subject[0].SHA256()), rec.ID), nil
	case rec.Kind == record.Revoke || rec.Kind == record.Supersede:
		f, err := r.FindRecord(ctx, subject[0].SHA256())
		if err != nil {
			return "", fmt.Errorf("record %.16s (%s) ends record %.16s: %w", rec.ID, rec.Kind, subject[0].SHA256(), err)
		}
		return layout.RecordPath(f.dir, rec.ID), nil
	case rec.Kind.IsPackage():
		name, version, ok := strings.Cut(subject[0].Name, "@")
		if !ok {
			return "", fmt.Errorf("record %.16s (%s): subject %q is not NAME@VERSION", rec.ID, rec.Kind, subject[0].Name)
		}
		if upstream != "" && rec.Kind != record.Authored {
			return layout.RecordPath(layout.UpstreamVersionDir(upstream, name, version), rec.ID), nil
		}
		return layout.RecordPath(layout.VersionDir(name, version), rec.ID), nil
	}
	return "", fmt.Errorf("record %.16s: the index has no place for a %s record", rec.ID, rec.Kind)
}

// commit checks files as a commit on parent ("" for the introduction),
// writes it, waits for blobs (if not nil: see Change.Blobs), and moves
// main from parent to it.
func (r *Repo) commit(ctx context.Context, parent string, files []gitx.File, ident, message string, blobs func() error) (string, error) {
	// Start git's ref update now, if it is not running since an earlier
	// append: its start-up overlaps the checks below.
	refs := r.refSession()
	if err := refs.Start(ctx); err != nil {
		return "", err
	}
	// And main's log: its lock taken, its map loaded (once per process)
	// while the commit is built, its entries staged while main moves.
	lg := r.stageLog(parent)
	moved := false
	defer func() {
		if !moved {
			lg.finish("", false)
		}
	}()
	id, when, err := r.build(ctx, r.Config.Introduction, parent, files, ident, message)
	if err != nil {
		return "", err
	}
	lg.append(id, when.Unix(), files)
	if blobs != nil {
		if err := blobs(); err != nil {
			return "", fmt.Errorf("storing the blobs of %s: %w (nothing was added to the index)", message, err)
		}
	}
	if err := refs.Update(ctx, MainRef, id, parent); err != nil {
		return "", err
	}
	moved = true
	m, _ := r.loadMarker()
	records := len(files)
	if m != nil {
		records += m.Records
	}
	err = r.saveMarker(marker{Head: id, Records: records})
	lg.finish(id, err == nil)
	if err != nil {
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

// stagedLog is an append's files staged in main's log in the background
// (see stageLog), committed once main moved to their commit, or dropped.
type stagedLog struct {
	commit chan stagedCommit // the commit to stage; closed: none
	sent   bool              // commit is closed
	done   chan struct{}     // closed once staged, or given up
	store  *translog.Store   // nil: nothing staged
	unlock func()
}

type stagedCommit struct {
	id    string
	time  int64
	files []gitx.File
}

// stageLog starts staging an append on parent (main's verified head) in
// main's log, best effort as the log's append always is (a log left
// behind is brought to the marker's head by the next verification): it
// takes the line's lock and the log's, and loads its map, while the
// commit is built; then, given the commit (append), stages its entries
// and map leaf and makes them durable (translog.Log.Prepare) while the
// blobs are synced and main moves. finish commits or drops them.
func (r *Repo) stageLog(parent string) *stagedLog {
	lg := &stagedLog{commit: make(chan stagedCommit, 1), done: make(chan struct{})}
	lg.unlock = lockLine(r.Main())
	go func() {
		defer close(lg.done)
		s, err := r.StoreOf(r.Main())
		if err != nil || s.Head() != parent || s.Begin(parent) != nil {
			return
		}
		c, ok := <-lg.commit
		if !ok {
			s.Rollback()
			return
		}
		entries := make([]translog.Entry, len(c.files))
		for i, f := range c.files {
			entries[i] = translog.NewEntry(c.id, c.time, f.Path, f.Data)
		}
		if _, err := s.AppendCommit(c.id, c.time, entries); err != nil {
			s.Rollback()
			return
		}
		// Its hashes and next state synced now, with the blobs and
		// while main moves: its commit then only renames.
		if err := s.Prepare(c.id); err != nil {
			s.Rollback()
			return
		}
		lg.store = s
	}()
	return lg
}

// append gives the staging its commit. append and finish are called
// from one goroutine.
func (lg *stagedLog) append(id string, time int64, files []gitx.File) {
	lg.commit <- stagedCommit{id, time, files}
	close(lg.commit)
	lg.sent = true
}

// finish commits what was staged as covering commit id if moved (main
// is at id), or drops it, and releases the locks. Only the first call
// counts.
func (lg *stagedLog) finish(id string, moved bool) {
	if lg.unlock == nil {
		return
	}
	if !lg.sent {
		close(lg.commit)
		lg.sent = true
	}
	<-lg.done
	if lg.store != nil {
		if !moved || lg.store.Commit(id) != nil {
			lg.store.Rollback()
		}
	}
	lg.unlock()
	lg.unlock = nil
}

// refSession is the repository's session for moving main: one git for
// every append of this Repo, started by the first.
func (r *Repo) refSession() *gitx.RefSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refs == nil {
		r.refs = r.git.NewRefSession("cairn: append")
	}
	return r.refs
}

// commitOn checks files as one commit on parent, a verified head of line
// l, against every rule of l's index, and writes it — moving no ref. It
// is how a version is copied to another index (cairn promote): the commit
// is pushed there, and l's ref moves when the push lands.
func (r *Repo) commitOn(ctx context.Context, l Line, parent string, files []gitx.File, ident, message string) (string, error) {
	head, _, err := l.VerifiedHead()
	if err != nil {
		return "", err
	}
	if head != parent || parent == "" {
		return "", fmt.Errorf("%s is verified at %q, not at %s: pull it first", l.Name, head, parent)
	}
	id, _, err := r.build(ctx, l.Introduction, parent, files, ident, message)
	var ae *AlreadyAppendedError
	if errors.As(err, &ae) {
		// A line's commit is built to be pushed: files already there
		// are the append-only rule's, as before.
		return "", &RuleError{Rule: RuleAppendOnly, Detail: ae.Error()}
	}
	return id, err
}

// build checks files as a commit on parent (of the index whose
// introduction is given) and writes the commit's objects. It returns the
// commit and its time.
func (r *Repo) build(ctx context.Context, introduction, parent string, files []gitx.File, ident, message string) (string, time.Time, error) {
	var zero time.Time
	rd, err := r.reader(ctx)
	if err != nil {
		return "", zero, err
	}
	now := time.Now()
	c := &Commit{Time: now}
	st := NewOverlay(nil)
	baseTree := ""
	if parent != "" {
		pc, err := rd.Commit(parent)
		if err != nil {
			return "", zero, err
		}
		baseTree = pc.Tree
		c.Parents = []string{parent}
		// Commit times never go backwards, whatever this machine's clock says.
		c.ParentTime = time.Unix(pc.Time, 0)
		if now.Before(c.ParentTime) {
			now, c.Time = c.ParentTime, c.ParentTime
		}
		if st, err = r.State(ctx, parent); err != nil {
			return "", zero, err
		}
	}
	for _, f := range files {
		af := &File{Path: f.Path, Status: 'A', Mode: gitx.ModeFile, Data: f.Data}
		prepare(af)
		c.Files = append(c.Files, af)
	}
	if err := Apply(st, c, introduction); err != nil {
		return "", zero, err
	}
	batch := r.git.NewBatch()
	tree, err := batch.AddToTree(rd, baseTree, files)
	if errors.Is(err, gitx.ErrExists) {
		if parent != "" && sameFiles(rd, parent, files) {
			return "", zero, &AlreadyAppendedError{Commit: parent, Paths: paths(files)}
		}
		return "", zero, &RuleError{Rule: RuleAppendOnly, Detail: err.Error()}
	}
	if err != nil {
		return "", zero, err
	}
	id := batch.Write("commit", gitx.FormatCommit(tree, c.Parents, ident, now.Unix(), message))
	if err := batch.Flush(); err != nil {
		return "", zero, err
	}
	return id, now, nil
}

// AlreadyAppendedError says that every file of an append is in the index
// already, byte for byte: the same records, signed in the same second
// (a record's id names its content and that second), appended before —
// a command run twice at once, or retried. Nothing is added; the
// records stand.
type AlreadyAppendedError struct {
	Commit string // main's head, which holds them
	Paths  []string
}

func (e *AlreadyAppendedError) Error() string {
	return fmt.Sprintf("%s: in the index already, byte for byte (the same record, signed in the same second, was appended before): nothing added", strings.Join(e.Paths, ", "))
}

// sameFiles says whether every file is at its path in commit, with the
// same bytes.
func sameFiles(rd *gitx.Reader, commit string, files []gitx.File) bool {
	for _, f := range files {
		o, err := rd.Read(commit + ":" + f.Path)
		if err != nil || o.Type != "blob" || !bytes.Equal(o.Data, f.Data) {
			return false
		}
	}
	return len(files) > 0
}

func paths(files []gitx.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}
