package server

import (
	"bytes"
	"cairn.dev/cairn/internal/index"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

// Witness is a witness the server submits its checkpoints to (C2SP
// tlog-witness add-checkpoint): its submission URL and the verifier key
// of its cosignatures, which the server checks before serving them.
type Witness = witness.Endpoint

// ParseWitness parses a witness as `cairn serve --witness` takes it:
// URL=VKEY (witness.ParseEndpoint).
func ParseWitness(s string) (Witness, error) { return witness.ParseEndpoint(s) }

// witnessTimeout bounds one witness's answer: a witness that does not
// answer is logged, the checkpoint served without its cosignature, and
// the witness asked again in the background (checkpointer.retry).
const witnessTimeout = 10 * time.Second

// retryFirst and retryMax bound the waits between the tries of a witness
// that did not cosign the latest checkpoint (timed out, unreachable, or
// answered 5xx or 429): retryFirst doubling up to retryMax, or the wait
// its Retry-After asks for, capped at retryMax.
const (
	retryFirst = 2 * time.Second
	retryMax   = time.Minute
)

// logView is what a checkpoint signs: main's log and map at one verified
// head (the log may have grown since: its reads are bounded by Size).
type logView struct {
	Head      string
	Size      int64
	Root, Map tlog.Hash
	store     *translog.Store
	mapAt     translog.MapAt
	tiles     string // the prefix of its tiles in the tile cache: "" for main's log (lines.go)
}

// InconsistentError is a security error: the server was about to sign a
// checkpoint that is not consistent with the one it signed before (the
// log shrank, or its first Last.Size leaves changed: the index's history
// was rewritten behind the server's back). Signing it would show clients
// two histories; the server refuses (its checkpoint endpoints answer 503
// with this error), keeps Last as the last one signed, and its log reads
// stay at Last's tree.
type InconsistentError struct {
	Last, Next checkpoint.Checkpoint
	LastNote   []byte // the signed checkpoint, as evidence
	Problem    string
}

func (e *InconsistentError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: refusing to sign a checkpoint of size %d at head %s: %s; the last checkpoint signed (size %d, root %x, head %s) stays the last one signed:\n%s",
		e.Next.Size, e.Next.Head, e.Problem, e.Last.Size, e.Last.Root[:], e.Last.Head, e.LastNote)
}

// checkpointer signs the checkpoints the server serves: one when main's
// verified head moves and at least every interval, each consistent with
// the one before (never two trees of one origin that no consistency
// proof joins), cosigned by the witnesses that answer, kept durably.
type checkpointer struct {
	key      keys.Signer
	origin   string
	interval time.Duration
	hc       *http.Client
	log      *slog.Logger
	path     string   // the latest note, kept durably across restarts
	copies   []string // where else it is written (the log's tile tree)
	sizes    string   // each witness's size cosigned last, kept durably beside path (witnessSizes)
	trees    string   // the trees light reads are answered at, kept durably beside path (keptTreesFile)

	timeout              time.Duration      // bounds one witness's answer (witnessTimeout)
	retryFirst, retryMax time.Duration      // the waits between a witness's later tries (retryFirst, retryMax)
	stop                 context.Context    // done once closed: the retries end
	closeStop            context.CancelFunc // ends stop
	round                context.CancelFunc // ends the retries of the latest checkpoint signed (under signing)
	retrying             sync.WaitGroup     // the retries running

	signing sync.Mutex // held by the one signing a checkpoint, through its witnesses' answers

	mu          sync.Mutex             // guards what follows for readers; written under signing too
	last        *checkpoint.Checkpoint // the latest signed
	note        []byte                 // its note, with the cosignatures it got
	lastByOther bool                   // last, loaded at start, was signed by another key (rotated since): not served
	// view is the log and map last found to be last's, in this process
	// (nil: none yet, or refused since): written under mu, read without
	// it by the log's reads (served), every tile request.
	view      atomic.Pointer[logView]
	recent    []logView  // the views of the trees kept found so far, oldest first (light reads at a stated size)
	kept      []keptTree // the trees of the last keptTrees checkpoints signed, in this process or the one before, oldest first
	witnesses []*witnessState
	closed    bool // no retry starts once set (close)

	building sync.Mutex // held by the one building the kept trees a restart loaded (buildKept)

	resumed atomic.Bool // the witnesses that had not cosigned the checkpoint loaded at start were asked again (resume), or one was signed since

	// mayCheckpoint, if set, says whether key may sign a checkpoint of
	// head at a time (MayCheckpoint): a checkpoint every client would
	// refuse is not signed.
	mayCheckpoint func(ctx context.Context, head string, at time.Time) error
}

// MayCheckpoint says whether key may sign a checkpoint of r's history at
// head, at a time, as a client judges it: granted the checkpoint scope
// by that history, the grant live then, the key not revoked. Its error
// says what to do.
func MayCheckpoint(ctx context.Context, r *index.Repo, head string, key keys.Signer, at time.Time) error {
	id := keys.ID(key.Public())
	granted, err := r.KeysGrantedEver(ctx, head, "checkpoint")
	if err != nil {
		return err
	}
	for _, k := range granted {
		if k.ID != id {
			continue
		}
		if err := k.MayCheckpoint(at); err != nil {
			return fmt.Errorf("the checkpoint key %s may not sign a checkpoint now, and clients would refuse it: %w: grant it the checkpoint scope again (cairn key grant --scope checkpoint), or serve with a key that holds it", id, err)
		}
		return nil
	}
	return fmt.Errorf("the checkpoint key %s is not granted the checkpoint scope in the index (head %.12s), and clients would refuse what it signs: grant it (cairn key grant KEY.pub --holder NAME --scope checkpoint), or serve with a key that holds it", id, head)
}

type witnessState struct {
	Witness
	policy witness.Policy // this witness alone, quorum 1
	size   int64          // the size it cosigned last, as far as the server knows
}

// witnessSizesFile is the file, beside the latest checkpoint, that keeps
// the size each witness cosigned last (witnessSizes).
const witnessSizesFile = "witnesses.json"

// witnessSizes is what witnessSizesFile holds: for each witness, by its
// vkey (its key is what it is; its URL may move), the size of the
// latest checkpoint it cosigned. A restarted server submits from it
// rather than from 0, which every witness holding a tree would refuse
// with a 409 (one round trip more per witness). It is a hint: a wrong
// size costs that 409, never a cosignature.
type witnessSizes map[string]int64

// newCheckpointer loads the latest checkpoint signed (kept at path), so
// that a restart never signs one inconsistent with it, and the size each
// witness cosigned last (kept beside it, and shown by the cosignatures
// the latest checkpoint carries).
func newCheckpointer(key keys.Signer, origin string, interval time.Duration, ws []Witness, hc *http.Client, log *slog.Logger, path string, copies ...string) (*checkpointer, error) {
	c := &checkpointer{key: key, origin: origin, interval: interval, hc: hc, log: log, path: path, copies: copies,
		sizes:   filepath.Join(filepath.Dir(path), witnessSizesFile),
		trees:   filepath.Join(filepath.Dir(path), keptTreesFile),
		timeout: witnessTimeout, retryFirst: retryFirst, retryMax: retryMax}
	c.stop, c.closeStop = context.WithCancel(context.Background())
	for _, w := range ws {
		p, err := witness.NewPolicy([]string{w.VKey}, 1)
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", w.URL, err)
		}
		c.witnesses = append(c.witnesses, &witnessState{Witness: w, policy: p})
	}
	note, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	last, err := checkpoint.Claimed(note)
	if err != nil {
		return nil, fmt.Errorf("the last checkpoint signed, %s: %w", path, err)
	}
	if last.Origin != origin {
		return nil, fmt.Errorf("the last checkpoint signed, %s, is of %s, not of this index (%s)", path, last.Origin, origin)
	}
	c.last, c.note = &last, note
	if _, err := checkpoint.Open(note, origin, []ed25519.PublicKey{key.Public()}); err != nil {
		// Signed by the key served with before (rotated since): the
		// tree must still extend it, but a reader gets one this key
		// signs, which is the one its key header names.
		c.lastByOther = true
	}
	c.loadWitnessSizes()
	c.loadKeptTrees()
	return c, nil
}

// loadWitnessSizes sets each witness's size cosigned last from the sizes
// kept, and from the latest checkpoint's cosignatures: a witness whose
// cosignature it carries holds its tree. What cannot be read is logged
// and left at 0: the witness's 409 then tells the size.
func (c *checkpointer) loadWitnessSizes() {
	kept := witnessSizes{}
	if b, err := os.ReadFile(c.sizes); err == nil {
		if err := json.Unmarshal(b, &kept); err != nil {
			c.log.Warn("the witnesses' sizes kept are unreadable: submitting from size 0 (each witness answers 409 with its own once)", "path", c.sizes, "err", err)
			kept = witnessSizes{}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("the witnesses' sizes kept are unreadable: submitting from size 0 (each witness answers 409 with its own once)", "path", c.sizes, "err", err)
	}
	for _, w := range c.witnesses {
		if n := kept[w.VKey]; n > 0 && n <= c.last.Size {
			w.size = n
		}
		if n, err := w.policy.Check(c.note, c.origin); err == nil && n == 1 {
			w.size = c.last.Size
		}
	}
}

// keepWitnessSizes writes the size each witness cosigned last, durably
// (a temporary file renamed), if one changed since the last write.
func (c *checkpointer) keepWitnessSizes(before witnessSizes) {
	now := c.witnessSizes()
	if maps.Equal(now, before) {
		return
	}
	b, err := json.MarshalIndent(now, "", "  ")
	if err == nil {
		err = safefile.Write(c.sizes, append(b, '\n'), safefile.Options{Perm: 0o644})
	}
	if err != nil {
		c.log.Warn("keeping the witnesses' sizes (after a restart, each witness answers 409 with its own once)", "path", c.sizes, "err", err)
	}
}

// witnessSizes returns the size each witness cosigned last (a witness
// given at several URLs holds the largest one it cosigned at any); the
// caller holds c.signing.
func (c *checkpointer) witnessSizes() witnessSizes {
	out := witnessSizes{}
	for _, w := range c.witnesses {
		out[w.VKey] = max(out[w.VKey], w.size)
	}
	return out
}

// latest returns the latest checkpoint signed and its note (nil if none).
func (c *checkpointer) latest() (*checkpoint.Checkpoint, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.note
}

// served returns the log and map of the latest checkpoint signed, as
// found in this process, and whether there is one.
func (c *checkpointer) served() (logView, bool) {
	v := c.view.Load()
	if v == nil {
		return logView{}, false
	}
	return *v, true
}

// waitSigner returns when no checkpoint is being signed (a round takes
// at most witnessTimeout with its witnesses).
func (c *checkpointer) waitSigner() {
	c.signing.Lock()
	c.signing.Unlock()
}

// at returns a checkpoint of v (see atView).
func (c *checkpointer) at(ctx context.Context, v logView, now time.Time) (*checkpoint.Checkpoint, []byte, error) {
	l, note, _, err := c.atView(ctx, v, now)
	return l, note, err
}

// atView returns a checkpoint of v and the log and map it is of: the
// latest one if it is of v's head and younger than the interval, else a
// new one, signed after checking that it is consistent with the latest,
// written durably before any witness sees it, cosigned by the witnesses
// that answer, and written again with their cosignatures. While another
// caller is signing one (its witnesses may take up to witnessTimeout),
// it returns the latest one and its view rather than wait: readers never
// stall on a witness. A server without witnesses waits for its signer,
// which only writes. Signers are serialised by c.signing; c.mu guards
// only the swap of the result, which readers take.
func (c *checkpointer) atView(ctx context.Context, v logView, now time.Time) (*checkpoint.Checkpoint, []byte, logView, error) {
	if l, note, ok := c.fresh(v, now); ok {
		c.resume(l, v)
		return l, note, v, nil
	}
	if !c.signing.TryLock() {
		if testHookSignerBusy != nil {
			testHookSignerBusy()
		}
		c.mu.Lock()
		l, note, view := c.last, c.note, c.view.Load()
		c.mu.Unlock()
		if l != nil && view != nil && len(c.witnesses) > 0 {
			return l, note, *view, nil
		}
		// Nothing to answer with yet, or no witness to wait for: the
		// signer is done in the time of a write, and a reader that found
		// main moved (a client that just pushed) gets the checkpoint of
		// the head it verified, not the one before it.
		c.signing.Lock()
	}
	defer c.signing.Unlock()
	if l, note, ok := c.fresh(v, now); ok { // signed by the caller just before
		c.resume(l, v)
		return l, note, v, nil
	}
	// c.last and c.note change only under c.signing, held: read them as is.
	next := checkpoint.Checkpoint{Origin: c.origin, Size: v.Size, Root: v.Root, Map: v.Map, Head: v.Head, Time: now.UTC().Truncate(time.Second)}
	if c.last != nil && next.Time.Before(c.last.Time) {
		next.Time = c.last.Time // the clock went back: time never does in the checkpoints
	}
	if err := c.consistent(next, v); err != nil {
		c.mu.Lock()
		c.view.Store(nil)
		c.recent, c.kept = nil, nil
		c.mu.Unlock()
		c.log.Error("checkpoint refused", "err", err)
		return nil, nil, logView{}, err
	}
	if c.mayCheckpoint != nil {
		if err := c.mayCheckpoint(ctx, v.Head, next.Time); err != nil {
			c.log.Error("checkpoint not signed", "err", err)
			return nil, nil, logView{}, err
		}
	}
	signed, err := checkpoint.Sign(next, c.key)
	if err != nil {
		return nil, nil, logView{}, fmt.Errorf("signing the checkpoint of %s: %w", next.Head, err)
	}
	// Durably the latest signed before a witness holds it: a crash from
	// here on restarts from this tree, so a history rewritten since is
	// refused rather than signed next to what witnesses cosigned.
	if err := safefile.Write(c.path, signed, safefile.Options{Perm: 0o644}); err != nil {
		return nil, nil, logView{}, fmt.Errorf("keeping the checkpoint of %s at %s before submitting it to witnesses: %w", next.Head, c.path, err)
	}
	if c.round != nil {
		c.round() // the witnesses not yet heard on the last one are asked about this one
		c.round = nil
	}
	c.resumed.Store(true) // this round asks every witness
	before := c.witnessSizes()
	note, pending, err := c.cosign(ctx, signed, next, v)
	c.keepWitnessSizes(before)
	if err != nil {
		c.log.Warn("serving the checkpoint without cosignatures", "size", next.Size, "head", next.Head, "err", err)
		note = signed
	}
	if !bytes.Equal(note, signed) {
		if err := safefile.Write(c.path, note, safefile.Options{Perm: 0o644}); err != nil {
			c.log.Warn("keeping the checkpoint's cosignatures (the signed checkpoint is kept)", "path", c.path, "err", err)
		}
	}
	for _, p := range c.copies {
		if err := safefile.Write(p, note, safefile.Options{Perm: 0o644, NoSync: true}); err != nil {
			c.log.Warn("writing the checkpoint into the log's tiles", "path", p, "err", err)
		}
	}
	last := &next
	c.mu.Lock()
	c.last, c.note, c.lastByOther = last, note, false
	c.view.Store(&v)
	c.recent = append(slices.DeleteFunc(c.recent, func(r logView) bool { return r.Size >= v.Size }), v)
	kept := c.keepTree(v)
	c.startRetries(pending, last, signed, v)
	c.mu.Unlock()
	c.writeKeptTrees(kept)
	return &next, note, v, nil
}

// testHookSignerBusy, if set, runs in atView when a reader finds another
// caller signing: where a test releases that signer.
var testHookSignerBusy func()

// startRetries asks the pending witnesses again, in the background, for
// their cosignatures of last (signed, of the tree v), as one round that
// the next checkpoint signed ends (c.round); c.signing and c.mu are held.
func (c *checkpointer) startRetries(pending []pending, last *checkpoint.Checkpoint, signed []byte, v logView) {
	if len(pending) == 0 || c.closed {
		return
	}
	rctx, cancel := context.WithCancel(c.stop)
	c.round = cancel
	for _, p := range pending {
		c.retrying.Add(1)
		go c.retry(rctx, p, last, signed, v)
	}
}

// resume asks again, in the background, the witnesses that had not
// cosigned last, the checkpoint a restarted server loaded, once its tree
// v is found (the first time the checkpoint is served as fresh): they
// are retried as if this process had signed it (retry: Retry-After,
// backoff up to retryMax). It returns at once; a checkpoint signed in
// this process asks every witness itself, and nothing is resumed then.
func (c *checkpointer) resume(last *checkpoint.Checkpoint, v logView) {
	if c.resumed.Load() || !c.resumed.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.retrying.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.retrying.Done()
		c.signing.Lock() // briefly, unless a signer is asking its witnesses
		defer c.signing.Unlock()
		// c.last and c.note change only under c.signing, held.
		if c.last != last {
			return // signed since: that round asked every witness
		}
		var pend []pending
		for _, w := range c.witnesses {
			if w.size < last.Size {
				pend = append(pend, pending{w: w, last: w.size})
			}
		}
		if len(pend) == 0 {
			return
		}
		signed, err := c.ownSignature(c.note)
		if err != nil {
			c.log.Warn("not asking the witnesses that had not cosigned the checkpoint loaded at start: its signature is not this server's key's", "size", last.Size, "head", last.Head, "err", err)
			return
		}
		c.log.Info("asking again the witnesses that had not cosigned the checkpoint loaded at start", "size", last.Size, "head", last.Head, "witnesses", len(pend))
		c.mu.Lock()
		c.startRetries(pend, last, signed, v)
		c.mu.Unlock()
	}()
}

// ownSignature returns the checkpoint note as this server's key signed
// it, without the cosignatures it gathered: what a witness is submitted.
func (c *checkpointer) ownSignature(cosigned []byte) ([]byte, error) {
	v, err := note.NewVerifier(checkpoint.VKey(c.origin, c.key.Public()))
	if err != nil {
		return nil, err
	}
	n, err := note.Open(cosigned, note.VerifierList(v))
	if err != nil {
		return nil, err
	}
	return []byte(n.Text + "\n— " + n.Sigs[0].Name + " " + n.Sigs[0].Base64 + "\n"), nil
}

// close ends the retries and waits for them (a retry applying its
// cosignature finishes it first).
func (c *checkpointer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.closeStop()
	c.retrying.Wait()
}

// pending is a witness that did not cosign a checkpoint but may later:
// it is asked again after wait (0: the backoff's next wait).
type pending struct {
	w    *witnessState
	last int64 // the size it cosigned last, as known when it failed
	wait time.Duration
}

// retry asks a witness again, in the background, for its cosignature of
// last (signed, of the tree v), until it cosigns it, refuses it, or ctx
// ends (a newer checkpoint was signed, or the server closes): after the
// wait its Retry-After asked for, else retryFirst doubling up to
// retryMax. A cosignature is added to the served note (addCosignature).
func (c *checkpointer) retry(ctx context.Context, p pending, last *checkpoint.Checkpoint, signed []byte, v logView) {
	defer c.retrying.Done()
	backoff, wait := c.retryFirst, p.wait
	for try := 2; ; try++ {
		if wait <= 0 {
			wait, backoff = backoff, min(2*backoff, c.retryMax)
		}
		t := time.NewTimer(min(wait, c.retryMax))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cos, err := c.ask(ctx, p.w, p.last, signed, *last, v)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			c.addCosignature(ctx, p.w, last, cos, try)
			return
		}
		var again bool
		if again, wait = retryable(err); !again {
			c.log.Warn("a witness refused the checkpoint: not asking it again", "witness", p.w.URL, "size", last.Size, "head", last.Head, "try", try, "err", err)
			return
		}
		c.log.Info("a witness did not cosign the checkpoint yet: asking again", "witness", p.w.URL, "size", last.Size, "head", last.Head, "try", try, "err", err)
	}
}

// retryable reports whether a witness that did not cosign may on a later
// try: it timed out or could not be reached, or answered 5xx or 429 (a
// 503 is an auditing witness's "cannot tell yet"); and the wait its
// Retry-After asked for (0 for none). A refusal (409 from a witness at
// another size or tree, 4xx, an answer that is not its cosignature) is
// not asked again: the next checkpoint asks it.
func retryable(err error) (bool, time.Duration) {
	var re *witness.ResponseError
	if errors.As(err, &re) {
		return re.Status >= 500 || re.Status == http.StatusTooManyRequests, re.RetryAfter
	}
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded), 0
}

// addCosignature adds a witness's cosignature, got on a later try, to
// last's note, if last is still the latest checkpoint signed: written
// durably (and into the log's tiles) first, then served. The checkpoint
// is not signed again.
func (c *checkpointer) addCosignature(ctx context.Context, w *witnessState, last *checkpoint.Checkpoint, cos []byte, try int) {
	c.signing.Lock()
	defer c.signing.Unlock()
	// c.last and c.note change only under c.signing, held.
	if ctx.Err() != nil || c.last != last {
		return // a newer checkpoint replaced it: its own round asked this witness
	}
	note, err := witness.AppendCosignatures(c.note, cos)
	if err != nil {
		c.log.Warn("a witness's cosignature on a later try could not be added", "witness", w.URL, "size", last.Size, "err", err)
		return
	}
	before := c.witnessSizes()
	w.size = last.Size
	c.keepWitnessSizes(before)
	if err := safefile.Write(c.path, note, safefile.Options{Perm: 0o644}); err != nil {
		c.log.Warn("keeping the checkpoint's cosignatures (the signed checkpoint is kept)", "path", c.path, "err", err)
	}
	for _, p := range c.copies {
		if err := safefile.Write(p, note, safefile.Options{Perm: 0o644, NoSync: true}); err != nil {
			c.log.Warn("writing the checkpoint into the log's tiles", "path", p, "err", err)
		}
	}
	c.mu.Lock()
	c.note = note
	c.mu.Unlock()
	c.log.Info("a witness cosigned the checkpoint on a later try", "witness", w.URL, "size", last.Size, "head", last.Head, "try", try)
}

// keptTrees is how many of the latest checkpoints' trees the light reads
// answer at (GET /api/v1/log/subject?size=N): a client's view keeps
// reading at its tree while the server signs up to keptTrees-1 newer
// ones, and across the server's restarts (keptTreesFile). A map is a
// persistent snapshot (translog.MapAt): keeping one costs only what later
// commits changed.
const keptTrees = 8

// viewAt returns the log and map of the tree of size leaves, if it is
// one of the last keptTrees checkpoints signed. A tree a restart loaded
// is built from the log the first time it is asked for (buildKept).
func (c *checkpointer) viewAt(size int64) (logView, bool) {
	if v, ok := c.found(size); ok {
		return v, true
	}
	c.mu.Lock()
	known := slices.ContainsFunc(c.kept, func(t keptTree) bool { return t.Size == size })
	var st *translog.Store
	if v := c.view.Load(); v != nil {
		st = v.store
	}
	c.mu.Unlock()
	if !known || st == nil {
		return logView{}, false
	}
	c.building.Lock()
	c.buildKept(st)
	c.building.Unlock()
	return c.found(size)
}

// found returns the view of the tree of size leaves, if it is in memory.
func (c *checkpointer) found(size int64) (logView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.view.Load(); v != nil && v.Size == size {
		return *v, true
	}
	for _, v := range c.recent {
		if v.Size == size {
			return v, true
		}
	}
	return logView{}, false
}

// keptSizes returns the sizes of the trees viewAt answers, oldest first.
func (c *checkpointer) keptSizes() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int64
	for _, t := range c.kept {
		out = append(out, t.Size)
	}
	if v := c.view.Load(); v != nil && !slices.Contains(out, v.Size) {
		out = append(out, v.Size)
		slices.Sort(out)
	}
	return out
}

// fresh returns the latest checkpoint and its note if it is of v's head
// and younger than the interval (and then serves v as its view).
func (c *checkpointer) fresh(v logView, now time.Time) (*checkpoint.Checkpoint, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.last
	if l == nil || c.lastByOther || l.Head != v.Head || l.Size != v.Size || l.Root != v.Root || l.Map != v.Map || now.Sub(l.Time) >= c.interval || l.Time.After(now) {
		return nil, nil, false
	}
	c.view.Store(&v)
	return l, c.note, true
}

// consistent checks that next extends the latest checkpoint signed: its
// tree no smaller, and the latest one's tree a prefix of it, as a
// witness checks it (tlog.CheckTree of the log's own consistency proof).
func (c *checkpointer) consistent(next checkpoint.Checkpoint, v logView) error {
	last := c.last
	if last == nil {
		return nil
	}
	refuse := func(format string, args ...any) error {
		return &InconsistentError{Last: *last, Next: next, LastNote: c.note, Problem: fmt.Sprintf(format, args...)}
	}
	if next.Size < last.Size {
		return refuse("the log shrank from %d to %d leaves", last.Size, next.Size)
	}
	old, err := v.store.TreeHash(last.Size)
	if err != nil {
		return refuse("the log has no tree of size %d: %v", last.Size, err)
	}
	if old != last.Root {
		return refuse("the log's tree of size %d has root %x, not the signed %x: its leaves changed", last.Size, old[:], last.Root[:])
	}
	proof, err := v.store.ProveTree(last.Size, next.Size)
	if err != nil {
		return refuse("no consistency proof from size %d: %v", last.Size, err)
	}
	if err := tlog.CheckTree(proof, next.Size, next.Root, last.Size, last.Root); err != nil {
		return refuse("the consistency proof from size %d does not prove: %v", last.Size, err)
	}
	return nil
}

// cosign submits note to every witness at once and returns it with the
// cosignatures that verify, and the witnesses to ask again (retryable).
// A witness that refuses, fails or answers with a cosignature that does
// not verify is logged, not fatal.
func (c *checkpointer) cosign(ctx context.Context, note []byte, next checkpoint.Checkpoint, v logView) ([]byte, []pending, error) {
	got := make([][]byte, len(c.witnesses))
	again := make([]*pending, len(c.witnesses))
	var wg sync.WaitGroup
	for i, w := range c.witnesses {
		wg.Go(func() {
			cos, err := c.ask(ctx, w, w.size, note, next, v)
			if err != nil {
				retry, wait := retryable(err)
				c.log.Warn("a witness did not cosign the checkpoint", "witness", w.URL, "size", next.Size, "head", next.Head, "asking again", retry, "err", err)
				if retry {
					again[i] = &pending{w: w, last: w.size, wait: wait}
				}
				return
			}
			got[i], w.size = cos, next.Size
		})
	}
	wg.Wait()
	var pend []pending
	for i, cos := range got {
		if again[i] != nil {
			pend = append(pend, *again[i])
		}
		if cos == nil {
			continue
		}
		var err error
		if note, err = witness.AppendCosignatures(note, cos); err != nil {
			return nil, nil, err
		}
	}
	return note, pend, nil
}

// ask submits note (of next, the tree v) to one witness, with a proof
// from last, the size it cosigned last, and returns its cosignature line
// (own), within c.timeout.
func (c *checkpointer) ask(ctx context.Context, w *witnessState, last int64, note []byte, next checkpoint.Checkpoint, v logView) ([]byte, error) {
	wctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	prove := func(old int64) (tlog.TreeProof, error) { return v.store.ProveTree(old, next.Size) }
	cos, err := witness.Cosign(wctx, c.hc, w.URL, last, note, prove)
	if err != nil {
		return nil, err
	}
	return c.own(w, note, cos, next)
}

// own returns the first line of a witness's answer that is a valid
// cosignature of note by that witness's own key (its vkey's name and key
// hash). Every other line is dropped and logged: a witness speaks only
// for itself, and a line it added under another witness's name and key
// hash that does not verify would make every client trusting that other
// witness refuse the note (note.Open: invalid signature).
func (c *checkpointer) own(w *witnessState, note, cos []byte, next checkpoint.Checkpoint) ([]byte, error) {
	kept, dropped := witness.OwnLine(w.policy, c.origin, note, cos)
	for _, line := range dropped {
		c.log.Warn("dropped a line of a witness's answer: not a valid cosignature by that witness's own key", "witness", w.URL, "vkey", w.VKey, "size", next.Size, "line", line)
	}
	if kept == nil {
		return nil, fmt.Errorf("witness %s: its answer holds no valid cosignature by its key %s: %q", w.URL, w.VKey, cos)
	}
	return kept, nil
}

// CheckpointKeyHeader names, in the checkpoint's answer, the key that
// signed it ("SHA256:…"): a hint for light clients, which verify the key's
// grants themselves (docs/transparency.md, "Serving").
const CheckpointKeyHeader = "Cairn-Checkpoint-Key"

// checkpoint serves GET /api/v1/checkpoint and GET /log/checkpoint (the
// same bytes): the latest checkpoint of main's verified head, signed by
// the checkpoint key and cosigned by the witnesses that answered, or,
// without a key, the answer checkpoint.NoneHeader describes.
func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	if s.opts.Replica != nil {
		s.replicaCheckpoint(w, r)
		return
	}
	if s.opts.CheckpointKey == nil {
		w.Header().Set(checkpoint.NoneHeader, checkpoint.None)
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusNotFound, "this server signs no checkpoints: it was started without --checkpoint-key, so clients cannot tell it from a frozen mirror; pull from it only with a remote added with --insecure-no-checkpoint, or ask its operator to serve with --checkpoint-key")
		return
	}
	_, note, _, err := s.signed(r.Context())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		httpError(w, http.StatusServiceUnavailable, "index: %v", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(CheckpointKeyHeader, keys.ID(s.opts.CheckpointKey.Public()))
	if s.gate != nil {
		w.Header().Set(PolicyHeader, s.gate.label())
	}
	w.Write(note)
}
