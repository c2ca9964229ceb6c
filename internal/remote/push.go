package remote

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
)

// maxPushAttempts bounds the retries of one push, whatever each is for:
// a race lost for the remote's main, or a busy server (an upload, or
// git's push, answered 429 or 503). maxPushWait bounds the time they
// wait in all. One budget per push: the upload loop has none of its own.
// The count is generous because a publisher among many can lose several
// races in a row on a loaded server (8 publishers under -race on 2 cores
// lost 11); the wait bounds the whole. (Variables so that tests can make
// them small.)
var (
	maxPushAttempts = 30
	maxPushWait     = time.Minute
)

// raceBackoff is the first wait after a lost race; each further loss
// doubles it, up to maxRaceBackoff, less a random part of up to a half,
// so that publishers who lost together do not collide again.
var raceBackoff, maxRaceBackoff = 25 * time.Millisecond, time.Second

// redateAfter is how old main's oldest unpushed commit may be before Push
// re-dates main's own commits: well inside the server's bound on commit
// times (index.MaxClockSkew), so that an honest commit made offline and
// pushed later is not refused for its date.
const redateAfter = index.MaxClockSkew / 2

// ErrRaceLost is the parent of the error Push returns when the remote's
// main kept moving under it: nobody refused anything; push again.
var ErrRaceLost = errors.New("lost the race for the remote's main")

// Pushed reports a push.
type Pushed struct {
	Remote   string `json:"remote"`
	Head     string `json:"head"`
	Commits  int    `json:"commits"`  // commits the remote did not have
	Uploaded int    `json:"uploaded"` // blobs uploaded
	Rebased  int    `json:"rebased"`  // times main was rebased onto a remote that moved
	Redated  int    `json:"redated"`  // times main's own commits were re-dated (made long before the push)
}

// PushError is a push the server refused: its records break a rule of
// the index, or name blobs the server lacks. Retrying as it is will not
// help. A lost race or a transport failure is never a PushError.
type PushError struct {
	Remote string
	Rule   string // the rule the server named (index.Rule…), "" for another refusal
	Output string // what the server said, as git relayed it
	hint   string // the hint the server gave, if any
}

func (e *PushError) Error() string {
	return fmt.Sprintf("remote %s refused the push:\n%s", e.Remote, e.Output)
}

// Hint says what to do: the rule's hint (index.RuleHint) when the server
// named a rule that has one, else the server's own hint, else "".
func (e *PushError) Hint() string {
	if h := index.RuleHint(e.Rule); h != "" {
		return h
	}
	return e.hint
}

// UncertainPushError is a push whose connection was cut after git had
// sent it (the server restarted, a proxy timed out): the server may have
// checked and landed it, or not. Pushing again tells: it finds nothing
// to push if it landed.
type UncertainPushError struct {
	Remote string
	Err    error
}

func (e *UncertainPushError) Error() string {
	return fmt.Sprintf("pushing to remote %s: the connection was cut before the server answered, so the push may have landed or not: %v", e.Remote, e.Err)
}

func (e *UncertainPushError) Unwrap() error { return e.Err }

// Hint says what to do.
func (e *UncertainPushError) Hint() string {
	return "run cairn push again: if the push landed it finds nothing to push (your commits are on the remote's main), and if not it pushes them"
}

// cutShort says whether git's words tell of a connection cut during the
// push, after it was sent (not one never made).
func cutShort(msg string) bool {
	for _, s := range []string{"RPC failed", "the remote end hung up unexpectedly", "unexpected disconnect", "early EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// parsePushError reads a refusal from git's output: the first
// "cairn: refused: rule NAME broken" names the rule, the first
// "cairn: hint: " line is the server's hint.
func parsePushError(remote, output string) *PushError {
	e := &PushError{Remote: remote, Output: remoteLines(output)}
	for _, l := range strings.Split(output, "\n") {
		if _, rest, ok := strings.Cut(l, "cairn: refused: rule "); ok && e.Rule == "" {
			if name, _, ok := strings.Cut(rest, " broken"); ok && !strings.ContainsAny(name, " :") {
				e.Rule = name
			}
		}
		if _, rest, ok := strings.Cut(l, "cairn: hint: "); ok && e.hint == "" {
			e.hint = strings.TrimSpace(rest)
		}
	}
	return e
}

// Push sends main's commits that the remote lacks: first the blobs they
// refer to (uploads signed by s), then the commits. If the remote moved
// meanwhile — its main changed, or another push held it — main's own
// commits are replayed onto the remote's verified head, every rule checked
// again, and pushed again, a bounded number of times. Main's own commits
// made long before the push (offline, say) are replayed too, which dates
// them now: a server refuses commits dated further from its clock than
// its bound, since it judges grant expiry by commit time.
func Push(ctx context.Context, r *index.Repo, name string, s keys.Signer, o Options) (*Pushed, error) {
	rm, err := Get(r, name)
	if err != nil {
		return nil, err
	}
	if rm.Introduction != r.Config.Introduction {
		return nil, fmt.Errorf("remote %s holds another index (introduction %.16s, this one %.16s): use cairn promote to copy versions to it", name, rm.Introduction, r.Config.Introduction)
	}
	if rm.Plain() {
		return nil, errPlain(rm, "cairn push cannot upload blobs to it nor have its rules checked there")
	}
	if _, err := r.Verify(ctx, false); err != nil {
		return nil, err
	}
	out := &Pushed{Remote: name}
	up := &blob.HTTP{URL: rm.URL, Client: o.client(), Signer: uploadSigner(s)}
	redate := false // the server refused main's commits for their dates
	b := &retries{}
	for attempt := 0; ; attempt++ {
		if attempt > 0 || !o.Fresh {
			if _, err := fetch(ctx, r, rm, o); err != nil {
				return nil, err
			}
		}
		head, err := refAt(ctx, r, Ref(name))
		if err != nil {
			return nil, err
		}
		main, err := r.Head(ctx, index.MainRef)
		if err != nil {
			return nil, err
		}
		if ok, _ := r.IsAncestor(ctx, main, head); ok {
			_, err := advanceMain(ctx, r, rm, "")
			out.Head = head
			return out, err
		}
		if ok, _ := r.IsAncestor(ctx, head, main); !ok {
			if o.BeforeRebase != nil {
				if err := o.BeforeRebase(ctx, head); err != nil {
					return nil, err
				}
			}
			if err := rebase(ctx, r, rm, head, main); err != nil {
				return nil, err
			}
			out.Rebased++
			if main, err = r.Head(ctx, index.MainRef); err != nil {
				return nil, err
			}
		} else if stale, err := staleSince(ctx, r, head, main, o.now()); err != nil {
			return nil, err
		} else if stale || redate {
			// Replayed onto the same head: the same records, dated now.
			if err := rebase(ctx, r, rm, head, main); err != nil {
				return nil, err
			}
			out.Redated++
			if main, err = r.Head(ctx, index.MainRef); err != nil {
				return nil, err
			}
		}
		redate = false
		n, commits, err := upload(ctx, r, up, head, main, b, o)
		out.Uploaded += n
		if err != nil {
			return nil, err
		}
		landed, said, err := pushTo(ctx, r, rm, main)
		var pe *PushError
		if errors.As(err, &pe) && pe.Rule == index.RuleTimeOrder && out.Redated == 0 {
			// This machine's clock and the server's disagree by more
			// than redateAfter: date the commits now and try once more.
			redate = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if landed {
			out.Head, out.Commits = main, commits
			// The remote's main is now our main, which is verified: no
			// need to fetch and replay it again.
			if err := r.MoveRef(ctx, Ref(name), main, head); err != nil {
				return nil, err
			}
			return out, rm.Line(r).Adopt(r.Main())
		}
		// The remote moved first, or the server was busy: fetch, rebase,
		// try again.
		if err := b.again(ctx, rm, said); err != nil {
			return nil, err
		}
	}
}

// again waits before a push is tried again, after git said it lost
// the race for the remote's main or found the server busy, so that the
// pushes that lost together spread out. When b cannot cover the wait it
// returns ErrRaceLost, or blob.ErrBusy if git found the server busy.
func (b *retries) again(ctx context.Context, rm *Remote, said string) error {
	err := b.wait(ctx, 0)
	switch {
	case err == nil || ctx.Err() != nil:
		return err
	case gitBusy(said):
		return fmt.Errorf("pushing to remote %s: %w: git's push was answered HTTP 429 or 503; %v: try again later:\n%s", rm.Name, blob.ErrBusy, err, remoteLines(said))
	}
	return fmt.Errorf("%w: remote %s: %d pushes in a row found its main moved or locked by other pushes; %v:\n%s", ErrRaceLost, rm.Name, b.n+1, err, remoteLines(said))
}

// retries is one push's budget of retries and of time spent waiting
// before them (maxPushAttempts, maxPushWait).
type retries struct {
	n      int           // retries made
	waited time.Duration // time waited before them
}

// errSpent is wait's answer when the budget cannot cover another retry.
var errSpent = errors.New("this push's budget of retries is spent")

// wait waits before the next try: retryAfter if the server asked for
// it, else a backoff that grows with the retries made. It waits not at
// all, and returns an error, when the budget cannot cover the retry.
func (b *retries) wait(ctx context.Context, retryAfter time.Duration) error {
	if b.n >= maxPushAttempts {
		return fmt.Errorf("%w (%d retries, waiting %s in all)", errSpent, b.n, b.waited.Round(time.Millisecond))
	}
	d := retryAfter
	if d <= 0 {
		d = backoffDelay(b.n)
	}
	if b.waited+d > maxPushWait {
		return fmt.Errorf("%w: %s more would pass its %s (%d retries, waiting %s in all)", errSpent, d, maxPushWait, b.n, b.waited.Round(time.Millisecond))
	}
	b.n++
	b.waited += d
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// staleSince reports whether the oldest of the commits from base to main
// is dated more than redateAfter before now.
func staleSince(ctx context.Context, r *index.Repo, base, main string, now time.Time) (bool, error) {
	unix, ok, err := r.OldestBetween(ctx, base, main)
	if err != nil || !ok {
		return false, err
	}
	return time.Unix(unix, 0).Before(now.Add(-redateAfter)), nil
}

// Discard drops main's commits that the remote lacks: main moves to the
// remote's verified head. A certifier discards what it could not push, so
// that nothing unpushed lingers to be pushed later beside a second
// certification of the same version. It returns how many commits were
// dropped.
func Discard(ctx context.Context, r *index.Repo, name string) (int, error) {
	rm, err := Get(r, name)
	if err != nil {
		return 0, err
	}
	if rm.Introduction != r.Config.Introduction {
		return 0, fmt.Errorf("remote %s holds another index: main does not follow it", name)
	}
	head, err := refAt(ctx, r, Ref(name))
	if err != nil || head == "" {
		return 0, err
	}
	main, err := refAt(ctx, r, index.MainRef)
	if err != nil || main == head {
		return 0, err
	}
	n := 0
	if main != "" {
		if n, err = r.CountBetween(ctx, head, main); err != nil {
			return 0, err
		}
	}
	if err := r.MoveRef(ctx, index.MainRef, head, main); err != nil {
		return 0, err
	}
	return n, r.Main().Adopt(rm.Line(r))
}

// Discarded is what DiscardRefused did: main's own commits (by their
// headers) it kept, replayed onto the remote's head, and those it gave
// up because the remote's history refuses them; Was is main before.
type Discarded struct {
	Was     string   `json:"was"`
	Kept    []string `json:"kept"`
	Dropped []string `json:"dropped"`
}

// DiscardRefused gives up main's own commits that the remote's verified
// history refuses (another publish of the same version landed first,
// say), and keeps the rest: main moves to the remote's head and each of
// its own commits is replayed there in order, every rule checked; one a
// rule refuses is dropped, and a failure of another kind puts main back
// where it was, nothing lost.
func DiscardRefused(ctx context.Context, r *index.Repo, name string) (*Discarded, error) {
	rm, err := Get(r, name)
	if err != nil {
		return nil, err
	}
	if rm.Introduction != r.Config.Introduction {
		return nil, fmt.Errorf("remote %s holds another index: main does not follow it", name)
	}
	head, err := refAt(ctx, r, Ref(name))
	if err != nil {
		return nil, err
	}
	main, err := refAt(ctx, r, index.MainRef)
	if err != nil {
		return nil, err
	}
	d := &Discarded{Was: main}
	if head == "" {
		return d, nil // never pulled: nothing to keep main against
	}
	if main == "" || main == head {
		return d, nil
	}
	if ok, _ := r.IsAncestor(ctx, main, head); ok {
		return d, nil // nothing of main's own: the pull moves it along
	}
	if d.Kept, d.Dropped, err = replayOnto(ctx, r, rm, head, main, true); err != nil {
		return nil, err
	}
	return d, nil
}

// pushTo pushes commit as the remote's main with the git client. It
// reports false, no error and what git said when the push lost the race
// for the remote's main (it moved, or another push held its lock) or
// found the server busy: the caller waits, fetches and tries again. A
// refusal by the server is a *PushError; anything else (the network, the
// server failing) is returned as it is.
func pushTo(ctx context.Context, r *index.Repo, rm *Remote, commit string) (landed bool, said string, err error) {
	res, err := r.PushMain(ctx, rm.URL+"/index.git", commit)
	if err == nil {
		return true, "", nil
	}
	// git says why on standard error, and what became of the ref (a
	// porcelain "!" line: rejected, fetch first) on standard output.
	msg := err.Error()
	if res != nil {
		msg += "\n" + res.Output
	}
	switch {
	case strings.Contains(msg, "cairn: refused: "):
		return false, "", parsePushError(rm.Name, msg)
	case lostRace(msg), gitBusy(msg):
		return false, msg, nil
	}
	if cutShort(msg) {
		return false, "", &UncertainPushError{Remote: rm.Name, Err: err}
	}
	return false, "", fmt.Errorf("pushing to remote %s: %w", rm.Name, err)
}

// backoffDelay is the wait before retry n+1: raceBackoff doubled n times,
// up to maxRaceBackoff, less a random part of up to a half.
func backoffDelay(n int) time.Duration {
	d := min(raceBackoff<<min(n, 16), maxRaceBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/2+1))
}

// lostRace reports whether git's output says the push lost the race for
// the remote's main: it was not a fast-forward of the main the server
// showed, or the ref moved or was locked between the check and the
// update.
func lostRace(msg string) bool {
	for _, s := range []string{"[rejected]", "(fetch first)", "(non-fast-forward)", "failed to update ref", "cannot lock ref", "stale info", "incorrect old value", "Updates were rejected because"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// gitBusy reports whether git's output says the server answered its
// push 429 Too Many Requests or 503 Service Unavailable. git shows the
// status only as text on its standard error ("error: RPC failed; HTTP
// 503", "The requested URL returned error: 503"), and not the server's
// Retry-After: this is the one place that reads it. Blob uploads, which
// cairn makes itself, are read by blob.Busy.
func gitBusy(msg string) bool {
	for _, s := range []string{"HTTP 429", "HTTP 503", "returned error: 429", "returned error: 503"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// remoteLines keeps what the server said.
func remoteLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "remote: "); i >= 0 {
			out = append(out, "  "+strings.TrimSpace(l[i:]))
		}
	}
	if len(out) == 0 {
		return "  " + s
	}
	return strings.Join(out, "\n")
}

// ReplayError: one of main's own commits, replayed onto the remote's
// head for a push, no longer applies there (another published the same
// version first, say). main is as it was.
type ReplayError struct {
	Remote string
	Commit string // its header
	Err    error
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("replaying %q onto the remote's head: %v", e.Commit, e.Err)
}

func (e *ReplayError) Unwrap() error { return e.Err }

// rebase replays main's commits after the merge base onto onto, each as a
// new append checked by every rule. If one no longer applies (someone
// else published the same version first), main is left as it was.
func rebase(ctx context.Context, r *index.Repo, rm *Remote, onto, main string) error {
	_, _, err := replayOnto(ctx, r, rm, onto, main, false)
	return err
}

// replayOnto moves main to onto (the remote's verified head) and replays
// main's own commits there, each as a new append checked by every rule,
// and returns the headers of those kept and of those dropped. One a rule
// refuses is dropped when skipRefused, else it puts main back where it
// was (a *ReplayError); any other failure puts main back too: nothing is
// lost.
func replayOnto(ctx context.Context, r *index.Repo, rm *Remote, onto, main string, skipRefused bool) (kept, dropped []string, err error) {
	todo, err := r.Replays(ctx, onto, main)
	if err != nil {
		return nil, nil, err
	}
	// main moves to the remote's head, verified by the fetch just made,
	// and grows from there; its old verified head is kept to put back.
	saved := r.Main()
	saved.Name, saved.Marker = "main before rebase", filepath.Join(dir(r), rm.Name+".main-before-rebase.json")
	if err := saved.Adopt(r.Main()); err != nil {
		return nil, nil, err
	}
	if err := r.MoveRef(ctx, index.MainRef, onto, main); err != nil {
		return nil, nil, err
	}
	if err := r.Main().Adopt(rm.Line(r)); err != nil {
		return nil, nil, err
	}
	for _, c := range todo {
		_, err := r.Append(ctx, index.Change{Replayed: c.Files}, c.Ident, c.Header)
		var re *index.RuleError
		switch {
		case err == nil:
			kept = append(kept, c.Header)
			continue
		case skipRefused && errors.As(err, &re):
			dropped = append(dropped, fmt.Sprintf("%s (%v)", c.Header, err))
			continue
		}
		// Put main back where it was: nothing is lost.
		if cur, rerr := refAt(ctx, r, index.MainRef); rerr == nil {
			if r.MoveRef(ctx, index.MainRef, main, cur) == nil {
				r.Main().Adopt(saved)
			}
		}
		return nil, nil, &ReplayError{Remote: rm.Name, Commit: c.Header, Err: err}
	}
	os.Remove(saved.Marker)
	return kept, dropped, nil
}

// upload sends the blobs that the commits from base to main refer to and
// that this repository holds; it returns how many it sent and how many
// commits there are.
func upload(ctx context.Context, r *index.Repo, up *blob.HTTP, base, main string, b *retries, o Options) (int, int, error) {
	var refs []blob.Ref
	seen := map[string]bool{}
	want := func(ref blob.Ref) {
		if ref.Size >= 0 && !seen[ref.SHA256] {
			seen[ref.SHA256] = true
			refs = append(refs, ref)
		}
	}
	commits := 0
	err := r.AddedBetween(ctx, base, main, func(_ string, added []index.Entry) error {
		commits++
		for _, f := range added {
			f.Blobs(want)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	var held []blob.Ref
	for _, ref := range refs {
		// A blob not held here was promoted binary-only, or uploaded by
		// someone else.
		if ok, _ := r.Blobs.Stat(ctx, ref); ok {
			held = append(held, ref)
		}
	}
	sent, err := uploadBlobs(ctx, r, up, held, b, o)
	return sent, commits, err
}

// Origin returns the blob store of the server a git clone was cloned
// from (its origin's URL, less /index.git), or nil if the repository is
// not a clone of a cairn server over HTTP.
func Origin(ctx context.Context, r *index.Repo, s keys.Signer, o Options) *blob.HTTP {
	u, ok, err := r.GitRemoteURL(ctx, "origin")
	if err != nil || !ok {
		return nil
	}
	u = strings.TrimSpace(u)
	base, ok := strings.CutSuffix(strings.TrimSuffix(u, "/"), "/index.git")
	if !ok || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
		return nil
	}
	return &blob.HTTP{URL: base, Client: o.client(), Signer: uploadSigner(s)}
}

// Upload sends blobs this repository holds to a server, skipping those
// it has; it returns how many it sent. A server busy (blob.Busy) is
// asked again after its Retry-After, within one budget of retries for
// all the blobs (maxPushAttempts, maxPushWait).
func Upload(ctx context.Context, r *index.Repo, to *blob.HTTP, refs []blob.Ref) (int, error) {
	return uploadBlobs(ctx, r, to, refs, &retries{}, Options{})
}

// uploadBlobs is Upload, spending b.
func uploadBlobs(ctx context.Context, r *index.Repo, to *blob.HTTP, refs []blob.Ref, b *retries, o Options) (int, error) {
	sent := 0
	for i, ref := range refs {
		o.progress("uploading blobs to "+to.URL, i, len(refs))
		if ok, err := to.Stat(ctx, ref); err == nil && ok {
			continue
		}
		for {
			rc, err := r.Blobs.Open(ctx, ref)
			if err != nil {
				return sent, err
			}
			err = to.Put(ctx, ref, rc)
			rc.Close()
			if after, ok := blob.Busy(err); ok {
				// The server takes a bounded number of uploads at once:
				// wait for others' to finish, as long as it asks.
				if werr := b.wait(ctx, after); werr != nil {
					if ctx.Err() != nil {
						return sent, werr
					}
					return sent, fmt.Errorf("uploading %s to %s: %w; %v: try again later", ref, to.URL, err, werr)
				}
				continue
			}
			if err != nil {
				return sent, fmt.Errorf("uploading %s to %s: %w", ref, to.URL, err)
			}
			break
		}
		sent++
	}
	if len(refs) > 0 {
		o.progress("uploading blobs to "+to.URL, len(refs), len(refs))
	}
	return sent, nil
}
