package remote

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/transport"
)

// Options are a pull's or push's surroundings.
type Options struct {
	Client *http.Client     // default transport.Client(): connect and stall timeouts
	Now    func() time.Time // default time.Now
	// BeforeRebase is called by Push when the remote moved and main's
	// own commits would be replayed onto its verified head: an error
	// stops the push there, main untouched (a certifier's replica finds
	// that another replica certified the same version first).
	BeforeRebase func(ctx context.Context, head string) error
	// Fresh says the remote was pulled just before: Push tries at once,
	// without fetching first. If the remote moved meanwhile the server
	// refuses the push (it is not a fast-forward), and Push fetches,
	// rebases and tries again as always.
	Fresh bool
	// Progress, if set, hears how far a pull, sync, push or promote is
	// (for a display; from one goroutine at a time).
	Progress func(Progress)
}

// Progress is how far a pull, sync, push or promote is: what is under
// way, and Done of Total (0: not known) commits verified or blobs
// uploaded.
type Progress struct {
	Step        string // "fetching remote origin", "verifying remote origin", "uploading blobs to URL"
	Done, Total int
}

func (o Options) progress(step string, done, total int) {
	if o.Progress != nil {
		o.Progress(Progress{Step: step, Done: done, Total: total})
	}
}

func (o Options) client() *http.Client {
	if o.Client != nil {
		return o.Client
	}
	return transport.Client()
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Pulled reports a pull.
type Pulled struct {
	Remote     string             `json:"remote"`
	From       string             `json:"from,omitempty"` // the remote's head verified before ("" = first pull)
	Head       string             `json:"head"`
	Commits    int                `json:"commits"`
	Records    int                `json:"files"`
	Total      int                `json:"total_files"`
	Checkpoint *checkpoint.Signed `json:"-"`
	CheckTime  time.Time          `json:"checkpoint_time,omitzero"`
	// Cosigned is how many trusted witnesses (distinct keys) cosigned the
	// checkpoint; Unwitnessed says the remote names none, so that a split
	// view (the server showing others another history) cannot be
	// detected: the CLI warns.
	Cosigned    int    `json:"cosigned"`
	Unwitnessed bool   `json:"unwitnessed,omitempty"`
	Main        string `json:"main"` // what local main did: "fast-forwarded", "created", "up to date", "ahead", "other index"
	// ServerHead is the head the server served when it is past its
	// checkpoint's (Head): the Pending commits after Head wait, unverified
	// and unused, until a checkpoint covers them.
	ServerHead string `json:"server_head,omitempty"`
	Pending    int    `json:"pending,omitempty"`
	// Upstreams are the upstream lines the server follows, brought along
	// (a server of this repository's own index only).
	Upstreams []*Pulled `json:"upstreams,omitempty"`
}

// CheckpointError is a security error about a server's checkpoint, with
// the signed checkpoint as evidence.
type CheckpointError struct {
	Remote   string // "remote origin", "upstream public"
	Problem  string
	Evidence []byte // the signed checkpoint(s)
	Err      error  // the cause, when it has a type of its own (a *witness.QuorumError)
}

func (e *CheckpointError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: %s: %s", e.Remote, e.Problem)
}

// Unwrap returns the cause.
func (e *CheckpointError) Unwrap() error { return e.Err }

// ErrNoCheckpoint is what a *NoCheckpointError is.
var ErrNoCheckpoint = errors.New("the server signs no checkpoints")

// NoCheckpointError says a server answered that it signs no checkpoints
// (cairn serve without --checkpoint-key): a configuration its operator can
// mend, not evidence of tampering. Without checkpoints a frozen mirror
// goes unnoticed, so the pull is refused unless the remote was added with
// InsecureNoCheckpoint.
type NoCheckpointError struct {
	Remote string // the line, as messages call it: "remote origin", "upstream acme"
	URL    string
	Answer string // what the server said, for people
}

func (e *NoCheckpointError) Error() string {
	return fmt.Sprintf("%s (%s) signs no checkpoints: without them a frozen mirror would go unnoticed, so it is not followed", e.Remote, e.URL)
}

// Unwrap makes a *NoCheckpointError an ErrNoCheckpoint.
func (e *NoCheckpointError) Unwrap() error { return ErrNoCheckpoint }

// Pull fetches the remote's main, verifies every new commit against the
// rules from the remote's introduction (or from the head verified last),
// checks the server's signed checkpoint, and only then moves the
// remote's ref — and, when the remote holds this repository's own index
// and main has nothing the remote lacks, main too.
func Pull(ctx context.Context, r *index.Repo, name string, o Options) (*Pulled, error) {
	rm, err := Get(r, name)
	if err != nil {
		return nil, err
	}
	p, err := fetch(ctx, r, rm, o)
	if err != nil {
		return nil, err
	}
	if p.Main, err = advanceMain(ctx, r, rm, p.From); err != nil {
		return p, err
	}
	if rm.Introduction == r.Config.Introduction {
		p.Upstreams, err = pullUpstreams(ctx, r, rm, o)
	}
	if p.Commits > 0 {
		// A pack a pull: rolled up now and then (best effort: a
		// failure loses nothing), or a follower's lookups slow down.
		r.Maintain(ctx)
	}
	return p, err
}

// fetch brings the remote's head in and verifies it (see Pull), without
// touching main. A server that signs checkpoints is followed only as far
// as its checkpoint: the line is verified up to exactly the head the
// checkpoint names, never past it, and commits the server holds beyond it
// wait (Pulled.Pending) until a checkpoint covers them. A head that is an
// ancestor of the one verified before is a *RollbackError; one that is
// neither ancestor nor descendant, a *ForkError.
func fetch(ctx context.Context, r *index.Repo, rm *Remote, o Options) (*Pulled, error) {
	for try := 0; ; try++ {
		last := try == len(lagWaits)
		p, err := fetchOnce(ctx, r, rm, o, last)
		if last || !errors.Is(err, ErrRollback) && !errors.Is(err, errBehind) {
			return p, err
		}
		t := time.NewTimer(lagWaits[try])
		select {
		case <-ctx.Done():
			t.Stop()
			return p, err
		case <-t.C:
		}
	}
}

// lagWaits are the waits before a pull asks a server again when what it
// served is behind: a head older than the one verified from it before,
// or a checkpoint of a head its git history does not hold yet. Read
// replicas behind a load balancer (cairn serve --follow) answer one
// client's requests from several copies, each a moment behind its writer
// after a push (one made by this client, through another replica, say).
// Only what stays behind through every wait is judged: a rollback
// refused as one, a checkpoint outside the served history refused as
// another history.
var lagWaits = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}

// errBehind says the checkpoint names a head the served history does not
// hold (yet): asked again (lagWaits).
var errBehind = errors.New("the server's checkpoint names a head its git history does not hold yet")

// fetchOnce is one try of fetch; on the last, a served history behind
// its checkpoint is judged rather than asked again.
func fetchOnce(ctx context.Context, r *index.Repo, rm *Remote, o Options, last bool) (p *Pulled, _ error) {
	// The checkpoint first: a head fetched after it is the same or newer.
	// An upstream's line read through an organisation's server (via) is
	// held to the upstream's own checkpoint, the one the organisation's
	// sync checked and kept: a line is believed only as far as its
	// upstream signed it, fresh, whoever serves it.
	note, err := getCheckpoint(ctx, rm, o)
	if err != nil {
		return nil, err
	}
	in := rm.incoming(r)
	// Each slice verified hands its state to the next, and the last to
	// the verification of the rest.
	in.Carry = &index.Carry{}
	line := rm.Line(r)
	// Every error names the line (callers add nothing): a security error
	// names it itself, with the URL.
	named := func(err error) error { return fmt.Errorf("%s: %w", line.Name, err) }
	src := index.MainRef
	if rm.via != "" {
		src = rm.via
	}
	only := ""
	if rm.upstream || rm.via != "" {
		// Tell the server only what it gave: the commits of this line,
		// never those of main, which hold internal packages.
		only = line.Ref
	}
	o.progress("fetching "+line.Name, 0, 0)
	// The incoming line is judged against what was verified of the remote.
	verified, _, err := line.VerifiedHead()
	if err != nil {
		return nil, named(err)
	}
	// The replay from the verified head is what checks that the line
	// continues from it: a history that does not pass through it is an
	// *index.ForkError, found with no git process of its own, and only
	// then told apart as a rollback or a fork.
	if verified != "" {
		if err := in.Adopt(line); err != nil {
			return nil, named(err)
		}
	} else {
		os.Remove(in.Marker)
	}
	if o.Progress != nil {
		in.Progress = func(p index.Progress) { o.progress("verifying "+line.Name, p.Commits, p.Total) }
	}
	// A long history comes in slices, each verified while the next one
	// arrives (fetchSliced); a short one, or one from a plain git host,
	// whole.
	sl, err := fetchSliced(ctx, r, rm, o, in, line, note, verified)
	if err != nil {
		return nil, err
	}
	if sl.undo != nil {
		defer func() {
			if p == nil {
				sl.undo() // refused after the slices
			}
		}()
	}
	if sl.served == "" {
		if err := r.Fetch(ctx, rm.gitURL(), src, in.Ref, only); err != nil {
			return nil, fmt.Errorf("%s: %w", line.Name, err)
		}
	}
	served, err := refAt(ctx, r, in.Ref)
	if err != nil {
		return nil, named(err)
	}
	// How far to go: the checkpoint's head, when the served history holds
	// it. What the checkpoint claims is trusted only once it is verified
	// (checkCheckpoint), against the history up to that head; a head
	// outside the served history is verified as served, and the checkpoint
	// check names both.
	target := served
	if note != nil {
		c, err := checkpoint.Claimed(note)
		if err != nil {
			return nil, &CheckpointError{Remote: rm.title(), Problem: err.Error(), Evidence: note}
		}
		if c.Head != served {
			if ok, _ := r.IsAncestor(ctx, c.Head, served); ok {
				if err := r.MoveRef(ctx, in.Ref, c.Head, served); err != nil {
					return nil, named(err)
				}
				target = c.Head
			} else if held, _ := r.IsAncestor(ctx, c.Head, c.Head); !held && !last {
				return nil, named(fmt.Errorf("%w: it signs %s, it serves %s", errBehind, c.Head, served))
			}
		}
	}
	if sl.last != "" && o.Progress != nil {
		in.Progress = func(p index.Progress) {
			o.progress("verifying "+line.Name, sl.commits+p.Commits, sl.commits+p.Total)
		}
	}
	res, err := r.VerifyLine(ctx, in, false)
	var fe *index.ForkError
	if errors.As(err, &fe) && sl.last != "" {
		if behind, _ := r.IsAncestor(ctx, fe.Head, sl.last); behind && !last {
			// Served by a replica behind the one that listed the slices
			// (a load balancer's): asked again.
			return nil, named(fmt.Errorf("%w: it listed slices up to %s, it serves %s", errBehind, sl.last, fe.Head))
		}
		return nil, &SliceError{Remote: line.Name, URL: rm.URL, Commit: fe.Head, After: sl.last, Verified: verified}
	}
	if errors.As(err, &fe) {
		return nil, breakOf(ctx, r, rm, line, fe)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", line.Name, err)
	}
	if sl.served != "" {
		// The slices verified before are part of this pull.
		res.From, res.Commits, res.Records = verified, res.Commits+sl.commits, res.Records+sl.records
		if err := r.MoveRef(ctx, rm.fetched(r), "", sl.served); err != nil {
			return nil, named(err)
		}
	}
	if rm.Plain() && target != served {
		// Nothing refused the commits the host holds past its checkpoint:
		// they are judged now, though followed only once one covers them.
		if err := checkPending(ctx, r, rm, line, target, served); err != nil {
			return nil, err
		}
	}
	p = &Pulled{Remote: rm.Name, From: verified, Head: res.Head, Commits: res.Commits, Records: res.Records, Total: res.Total}
	if note != nil {
		sc, n, err := checkCheckpoint(ctx, r, rm, in, note, res, o.now())
		if err != nil {
			return nil, err
		}
		pol, err := rm.Policy()
		if err != nil {
			return nil, err
		}
		p.Checkpoint, p.CheckTime, p.Cosigned, p.Unwitnessed = sc, sc.Time, n, pol.Unwitnessed()
	}
	if target != served {
		n, err := r.CountBetween(ctx, target, served)
		if err != nil {
			return nil, named(err)
		}
		p.ServerHead, p.Pending = served, n
	}
	old, err := refAt(ctx, r, line.Ref)
	if err != nil {
		return nil, named(err)
	}
	if old != res.Head {
		if err := r.MoveRef(ctx, line.Ref, res.Head, old); err != nil {
			return nil, named(err)
		}
	}
	if err := line.Adopt(in); err != nil {
		return nil, named(err)
	}
	return p, nil
}

// breakOf says what a line that does not continue from the head verified
// from the same remote before is: an ancestor of that head is a
// rollback, anything else a fork. Nothing local is at fault either way.
func breakOf(ctx context.Context, r *index.Repo, rm *Remote, line index.Line, fe *index.ForkError) error {
	if fe.Verified != "" && fe.Head != fe.Verified {
		if ok, _ := r.IsAncestor(ctx, fe.Head, fe.Verified); ok {
			return &RollbackError{Remote: line.Name, URL: rm.URL, Log: rm.Log, Verified: fe.Verified, Head: fe.Head}
		}
	}
	return &ForkError{Remote: line.Name, URL: rm.URL, Verified: fe.Verified, Head: fe.Head}
}

// ErrRollback is what a *RollbackError is.
var ErrRollback = errors.New("rolled back")

// RollbackError is a security error: a server serves (or its checkpoint
// signs) a head that is an ancestor of the head verified from it before.
// It went back in time — a stale mirror, a restored backup, a replayed
// checkpoint — and hides what came after. The local copy is intact and
// stays at Verified.
type RollbackError struct {
	Remote string // the line, as messages call it: "remote origin", "upstream acme"
	URL    string
	// Log is where a plain git host's signed checkpoint is read ("" for
	// a cairn server): the head it signs is the one pulled to.
	Log      string
	Verified string // the head verified from the server before
	Head     string // the older head it serves now
}

func (e *RollbackError) Error() string {
	if e.Log != "" {
		return fmt.Sprintf("SECURITY ERROR: %s (git %s, log %s) rolled back: the checkpoint its log serves signs head %s, an ancestor of %s, which was verified from it before: the log's copy, or a cache in front of it, went back in time and hides what came after; this copy stays at %s",
			e.Remote, e.URL, e.Log, e.Head, e.Verified, e.Verified)
	}
	return fmt.Sprintf("SECURITY ERROR: %s (%s) rolled back: it serves head %s, an ancestor of %s, which was verified from it before: the server or a mirror in front of it went back in time and hides what came after; this copy stays at %s",
		e.Remote, e.URL, e.Head, e.Verified, e.Verified)
}

// Unwrap makes a *RollbackError an ErrRollback.
func (e *RollbackError) Unwrap() error { return ErrRollback }

// ForkError is a security error: a server serves a head that neither
// descends from nor precedes the head verified from it before. Its
// history was rewritten, or it shows different histories to different
// clients. The local copy is intact and stays at Verified; index.ErrFork
// is what it is.
type ForkError struct {
	Remote   string // the line, as messages call it
	URL      string
	Verified string // the head verified from the server before
	Head     string // the head it serves now, on another history
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: %s (%s) serves another history: its head %s neither descends from nor precedes %s, which was verified from it before; records may have been removed, or it shows different histories to different clients; this copy stays at %s",
		e.Remote, e.URL, e.Head, e.Verified, e.Verified)
}

// Unwrap makes a *ForkError an index.ErrFork.
func (e *ForkError) Unwrap() error { return index.ErrFork }

// getCheckpoint fetches the signed checkpoint of the line rm names: the
// server's own, or for a line read through an organisation's server (via)
// the upstream's that the organisation serves at
// /upstreams/UP/log/checkpoint.
func getCheckpoint(ctx context.Context, rm *Remote, o Options) ([]byte, error) {
	if rm.via != "" {
		return getLineCheckpoint(ctx, rm, o)
	}
	if rm.Plain() {
		return getStaticCheckpoint(ctx, rm, o)
	}
	resp, body, err := fetchCheckpoint(ctx, rm, o, rm.URL+"/api/v1/checkpoint")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound && rm.InsecureNoCheckpoint {
		return nil, nil
	}
	if resp.StatusCode == http.StatusNotFound && resp.Header.Get(checkpoint.NoneHeader) == checkpoint.None {
		answer := strings.ToValidUTF8(strings.TrimSpace(string(body)), "")
		if len(answer) > 200 {
			answer = strings.ToValidUTF8(answer[:200], "") + "…"
		}
		return nil, &NoCheckpointError{Remote: rm.title(), URL: rm.URL, Answer: answer}
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return nil, fmt.Errorf("%s: the server gave no checkpoint: %s: %s", rm.title(), resp.Status, strings.TrimSpace(string(body)))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &CheckpointError{Remote: rm.title(), Problem: fmt.Sprintf("no signed checkpoint (%s: %s): without one a frozen mirror goes unnoticed; if you accept that, add the remote with --insecure-no-checkpoint", resp.Status, strings.TrimSpace(string(body)))}
	}
	return body, nil
}

// fetchCheckpoint GETs a checkpoint at u for rm: the answer (its body
// already read, at most 64 KiB, and closed) whatever its status.
func fetchCheckpoint(ctx context.Context, rm *Remote, o Options, u string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := o.client().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", rm.title(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: checkpoint: %w", rm.title(), err)
	}
	return resp, body, nil
}

// getLineCheckpoint fetches the upstream's signed checkpoint of the line
// rm reads through an organisation's server. The server holds the line
// (pullUpstreams asks only for those), so any answer but one is a
// security error: a line with no checkpoint could be any history built
// from the upstream's records (one left out), or a frozen one.
func getLineCheckpoint(ctx context.Context, rm *Remote, o Options) ([]byte, error) {
	u := rm.URL + "/upstreams/" + rm.Name + "/log/checkpoint"
	resp, body, err := fetchCheckpoint(ctx, rm, o, u)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusNotFound:
		answer := strings.ToValidUTF8(strings.TrimSpace(string(body)), "")
		if len(answer) > 200 {
			answer = strings.ToValidUTF8(answer[:200], "") + "…"
		}
		return nil, &CheckpointError{Remote: rm.title(), Problem: fmt.Sprintf("the server at %s holds the line but serves no checkpoint of it (GET %s: %s: %s): without the upstream's own signed checkpoint the line could be a history rebuilt from the upstream's records with one left out, or a frozen one; the server's operator runs cairn sync (cairn serve with its checkpoint key) to keep one", rm.URL, u, resp.Status, answer)}
	}
	return nil, fmt.Errorf("%s: the server at %s gave no checkpoint of the line: %s: %s", rm.title(), rm.URL, resp.Status, strings.TrimSpace(string(body)))
}

// OpenCheckpoint verifies a signed checkpoint of the index whose
// introduction is introduction, against r's history at head (a verified
// line of that index): signed by a key that history granted the
// checkpoint scope, unrevoked and unexpired when it signed, for that
// index, of a head that head contains. A lock's checkpoint is checked
// with it too.
func OpenCheckpoint(ctx context.Context, r *index.Repo, head, introduction string, note []byte) (*checkpoint.Signed, error) {
	// The keys granted the checkpoint scope and not revoked are tried;
	// that the grant of the one that signed was unexpired is judged at
	// the checkpoint's own time.
	granted, err := r.KeysGranted(ctx, head, "checkpoint")
	if err != nil {
		return nil, err
	}
	var pubs []ed25519.PublicKey
	for _, k := range granted {
		pubs = append(pubs, k.Pub)
	}
	sc, err := checkpoint.Open(note, checkpoint.Origin(introduction), pubs)
	if err != nil {
		return nil, err
	}
	for _, k := range granted {
		if k.ID == sc.Key {
			if err := k.MayCheckpoint(sc.Time); err != nil {
				return nil, fmt.Errorf("the checkpoint signed at %s: %w", sc.Time.UTC().Format(time.RFC3339), err)
			}
		}
	}
	if sc.Head == head {
		return sc, nil
	}
	if ok, _ := r.IsAncestor(ctx, sc.Head, head); !ok {
		return sc, fmt.Errorf("%w: the checkpoint signs head %s, which the verified history at %s does not contain", ErrOtherHistory, sc.Head, head)
	}
	return sc, nil
}

// ErrOtherHistory says a checkpoint signs a head outside the history it
// is checked against.
var ErrOtherHistory = errors.New("checkpoint of another history")

// checkCheckpoint verifies a checkpoint just fetched against the remote
// line just verified (OpenCheckpoint), its head, its tree, its age and
// the remote's witness policy, and keeps it beside the line. A pull
// verifies the line up to the checkpoint's head exactly (fetch), so the
// checkpoint must sign that head: one of an ancestor, which
// OpenCheckpoint accepts for a lock's kept checkpoint, is refused here.
// It returns the number of trusted witnesses that cosigned.
func checkCheckpoint(ctx context.Context, r *index.Repo, rm *Remote, in index.Line, note []byte, res *index.VerifyResult, now time.Time) (*checkpoint.Signed, int, error) {
	refuse := func(problem string) (*checkpoint.Signed, int, error) {
		return nil, 0, &CheckpointError{Remote: rm.title(), Problem: problem, Evidence: note}
	}
	sc, err := OpenCheckpoint(ctx, r, res.Head, rm.Introduction, note)
	if errors.Is(err, ErrOtherHistory) {
		return refuse(fmt.Sprintf("the server signed head %s but served %s, which does not contain it: it shows different histories to different clients (the signed checkpoint is the evidence)", sc.Head, res.Head))
	}
	if err != nil {
		return refuse(err.Error())
	}
	if sc.Head != res.Head {
		return refuse(fmt.Sprintf("the checkpoint signs head %s, not %s, the head just verified: a pull's checkpoint covers exactly what it verified (an old checkpoint replayed, or a server that signs one head and serves another)", sc.Head, res.Head))
	}
	// The tree it signs must be the one this replica computed from the
	// history it verified: a server cannot sign one log and serve another.
	st, err := r.StoreOf(in)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", rm.title(), err)
	}
	size, root, mapRoot, err := st.MapRoot()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", rm.title(), err)
	}
	if head := st.Head(); head != res.Head {
		return nil, 0, fmt.Errorf("%s: the transparency log computed is at %s, not at the head verified, %s", rm.title(), head, res.Head)
	}
	if mine := (checkpoint.Checkpoint{Origin: sc.Origin, Size: size, Root: root, Map: mapRoot, Head: res.Head, Time: sc.Time}); mine != sc.Checkpoint {
		return nil, 0, &CheckpointError{Remote: rm.title(), Evidence: note, Problem: fmt.Sprintf(
			"the checkpoint's tree is not the one its history gives: it signs size %d, root %x, map %x at head %s; the history verified gives size %d, root %x, map %x there: the server signs one log and serves another (the signed checkpoint is the evidence)",
			sc.Size, sc.Root[:], sc.Map[:], sc.Head, mine.Size, mine.Root[:], mine.Map[:])}
	}
	if err := sc.Fresh(now, rm.MaxAge, index.MaxClockSkew); err != nil {
		return refuse(err.Error())
	}
	pol, err := rm.Policy()
	if err != nil {
		return nil, 0, err
	}
	n, err := pol.Check(note, sc.Origin)
	if err != nil {
		return nil, 0, &CheckpointError{Remote: rm.title(), Problem: err.Error(), Evidence: note, Err: err}
	}
	if err := safefile.Write(rm.checkpointPath(r), note, safefile.Options{Perm: 0o644, NoSync: true}); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", rm.title(), err)
	}
	return sc, n, nil
}

// advanceMain moves main along a verified remote of the same index.
// from, if set, is a head the remote's line was verified from up to its
// head now: the replay checked that the line passes through it, so a
// main still there is behind the remote's head, with no git process to
// ask.
func advanceMain(ctx context.Context, r *index.Repo, rm *Remote, from string) (string, error) {
	if rm.Introduction != r.Config.Introduction {
		return "other index", nil
	}
	head, err := refAt(ctx, r, Ref(rm.Name))
	if err != nil {
		return "", err
	}
	main, err := refAt(ctx, r, index.MainRef)
	if err != nil {
		return "", err
	}
	switch {
	case main == head:
		return "up to date", nil
	case main == "":
		if err := r.MoveRef(ctx, index.MainRef, head, ""); err != nil {
			return "", err
		}
		return "created", r.Main().Adopt(rm.Line(r))
	}
	if main != from {
		if ok, _ := r.IsAncestor(ctx, head, main); ok {
			return "ahead", nil
		}
		if ok, _ := r.IsAncestor(ctx, main, head); !ok {
			return "", &DivergedError{Remote: rm.Name, Main: main, Head: head}
		}
	}
	// main must itself be verified before the remote's verification of
	// the same history can stand for it.
	if _, err := r.Verify(ctx, false); err != nil {
		return "", err
	}
	if err := r.MoveRef(ctx, index.MainRef, head, main); err != nil {
		return "", err
	}
	return "fast-forwarded", r.Main().Adopt(rm.Line(r))
}

// DivergedError says that main and a remote each have commits the other
// lacks: push (which rebases main's own commits) to reconcile them.
type DivergedError struct{ Remote, Main, Head string }

func (e *DivergedError) Error() string {
	return fmt.Sprintf("main (%.12s) and remote %s (%.12s) have diverged: each has commits the other lacks", e.Main, e.Remote, e.Head)
}

// ErrDiverged is what a *DivergedError is.
var ErrDiverged = errors.New("diverged")

func (e *DivergedError) Unwrap() error { return ErrDiverged }
