package remote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/transport"
)

// A replica (cairn serve --follow REMOTE) is a repository made by
// `cairn remote add REMOTE WRITER-URL --introduction ID`, pinned like any
// other: its Follower pulls from the writer on its own, each pull
// verifying every new commit and the writer's signed checkpoint exactly
// as Pull does, and hands each checkpoint it checked to the server that
// serves the replica (Follower.Verified). A pull that is refused (a
// fork, a rollback, a rule broken, a bad checkpoint) moves nothing: the
// replica keeps serving the head it verified last, and says so in its
// log.

// Follower keeps a replica's main at its writer's verified head.
type Follower struct {
	// Repo is the replica, opened for the follower alone: a pull moves
	// refs and restarts readers, which the server's requests must not
	// see.
	Repo *index.Repo
	// Remote names the writer, a remote of Repo of the same index.
	Remote string
	// Every bounds the wait between two pulls (default 30 s); a push
	// the writer announces (GET /api/v1/head, held until main moves)
	// and Nudge start one at once.
	Every time.Duration
	// Options are each pull's.
	Options Options
	// Log hears each pull that moved main, and each refused one.
	Log *slog.Logger
	// Verified, if set, is called after each pull that verified (main
	// moved or not) with the writer's signed checkpoint the pull checked
	// and kept, and the id of the key that signed it.
	Verified func(ctx context.Context, note []byte, key string) error

	once     sync.Once
	nudge    chan struct{}
	refusal  atomic.Pointer[error] // the writer's last refusal, while it stands
	stall    atomic.Pointer[error] // the last pull's failure here, while it stands
	verified atomic.Int64          // when a pull last verified (Unix seconds), 0 before
}

// Stalled is why the follower cannot follow its writer now for a fault
// of this machine's own (the last pull failed writing or reading its
// files: a full disk, a read-only file system), nil while it follows it,
// refuses it, or only cannot reach it. The replica serves the head it
// verified before, ever further behind, until the fault is mended; its
// health says so.
func (f *Follower) Stalled() error {
	if e := f.stall.Load(); e != nil {
		return *e
	}
	return nil
}

// LastVerified is when a pull last verified the writer (main moved or
// not); zero before the first.
func (f *Follower) LastVerified() time.Time {
	if s := f.verified.Load(); s != 0 {
		return time.Unix(s, 0)
	}
	return time.Time{}
}

// Refusing is why the follower refuses its writer now (the last pull was
// a security error: a rollback, a fork, a broken rule, a checkpoint that
// does not check), nil while it follows it or only cannot reach it. The
// replica keeps serving the head it verified before; its health says so.
func (f *Follower) Refusing() error {
	if e := f.refusal.Load(); e != nil {
		return *e
	}
	return nil
}

func (f *Follower) init() {
	f.once.Do(func() { f.nudge = make(chan struct{}, 1) })
}

// Nudge asks for a pull now; it never blocks (a pull already asked for
// covers this one).
func (f *Follower) Nudge() {
	f.init()
	select {
	case f.nudge <- struct{}{}:
	default:
	}
}

// Followable returns remote name of repo if a replica can follow it:
// a writer (cairn serve) of repo's own index that signs its
// checkpoints. A plain git host is none: it has no writer to forward
// pushes and uploads to.
func Followable(repo *index.Repo, name string) (*Remote, error) {
	rm, err := Get(repo, name)
	if err != nil {
		return nil, err
	}
	if rm.Introduction != repo.Config.Introduction {
		return nil, fmt.Errorf("remote %s is another index (introduced by %.16s, not %.16s): a replica follows the writer of its own index", name, rm.Introduction, repo.Config.Introduction)
	}
	if rm.InsecureNoCheckpoint {
		return nil, fmt.Errorf("remote %s was added with --insecure-no-checkpoint: a replica serves its writer's signed checkpoints, so its writer must sign them (cairn serve --checkpoint-key)", name)
	}
	if rm.Log != "" {
		return nil, fmt.Errorf("remote %s is a plain git host (%s, its log at %s): a replica forwards pushes and uploads to a writer (cairn serve), and a git host has none; serve a copy without --follow (cairn pull keeps it), and push to the git host", name, transport.RedactString(rm.URL), transport.RedactString(rm.Log))
	}
	return rm, nil
}

// Once pulls from the writer once, then hands the checkpoint it checked
// to Verified. It refuses a remote of another index: a replica serves
// its writer's own index.
func (f *Follower) Once(ctx context.Context) (*Pulled, error) {
	rm, err := Followable(f.Repo, f.Remote)
	if err != nil {
		return nil, err
	}
	p, err := Pull(ctx, f.Repo, f.Remote, f.Options)
	if err != nil {
		return p, err
	}
	if p.Checkpoint == nil {
		return p, fmt.Errorf("remote %s: the pull checked no checkpoint", f.Remote)
	}
	f.verified.Store(time.Now().Unix())
	if f.Verified != nil {
		if err := f.Verified(ctx, p.Checkpoint.Raw, p.Checkpoint.Key); err != nil {
			return p, err
		}
	}
	if p.From != p.Head {
		f.fetchBlobs(ctx, rm, p.From, p.Head)
	}
	return p, nil
}

// fetchBlobs fetches from the writer, verified, the blobs that the
// records from old to new refer to and the replica lacks, a few at a
// time, so that it serves them if the writer goes away. One that fails
// is logged: a request for it asks the writer again (WriterBlobs).
func (f *Follower) fetchBlobs(ctx context.Context, rm *Remote, old, new string) {
	refs, err := f.Repo.BlobsAddedBetween(ctx, old, new)
	if err != nil {
		f.logger().Warn("replica: the blobs of the new records were not listed; they are fetched when asked for", "err", err)
		return
	}
	c := &blob.Chain{Local: f.Repo.Blobs, Mirrors: []blob.Store{&blob.HTTP{URL: rm.URL, Client: f.Options.client()}}}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for hex, size := range refs {
		if size < 0 {
			continue // a record that gives no size: fetched when asked for with one
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.Fetch(ctx, blob.Ref{SHA256: hex, Size: size}); err != nil && ctx.Err() == nil {
				f.logger().Warn("replica: a blob of the new records was not fetched from the writer; it is fetched when asked for", "sha256", hex, "err", err)
			}
		})
	}
	wg.Wait()
}

func (f *Follower) logger() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return f.Log
}

// Kept hands Verified the writer's checkpoint the last pull kept, if it
// is still of main's head (a replica restarted): the replica serves it at
// once, before its first pull of this run.
func (f *Follower) Kept(ctx context.Context) error {
	rm, err := Get(f.Repo, f.Remote)
	if err != nil {
		return err
	}
	note, err := rm.LastCheckpoint(f.Repo)
	if err != nil {
		return err
	}
	head, err := refAt(ctx, f.Repo, index.MainRef)
	if err != nil {
		return err
	}
	if head == "" {
		return fmt.Errorf("no main yet: %w", fs.ErrNotExist)
	}
	sc, err := OpenCheckpoint(ctx, f.Repo, head, rm.Introduction, note)
	if err != nil {
		return err
	}
	if sc.Head != head {
		return fmt.Errorf("the checkpoint kept is of %s, not of main's head %s: %w", sc.Head, head, fs.ErrNotExist)
	}
	if f.Verified == nil {
		return nil
	}
	return f.Verified(ctx, note, sc.Key)
}

// Run pulls now, then whenever the writer announces a new head, Nudge
// asks, or Every has passed, until ctx is done. A refused pull is
// logged (loudly when it is a security error) and tried again at the
// next occasion; main stays where it was verified.
func (f *Follower) Run(ctx context.Context) {
	f.init()
	every := f.Every
	if every <= 0 {
		every = 30 * time.Second
	}
	log := f.logger()
	rm, err := Get(f.Repo, f.Remote)
	if err != nil {
		log.Error("not following the writer", "remote", f.Remote, "err", err)
		return
	}
	go f.watch(ctx, rm.URL, every)
	lastErr := ""
	fails := 0 // pulls failed in a row
	for {
		p, err := f.Once(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			fails++
			level, msg := slog.LevelWarn, "replica: cannot follow the writer now: the pull failed; serving the head verified before"
			switch {
			case isSecurity(err):
				f.refusal.Store(&err) // until a pull verifies again
				level, msg = slog.LevelError, "replica: not following the writer: the pull was refused; serving the head verified before"
			case isLocal(err):
				f.stall.Store(&err) // until a pull verifies again
				level, msg = slog.LevelError, "replica: cannot follow the writer: the pull failed here, on this machine's files (a full disk?); serving the head verified before, until the fault is mended"
			default:
				f.stall.Store(nil)
			}
			// Said once per distinct failure: a writer that stays bad
			// does not fill the log.
			if e := err.Error(); e != lastErr {
				lastErr = e
				head, _ := refAt(ctx, f.Repo, index.MainRef)
				log.Log(ctx, level, msg, "writer", transport.RedactString(rm.URL), "head", head, "err", err)
			}
		default:
			fails = 0
			f.refusal.Store(nil)
			f.stall.Store(nil)
			if lastErr != "" {
				log.Info("replica: following the writer again", "writer", transport.RedactString(rm.URL), "head", p.Head)
				lastErr = ""
			}
			if p.From != p.Head {
				log.Info("replica: verified the writer's new head", "writer", transport.RedactString(rm.URL), "head", p.Head, "commits", p.Commits, "size", p.Checkpoint.Size)
			}
		}
		wait := every
		switch {
		case err == nil && p.Pending > 0:
			wait = min(every, time.Second) // the writer signs its next checkpoint soon
		case err != nil && !isSecurity(err):
			// A writer restarting, a network that dropped: asked again in
			// a second, then less and less often. The writer's head is
			// announced once (watch), and a pull that failed on it would
			// otherwise wait a whole interval, serving an older head.
			wait = min(every, time.Second<<min(fails-1, 6))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-f.nudge:
		case <-t.C:
		}
		t.Stop()
	}
}

// isLocal says whether a failed pull failed on this machine's own files
// (a full disk, a quota, a read-only or failing file system, a damaged
// directory), not at the writer or on the way to it.
func isLocal(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	var oe *net.OpError
	var ue *url.Error
	if errors.As(err, &oe) || errors.As(err, &ue) { // on the way to the writer
		return false
	}
	if errors.As(err, &pe) || errors.As(err, &le) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) {
		return true
	}
	// git's own words when its writes fail
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "disk quota exceeded") || strings.Contains(msg, "read-only file system")
}

// isSecurity says whether a refused pull is a security error: the
// writer (or what stands for it) served a fork, a rollback, a broken
// rule or a checkpoint that does not check.
func isSecurity(err error) bool {
	var ce *CheckpointError
	var re *index.RuleError
	return errors.As(err, &ce) || errors.As(err, &re) || errors.Is(err, index.ErrFork) || errors.Is(err, ErrRollback)
}

// watch holds GET /api/v1/head on the writer, and nudges the follower
// each time it answers with a head other than the last it said: a push
// that lands on the writer reaches the replicas as soon as it is signed.
// It is only a wake-up: what moves main is a verified pull. A writer
// that cannot be reached is asked again after every.
func (f *Follower) watch(ctx context.Context, writer string, every time.Duration) {
	hc := &http.Client{} // held up to a minute by design: no stall timeout
	after := ""
	for ctx.Err() == nil {
		head, err := longPoll(ctx, hc, writer, after)
		if err != nil {
			t := time.NewTimer(min(every, 5*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if head != after {
			after = head
			f.Nudge()
		}
	}
}

// longPoll asks the writer for its head once it is not after (at most
// 55 s).
func longPoll(ctx context.Context, hc *http.Client, writer, after string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	defer cancel()
	u := strings.TrimSuffix(writer, "/") + "/api/v1/head?wait=55&after=" + url.QueryEscape(after)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", transport.RedactString(u), resp.Status)
	}
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 1024)).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// WriterBlobs fetches, on demand, the blobs a replica's verified index
// refers to from its writer, verified and then kept (until the two
// share one blob store). A digest the verified index does not name is
// not fetched: an upload the writer took but no verified record names
// yet is the writer's to serve.
type WriterBlobs struct {
	Repo    *index.Repo
	Remote  string
	Options Options

	mu   sync.Mutex
	head string
	refs map[string]int64
}

// Fetch implements server.Options.Fallback.
func (b *WriterBlobs) Fetch(ctx context.Context, hex string, size int64) error {
	rm, err := Get(b.Repo, b.Remote)
	if err != nil {
		return err
	}
	refs, err := b.referenced(ctx)
	if err != nil {
		return err
	}
	n, ok := refs[hex]
	if !ok {
		return fmt.Errorf("blob sha256:%s: no verified record of this replica refers to it: %w", hex, fs.ErrNotExist)
	}
	if n < 0 {
		n = size
	}
	if n < 0 {
		return fmt.Errorf("blob sha256:%s: no size known for it; ask with ?size=N: %w", hex, fs.ErrNotExist)
	}
	c := &blob.Chain{Local: b.Repo.Blobs, Mirrors: []blob.Store{&blob.HTTP{URL: rm.URL, Client: b.Options.client()}}}
	return c.Fetch(ctx, blob.Ref{SHA256: hex, Size: n})
}

// referenced returns the blobs main's verified head refers to, read
// again only when main moved.
func (b *WriterBlobs) referenced(ctx context.Context) (map[string]int64, error) {
	head, err := refAt(ctx, b.Repo, index.MainRef)
	if err != nil || head == "" {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == head {
		return b.refs, nil
	}
	refs, err := b.Repo.ReferencedBlobs(ctx, head)
	if err != nil {
		return nil, err
	}
	b.head, b.refs = head, refs
	return refs, nil
}
