// Package light is cairn's light client: it reads a cairn server's index
// with proofs and without a git clone (no git binary needed), trusting
// the server for nothing (docs/transparency.md).
//
// A Client fetches the server's checkpoint (C2SP tlog-checkpoint) and
// checks it as a full replica would: its origin names the introduction
// the client pins, the key that signed it is granted the checkpoint scope
// by a root that chains to that introduction (the root's and the key's
// files, read with map proofs and judged by the index's own rules), it is
// fresh, cosigned by a quorum of the witnesses the client trusts, and
// consistent (a consistency proof computed from the server's tiles) with
// the checkpoint the client stored last; a rollback and a split view are
// refused with both checkpoints as evidence. Its last leaf must be the map
// leaf of its cairn-map and cairn-head (proved from the tiles), so that
// the map it reads through is the one the witnesses' tree holds.
//
// A View then reads subjects of the log's map (a package, a key, a label,
// …): every file with its entry, the map proof that they are all of them,
// judged by index.ReplayProved with the subjects they need, and fed to an
// index.Catalog that resolution, show, why and policies read as they read
// a full replica's.
package light

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/torchwood"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/witness"
)

// KeyHeader is the response header with which a server names the key
// that signed its checkpoint (a key id, keys.ID): a hint that spares the
// client from guessing among the keys granted the checkpoint scope. The
// client never trusts it: it reads the key's grants with proofs and
// verifies the signature under the key they grant.
const KeyHeader = "Cairn-Checkpoint-Key"

// Client reads one repository (an index served by cairn serve, or any
// host serving its log's files) as a light client. Its fields are read,
// never changed, by its methods: set them before the first call.
type Client struct {
	// BaseURL is the server's URL (https://cairn.example.org): the log is
	// under BaseURL/log/, the light reads under BaseURL/api/v1/log/.
	BaseURL string
	// Introduction is the id of the repository's first root record, which
	// the client pins: the checkpoint's origin must name it, and the root
	// history must start at it.
	Introduction string
	// Witnesses are the witnesses the client trusts for this repository
	// and how many must have cosigned a checkpoint. With none (quorum 0)
	// a split view cannot be detected: View.Unwitnessed says so.
	Witnesses witness.Policy
	// StateDir keeps the last checkpoint verified of each repository (by
	// introduction), from which the next one must be consistent.
	StateDir string
	// HTTP is the client for every request (nil: transport.Client()).
	HTTP *http.Client
	// Now is the clock that judges freshness (nil: time.Now).
	Now func() time.Time
	// MaxAge is how old a checkpoint may be (0: checkpoint.DefaultMaxAge).
	MaxAge time.Duration
	// TilesURL, if set, is a static copy of the server's log (what cairn
	// log publish writes, served by a CDN or an object store): its tiles
	// are read there first, and from BaseURL/log/ only when the copy
	// lacks one. Each tile is checked against the signed tree wherever
	// it comes from; the checkpoint and the light reads are the server's.
	// A tile of the copy that is not the server's tree's is refused as
	// the copy's fault (Warn names it) and read from the server.
	TilesURL string
	// Warn, if set, hears what the client found wrong without failing:
	// a static copy's tile refused. Default: slog.Warn.
	Warn func(msg string)

	// keepGate, if set, runs at the start of each keep verifiedNow
	// starts: a test holds the keeps there.
	keepGate func()
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return transport.Client()
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) base() string { return strings.TrimSuffix(c.BaseURL, "/") }

// ErrMoved is the parent of the errors of a read answered for another
// checkpoint than the view's: the server signed a new one meanwhile.
// Open a new view and read again.
var ErrMoved = errors.New("the server's checkpoint moved during the read")

// ErrNotKept is the parent of the errors of a read offline of a subject
// that was not read online at the checkpoint verified last. It is not
// fs.ErrNotExist: that the index holds no such subject is not known.
var ErrNotKept = errors.New("was not read online at the checkpoint this machine verified last")

// ProofError is a security error: what a server answered does not prove
// what it claims against its signed checkpoint — a file left out of a
// subject or changed, a record not in the log, a tile with other hashes,
// a root history that does not start at the pinned introduction, a key
// not granted to sign checkpoints. Checkpoint is the signed checkpoint it
// was checked against, the evidence.
type ProofError struct {
	URL        string
	What       string // what was read: `subject "package acme/fastjson"`, `record 1234…`, `the checkpoint`
	Checkpoint []byte
	Err        error
}

func (e *ProofError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: %s from %s refused: %v\nthe signed checkpoint it was checked against:\n%s", e.What, e.URL, e.Err, e.Checkpoint)
}

func (e *ProofError) Unwrap() error { return e.Err }

// InconsistentError is a security error: the checkpoint a server serves
// cannot follow the one this client verified last for the same log — the
// tree shrank (a rollback: a rebuilt history hiding records), has another
// root at the same size (a split view: two histories shown to two
// clients), or a consistency proof from the tiles does not prove that it
// extends it. Both checkpoints are the evidence. (Another map or head
// under the same tree is refused by the map leaf check: *MapLeafError.)
type InconsistentError struct {
	URL            string
	Problem        string // "rollback", "split view" or "inconsistent"
	Stored, Served []byte // the signed checkpoints
	Err            error  // what the consistency check said, for "inconsistent"
}

func (e *InconsistentError) Error() string {
	s, _ := checkpoint.Claimed(e.Stored)
	n, _ := checkpoint.Claimed(e.Served)
	msg := fmt.Sprintf("SECURITY ERROR: %s: the server at %s serves the log of size %d (head %.12s) after this client verified it at size %d (head %.12s)", e.Problem, e.URL, n.Size, n.Head, s.Size, s.Head)
	switch e.Problem {
	case "rollback":
		msg += ": the tree shrank, which an append-only log never does (a rebuilt history hiding records)"
	case "split view":
		msg += " with another root hash at the same size: the server shows different histories to different clients"
	default:
		msg += fmt.Sprintf(": the consistency proof from the tiles does not prove that it extends the one verified before: %v", e.Err)
	}
	return fmt.Sprintf("%s\nverified before:\n%s\nserved now:\n%s", msg, e.Stored, e.Served)
}

func (e *InconsistentError) Unwrap() error { return e.Err }

// View is a repository as one verified checkpoint shows it. It reads
// subjects on demand, each once, and is safe for concurrent use.
type View struct {
	client  *Client
	ctx     context.Context      // for the loads the catalog asks for
	tiles   *tileCache           // over keptTiles: the server's, or offline those kept
	server  torchwood.TileReader // the server's tiles; nil offline
	offline bool                 // reads the subjects kept in StateDir, not the server

	// Checkpoint is the verified checkpoint; Note its signed note, with
	// the witnesses' cosignatures.
	Checkpoint *checkpoint.Signed
	Note       []byte
	// Cosigned is the number of trusted witnesses that cosigned it;
	// Unwitnessed says the client trusts none, so that a split view
	// cannot be detected: tell the user (witness.ErrUnwitnessed).
	Cosigned    int
	Unwitnessed bool
	// MapLeaf is the checkpoint's last leaf, proved: the map leaf of its
	// cairn-map and cairn-head.
	MapLeaf *MapLeaf

	// subjects are the subjects read or being read (a *subjectLoad by
	// subject): a sync.Map, which its readers, many at once on every
	// core, look up without waiting for one another.
	subjects sync.Map

	noBatch   atomic.Bool // the server reads no batches (errNoBatch)
	early     *earlyReads // the first batches of OpenPrefetch, asked with the checkpoint
	batchOnce sync.Once   // batchKept read
	batchKept map[string][]keptDoc

	atMu sync.Mutex
	at   *View // after the server stopped answering at this view's tree (410 Gone), the newer view reads are answered at

	keepMu    sync.Mutex
	verified  bool                 // Open verified the checkpoint: documents checked against it may be kept
	pending   []func()             // the keeps of documents read before, run once it is
	held      map[string]*heldDocs // the subject documents read before, by tree (treeDir): kept in one file each once it is
	keptTiles *keptTiles           // the view's tiles kept, held until it is (nil offline)
	keeping   sync.WaitGroup       // the keeps verifiedNow started: Kept waits for them
	dropTrees []string             // the directories of documents kept at older trees, removed by Kept

	policy   string // the server's policy, named on its checkpoint (PolicyHeader)
	refMu    sync.Mutex
	refusals map[string]*refusalsLoad // by package name

	catOnce sync.Once
	cat     *index.Catalog
	catErr  error
	files   *index.MemFiles // the catalog's files: withFiles
}

// subjectLoad is one subject read and judged, which concurrent readers
// wait for.
type subjectLoad struct {
	done  chan struct{}
	files []index.MemFile // the subject's own files
	needs []string        // the subjects its judgment read (closure)
	err   error
}

// Open fetches the server's checkpoint and verifies it (see the package
// documentation), stores it as the last one verified, and returns the
// view it shows. ctx bounds the reads that the view's catalog makes
// later, too.
func (c *Client) Open(ctx context.Context) (*View, error) {
	v, err := c.openBehind(ctx, nil)
	if err == nil {
		v.Kept()
	}
	return v, err
}

// OpenPrefetch is Open, and Prefetch of subjects (the packages a project
// names, say) started as soon as the checkpoint's size is known, while
// Open verifies it, so that their reads and judgments overlap its round
// trips. It returns once the prefetch ended: nothing it started runs
// after it returns (a refusal cancels the reads first). Nothing read is
// kept before the checkpoint is verified, nor at all if it is refused
// (keepLater).
//
// Unlike Open, it returns before what its reads proved is kept in
// StateDir (the checkpoint itself is stored first): the view's Kept
// waits for that, and must be called before the process exits.
func (c *Client) OpenPrefetch(ctx context.Context, subjects ...string) (*View, error) {
	return c.openBehind(ctx, subjects)
}

// lagWaits are the waits before a client opens the checkpoint again when
// the one served is older than the one it verified last: read replicas
// behind a load balancer (cairn serve --follow) answer one client from
// several copies, each a moment behind its writer after it moves. Only
// a tree that stays older through every wait is refused as a rollback.
var lagWaits = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}

// openBehind is open, asked again (lagWaits) while the server's tree is
// older than the one verified last.
func (c *Client) openBehind(ctx context.Context, prefetch []string) (*View, error) {
	for try := 0; ; try++ {
		v, err := c.open(ctx, prefetch)
		var ie *InconsistentError
		if try == len(lagWaits) || !errors.As(err, &ie) || ie.Problem != "rollback" {
			return v, err
		}
		t := time.NewTimer(lagWaits[try])
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

func (c *Client) open(ctx context.Context, prefetch []string) (_ *View, err error) {
	if c.Introduction == "" || c.BaseURL == "" {
		return nil, fmt.Errorf("light client: a BaseURL and the Introduction it serves are both needed")
	}
	c.waitKept()
	// The prefetch's first batches are asked now, with the checkpoint
	// (earlyReads): they end, or are cancelled, before Open returns.
	// They leave once the checkpoint's request is written: every read
	// of Open waits for the checkpoint, none for them, and a batch that
	// dialled first could take the connection the checkpoint's dial
	// made, leaving it to wait for a batch's answer.
	written := make(chan struct{})
	var writtenOnce sync.Once
	checkpointWritten := func() { writtenOnce.Do(func() { close(written) }) }
	early := c.readEarly(ctx, prefetch, written)
	defer early.end()
	// A checkpoint is a few hundred bytes: one that takes longer than
	// tileDeadline trickles in (above the transport's lowest rate, a
	// megabyte would take hours).
	cctx, cancelCkpt := context.WithTimeout(ctx, tileDeadline)
	note, header, err := c.get(httptrace.WithClientTrace(cctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { checkpointWritten() },
	}), "/log/checkpoint", maxCheckpointAnswer)
	checkpointWritten()
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("not whole within %s: %w", tileDeadline, err)
	}
	cancelCkpt()
	if err != nil {
		return nil, fmt.Errorf("%s: fetching the checkpoint: %w", c.base(), err)
	}
	claimed, err := checkpoint.Claimed(note)
	if err != nil {
		return nil, fmt.Errorf("%s: the checkpoint: %w", c.base(), err)
	}
	origin := checkpoint.Origin(c.Introduction)
	if claimed.Origin != origin {
		return nil, fmt.Errorf("%s serves the log of %s, not of %s, the introduction this client pins: it is another repository", c.base(), claimed.Origin, origin)
	}
	stored, err := c.stored()
	if err != nil {
		return nil, err
	}
	serverFetcher, err := torchwood.NewTileFetcher(c.base()+"/log/", torchwood.WithHTTPClient(c.tileHTTP()), torchwood.WithUserAgent("cairn"))
	if err != nil {
		return nil, err
	}
	serverTiles := boundedTiles{serverFetcher}
	fetcher, err := c.tileSource(serverTiles, claimed.Tree())
	if err != nil {
		return nil, err
	}
	kept := c.tiles(fetcher, claimed)
	kept.hold() // until the checkpoint is verified (verifiedNow)
	v := (&View{client: c, ctx: ctx, tiles: newTileCache(kept), keptTiles: kept, server: fetcher, Checkpoint: &checkpoint.Signed{Checkpoint: claimed, Raw: note}, Note: note,
		policy: header.Get(PolicyHeader), early: early}).withFiles()
	refuse := func(format string, args ...any) error {
		return &ProofError{URL: c.base(), What: "the checkpoint", Checkpoint: note, Err: fmt.Errorf(format, args...)}
	}

	// A tree that cannot follow the one verified last, signed by the key
	// that signed that one, is refused before anything else is read (a
	// server answers reads at its last few trees: a replayed one's reads
	// would prove a tree this client has gone past).
	if err := c.signedConflict(stored, claimed, note); err != nil {
		return nil, err
	}

	// Read ahead what verifying it reads, now that its size is known:
	// the tiles of the map leaf's and the consistency proofs, the root
	// history and the key's subject (below). Nothing is trusted or kept
	// before the checkpoint is (warm; keepLater).
	// Every read started here ends before Open returns: after a refusal
	// they are cancelled first, and nothing they read is kept.
	wctx, cancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer func() {
		if err != nil {
			cancel()
		}
		bg.Wait()
		v.tiles.warmed()
		cancel()
	}()
	var old int64
	if stored != nil {
		if last, err := checkpoint.Claimed([]byte(stored.Checkpoint)); err == nil {
			old = last.Size
		}
	}
	v.tiles.warm(wctx, claimed, old)

	// The key that signed: hinted, never trusted.
	keyID := header.Get(KeyHeader)
	if keyID == "" && stored != nil {
		keyID = stored.Key
	}
	if keyID == "" {
		return nil, fmt.Errorf("%s names no key for its checkpoint (response header %s) and this client verified none before: it cannot tell which key to check", c.base(), KeyHeader)
	}
	keyHex, err := keys.HexFromID(keyID)
	if err != nil {
		return nil, refuse("the checkpoint key it names: %v", err)
	}
	// The root and the key, read in one request and judged together
	// (the key's grant needs the root), claimed before the prefetch
	// starts, whose judgments need them too.
	first, firstLoads := v.claimAll([]string{"root", "key " + keyHex})
	if len(first) > 0 {
		bg.Go(func() { v.loadBatch(wctx, first, firstLoads) })
	}
	if len(prefetch) > 0 {
		bg.Go(func() { v.Prefetch(wctx, prefetch...) })
		if v.policy != "" {
			bg.Go(func() { v.prefetchRefusals(wctx, prefetch) })
		}
	}
	st, err := v.judged(ctx, "key "+keyHex)
	if err != nil && ctx.Err() == nil {
		// A batch refused whole (not the key's document alone: the
		// answer garbled, a document too many) fails every load of it:
		// the key, forgotten, is read again alone, and so is the root
		// if its load failed.
		st, err = v.judged(ctx, "key "+keyHex)
	}
	if err != nil {
		return nil, err
	}
	k, err := st.Key(keyID)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, refuse("key %s, which it names as the checkpoint's signer, is not granted in the index", keyID)
	}
	if err := k.MayCheckpoint(claimed.Time); err != nil {
		return nil, refuse("%w", err)
	}
	// v.Checkpoint is set to sc once the reads started above ended:
	// they read it (its size, the claimed one's).
	sc, err := checkpoint.Open(note, origin, []ed25519.PublicKey{k.Pub})
	if err != nil {
		return nil, refuse("%w", err)
	}
	maxAge := c.MaxAge
	if maxAge == 0 {
		maxAge = checkpoint.DefaultMaxAge
	}
	if err := sc.Fresh(c.now(), maxAge, index.MaxClockSkew); err != nil {
		return nil, refuse("%w", err)
	}
	if v.Cosigned, err = c.Witnesses.Check(note, origin); err != nil {
		return nil, refuse("%w", err)
	}
	v.Unwitnessed = c.Witnesses.Unwitnessed()
	// The map the checkpoint names must be the one its tree holds: the
	// tree's last leaf, which witnesses cosigned with the tree.
	if v.MapLeaf, err = proveMapLeaf(ctx, v.tiles, sc.Checkpoint); err != nil {
		var mle *MapLeafError
		if errors.As(err, &mle) {
			return nil, refuse("%w", err)
		}
		return nil, fmt.Errorf("%s: %w", c.base(), err)
	}
	store, err := c.advance(ctx, v, sc, stored, k)
	if err != nil {
		return nil, err
	}
	var again []string
	if store != nil && c.StateDir != "" {
		// The checkpoint verified last moves: what was kept at older
		// trees is read again at this one (after Open, while the caller
		// goes on: Kept waits for it), so that a read offline finds
		// every subject this machine read online (another project's,
		// say), not only this run's. The older trees serve no read
		// offline (only the stored checkpoint's does): Kept removes them.
		// An Open that reopen started reads nothing more.
		v.dropTrees = c.olderTrees(sc.Checkpoint)
		if ctx.Value(reopening{}) == nil {
			again = keptSubjects(v.dropTrees)
		}
	}
	// The checkpoint is stored (a file synced, which can take longer
	// than anything else here on a busy disk) while the reads Open
	// started end and what they read is kept, all of it at once (a file
	// a tree and encoding, not one a batch: a file costs more to create
	// than to fill, and the batches finish without waiting for a disk);
	// Open returns once it is. The directories of the tree's documents
	// and tiles are made meanwhile too: on a disk whose inodes are slow
	// to find (ext4 skips those deleted lately), each costs what a file
	// does, and the files kept once the reads end need them.
	var storing sync.WaitGroup
	var storeErr error
	if store != nil {
		storing.Go(func() { storeErr = store() })
	}
	if v.keptTiles != nil && v.keptTiles.dir != "" {
		storing.Go(func() {
			os.MkdirAll(v.keptTiles.dir, 0o755)
			os.MkdirAll(c.subjectsDir(sc.Checkpoint), 0o755)
		})
	}
	bg.Wait()
	v.Checkpoint = sc // before the keeps, which read it
	v.verifiedNow()
	if len(again) > 0 {
		v.keeping.Go(func() { v.Prefetch(v.ctx, again...) })
	}
	storing.Wait()
	if storeErr != nil {
		v.Kept()
		return nil, storeErr
	}
	return v, nil
}

// keepLater keeps documents (keep) once Open has verified the checkpoint
// they were checked against, never before: a checkpoint refused keeps
// nothing of what was read to judge it.
func (v *View) keepLater(keep func()) {
	v.keepMu.Lock()
	if !v.verified {
		v.pending = append(v.pending, keep)
		v.keepMu.Unlock()
		return
	}
	v.keepMu.Unlock()
	keep()
}

// heldDocs are subject documents checked at one tree while Open reads,
// batch documents ({"size", "subjects"}) or compact batches
// (translog.SubjectsMedia), kept in one file of each once its reads
// ended and the checkpoint is verified: a file costs more to create
// than to fill.
type heldDocs struct {
	cp       checkpoint.Checkpoint
	subjects [2][]string // JSON, compact
	bodies   [2][][]byte
}

// verifiedNow says Open verified the checkpoint and its reads ended,
// and starts keeping what they read: the documents in one file by tree
// and encoding, the tiles in one file, written side by side; Kept waits
// for them. Each file is written whole or not at all (a temporary file
// renamed), and best effort, as every keep: one not kept is read again
// online.
func (v *View) verifiedNow() {
	v.keepMu.Lock()
	v.verified = true
	pending, held := v.pending, v.held
	v.pending, v.held = nil, nil
	v.keepMu.Unlock()
	start := func(keep func()) {
		v.keeping.Go(func() {
			if v.client.keepGate != nil {
				v.client.keepGate()
			}
			keep()
		})
	}
	for _, keep := range pending {
		start(keep)
	}
	for _, h := range held {
		start(func() { v.client.keepBatchBody(h.cp, h.subjects[0], h.bodies[0], false) })
		start(func() { v.client.keepBatchBody(h.cp, h.subjects[1], h.bodies[1], true) })
	}
	if v.keptTiles != nil {
		start(v.keptTiles.release)
	}
	if v.client.StateDir != "" {
		keepers.Lock()
		if keepers.views == nil {
			keepers.views = map[string][]*View{}
		}
		keepers.views[v.client.keepersKey()] = append(keepers.views[v.client.keepersKey()], v)
		keepers.Unlock()
	}
}

// keepers are the views of this process whose keeps may still run, by
// repository kept (keepersKey): a view opened later of the same
// repository waits for them (waitKept), so that it reads, and replaces,
// what they kept, not what they are keeping.
var keepers struct {
	sync.Mutex
	views map[string][]*View
}

// keepersKey names c's repository in keepers: its state's path.
func (c *Client) keepersKey() string { return c.statePath() }

// waitKept waits for the keeps of the views of c's repository that this
// process opened before.
func (c *Client) waitKept() {
	if c.StateDir == "" {
		return
	}
	keepers.Lock()
	vs := slices.Clone(keepers.views[c.keepersKey()])
	keepers.Unlock()
	for _, v := range vs {
		v.Kept()
	}
}

// Kept returns once what Open's reads proved is kept in StateDir (and
// that of the newer view reads moved to, if they did): OpenPrefetch
// returns before. It is safe to call more than once, and from several
// goroutines.
func (v *View) Kept() {
	v.keeping.Wait()
	// The older trees' documents, read again at this view's (open),
	// serve no read any more.
	for _, dir := range v.dropTrees {
		os.RemoveAll(dir)
	}
	v.dropTrees = nil
	keepers.Lock()
	k := v.client.keepersKey()
	if vs := slices.DeleteFunc(keepers.views[k], func(x *View) bool { return x == v }); len(vs) == 0 {
		delete(keepers.views, k)
	} else {
		keepers.views[k] = vs
	}
	keepers.Unlock()
	v.atMu.Lock()
	at := v.at
	v.atMu.Unlock()
	if at != nil {
		at.Kept()
	}
}

// keepDocs keeps a batch document of subjects checked and judged at cp's
// tree (keepBatchBody; compact: a batch of the compact encoding), or
// holds it until Open has verified the checkpoint and its reads ended.
func (v *View) keepDocs(cp checkpoint.Checkpoint, subjects []string, body []byte, compact bool) {
	if v.client.StateDir == "" || len(subjects) == 0 {
		return
	}
	v.keepMu.Lock()
	if !v.verified {
		if v.held == nil {
			v.held = map[string]*heldDocs{}
		}
		h := v.held[treeDir(cp)]
		if h == nil {
			h = &heldDocs{cp: cp}
			v.held[treeDir(cp)] = h
		}
		k := 0
		if compact {
			k = 1
		}
		h.subjects[k] = append(h.subjects[k], subjects...)
		h.bodies[k] = append(h.bodies[k], body)
		v.keepMu.Unlock()
		return
	}
	v.keepMu.Unlock()
	v.client.keepBatchBody(cp, subjects, [][]byte{body}, compact)
}

// keepDoc keeps a subject's document checked and judged at cp's tree
// (keep), or holds it, as one batch document, until Open has verified
// the checkpoint.
func (v *View) keepDoc(cp checkpoint.Checkpoint, subject string, doc []byte) {
	v.keepMu.Lock()
	verified := v.verified
	v.keepMu.Unlock()
	if verified {
		v.client.keep(cp, subject, doc)
		return
	}
	v.keepDocs(cp, []string{subject}, batchBody(cp, [][]byte{doc}), false)
}

// reading returns the view whose tree reads are answered at: v, or the
// newer view reopen opened.
func (v *View) reading() *View {
	v.atMu.Lock()
	defer v.atMu.Unlock()
	if v.at != nil {
		return v.at
	}
	return v
}

// reopen opens the server's checkpoint again after a read at at's tree
// was answered 410 Gone (the server answers at its latest few trees
// only) or at another tree: the new checkpoint, verified as Open verifies
// any, must extend v's (a consistency proof from the tiles). Reads are
// then answered at its tree, and keep only the files of v's (within):
// a subject's files at v's tree are those of the newer tree below v's
// size, since the log only grows. Concurrent readers reopen once.
func (v *View) reopen(ctx context.Context, at *View) (*View, error) {
	if ctx.Value(reopening{}) != nil {
		// Opening the checkpoint again read at a tree the server no
		// longer answers at, or that its answer is not of: a server (or
		// a bundle) that does not answer at the tree it signs. Another
		// Open would meet it again, without end.
		return nil, fmt.Errorf("%s does not answer at the tree of size %d it signed, even right after it was opened again: %w", v.client.base(), at.Checkpoint.Size, ErrMoved)
	}
	v.atMu.Lock()
	defer v.atMu.Unlock()
	if cur := v.at; cur != nil && cur != at {
		return cur, nil
	}
	nv, err := v.client.Open(context.WithValue(ctx, reopening{}, true))
	if err != nil {
		return nil, fmt.Errorf("opening the checkpoint again after the server stopped answering at the tree of size %d: %w", at.Checkpoint.Size, err)
	}
	n, o := nv.Checkpoint.Checkpoint, v.Checkpoint.Checkpoint
	if n.Size <= at.Checkpoint.Size {
		return nil, fmt.Errorf("%s stopped answering at the tree of size %d, and its checkpoint is of size %d: %w", v.client.base(), at.Checkpoint.Size, n.Size, ErrMoved)
	}
	if o.Size > 0 {
		hr := torchwood.TileHashReaderWithContext(ctx, n.Tree(), nv.tiles)
		proof, err := tlog.ProveTree(n.Size, o.Size, hr)
		if notServed(err) {
			return nil, fmt.Errorf("%s: proving its checkpoint of size %d extends the one of size %d: %w", v.client.base(), n.Size, o.Size, err)
		}
		if err == nil {
			err = tlog.CheckTree(proof, n.Size, n.Root, o.Size, o.Root)
		}
		if err != nil {
			return nil, &InconsistentError{URL: v.client.base(), Problem: "inconsistent", Stored: v.Note, Served: nv.Note, Err: err}
		}
	}
	v.at = nv
	return nv, nil
}

// reopening marks the context of an Open that reopen started: its reads
// do not reopen in turn.
type reopening struct{}

// within returns the files of v's tree among files, read at a tree that
// extends it (in index order).
func (v *View) within(files []index.MemFile) []index.MemFile {
	n := len(files)
	for n > 0 && files[n-1].Index >= v.Checkpoint.Size {
		n--
	}
	return files[:n:n]
}

// maxCheckpointAnswer bounds the answer get reads (a checkpoint: its
// note, a few hundred bytes and a line for each cosignature).
const maxCheckpointAnswer = 1 << 20

// maxBatchAnswer bounds a batch read's answer, and a subject's: a batch
// larger than that (a server that sends without end) is refused unread,
// and its subjects are read one by one.
const maxBatchAnswer = 64 << 20

// get fetches BaseURL+path, at most limit bytes, and the answer's header (the checkpoint key
// it hints at, the policy it names).
func (c *Client) get(ctx context.Context, path string, limit int) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base()+path, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if len(body) > limit {
		return nil, nil, fmt.Errorf("GET %s: %s: an answer of more than %d bytes: refused unread", path, resp.Status, limit)
	}
	if resp.StatusCode == http.StatusGone {
		return nil, nil, fmt.Errorf("GET %s: %s: %s: %w", path, resp.Status, bytes.TrimSpace(body[:min(len(body), 512)]), ErrMoved)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body[:min(len(body), 512)]))
	}
	return body, resp.Header, nil
}

// storedState is what StateDir keeps of a repository: the last
// checkpoint verified, the key that signed it, and its last leaf (the map
// leaf) with its inclusion path, which a view offline checks again.
type storedState struct {
	Checkpoint string   `json:"checkpoint"` // the signed note
	Key        string   `json:"key"`        // its id
	Public     string   `json:"public"`     // the key itself, OpenSSH format
	MapLeaf    string   `json:"map_leaf"`   // the entry line of leaf size-1
	MapProof   [][]byte `json:"map_proof"`  // its inclusion path, base64 hashes
}

// signedConflict refuses a checkpoint that cannot follow the stored one
// (smaller, or the same size with another root) and that the key of the
// stored one signed: evidence enough of a rollback or a split view. One
// that key did not sign is left to the full checks.
func (c *Client) signedConflict(stored *storedState, next checkpoint.Checkpoint, note []byte) error {
	if stored == nil || stored.Public == "" {
		return nil
	}
	last, err := checkpoint.Claimed([]byte(stored.Checkpoint))
	if err != nil {
		return fmt.Errorf("%s: %w: delete it to start again from the server's word", c.statePath(), err)
	}
	problem := ""
	switch {
	case next.Size < last.Size:
		problem = "rollback"
	case next.Size == last.Size && next.Root != last.Root:
		problem = "split view"
	default:
		return nil
	}
	pub, _, err := keys.ParsePublic([]byte(stored.Public))
	if err != nil {
		return fmt.Errorf("%s: %w: delete it to start again from the server's word", c.statePath(), err)
	}
	if _, err := checkpoint.Open(note, next.Origin, []ed25519.PublicKey{pub}); err != nil {
		return nil
	}
	return &InconsistentError{URL: c.base(), Problem: problem, Stored: []byte(stored.Checkpoint), Served: note}
}

func (c *Client) statePath() string {
	return filepath.Join(c.StateDir, c.Introduction+".checkpoint.json")
}

// treeDir names the directory of the subject documents read at a tree.
func treeDir(cp checkpoint.Checkpoint) string {
	return fmt.Sprintf("%d-%x", cp.Size, cp.Root[:8])
}

// subjectsDir is the directory of the subject documents read at a
// checkpoint's tree.
func (c *Client) subjectsDir(cp checkpoint.Checkpoint) string {
	return filepath.Join(c.StateDir, c.Introduction+".subjects", treeDir(cp))
}

// cachePath is where the subject documents read at a checkpoint's tree
// are kept, for reads offline.
func (c *Client) cachePath(cp checkpoint.Checkpoint, subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return filepath.Join(c.subjectsDir(cp), hex.EncodeToString(sum[:])+".json")
}

// keep keeps a subject document checked at a checkpoint, best effort: a
// read offline checks it again, and one missing is said.
func (c *Client) keep(cp checkpoint.Checkpoint, subject string, body []byte) {
	if c.StateDir == "" {
		return
	}
	p := c.cachePath(cp, subject)
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		safefile.Write(p, body, safefile.Options{Perm: 0o644, NoSync: true})
	}
}

// batchBody returns the batch document ({"size", "subjects"}) of
// subject documents read at a checkpoint, as a batch read answers them.
func batchBody(cp checkpoint.Checkpoint, docs [][]byte) []byte {
	n := 0
	for _, d := range docs {
		n += len(d) + 1
	}
	body := make([]byte, 0, n+64)
	body = fmt.Appendf(body, `{"size":%d,"subjects":[`, cp.Size)
	for i, d := range docs {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, d...)
	}
	return append(body, "]}"...)
}

// keepBatchBody keeps batch documents ({"size", "subjects"}, one or more
// one after the other, a line apart; compact: batches of the compact
// encoding, one after the other, in a file named so), every document of
// which passed its checks, in one file, best effort, as keep does.
func (c *Client) keepBatchBody(cp checkpoint.Checkpoint, subjects []string, bodies [][]byte, compact bool) {
	if c.StateDir == "" || len(subjects) == 0 {
		return
	}
	parts := bodies
	if !compact && len(bodies) > 1 {
		parts = make([][]byte, 0, 2*len(bodies))
		for i, b := range bodies {
			if i > 0 {
				parts = append(parts, []byte("\n"))
			}
			parts = append(parts, b)
		}
	}
	// Named by the set of subjects, not the order the batches came back
	// in: the same reads at the same tree (a lock run again while the
	// server has no new record) find their file kept already, and
	// neither write it again nor add another beside it, which every
	// offline read would parse.
	sorted := slices.Sorted(slices.Values(subjects))
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\n")))
	ext := ".json"
	if compact {
		ext = compactSuffix
	}
	p := filepath.Join(c.subjectsDir(cp), batchPrefix+hex.EncodeToString(sum[:16])+ext)
	if _, err := os.Stat(p); err == nil {
		return // written whole (renamed into place) by a read of the same subjects at this tree
	}
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		safefile.WriteParts(p, parts, safefile.Options{Perm: 0o644, NoSync: true})
	}
}

// OpenOffline returns the view of the checkpoint verified last (by Open),
// with no network: its signature is checked again under the key kept with
// it, its last leaf kept with it against its tree, cairn-map and
// cairn-head (CheckMapLeaf), and each subject is read from those Open's
// views kept in StateDir, checked again against it and judged again. Its freshness is not judged:
// it is what this machine verified, as of when it did. A subject never
// read online at that checkpoint fails, saying so.
func (c *Client) OpenOffline(ctx context.Context) (*View, error) {
	c.waitKept()
	stored, err := c.stored()
	if err != nil {
		return nil, err
	}
	if stored == nil || stored.Public == "" {
		return nil, fmt.Errorf("%s was never read online by this machine (no checkpoint in %s): run once without --offline", c.base(), c.StateDir)
	}
	pub, _, err := keys.ParsePublic([]byte(stored.Public))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.statePath(), err)
	}
	note := []byte(stored.Checkpoint)
	sc, err := checkpoint.Open(note, checkpoint.Origin(c.Introduction), []ed25519.PublicKey{pub})
	if err != nil {
		return nil, fmt.Errorf("%s: %w: delete it to start again from the server's word", c.statePath(), err)
	}
	v := (&View{client: c, ctx: ctx, offline: true, tiles: newTileCache(c.tiles(nil, sc.Checkpoint)), Checkpoint: sc, Note: note}).withFiles()
	if stored.MapLeaf == "" {
		return nil, fmt.Errorf("%s keeps no map leaf with its checkpoint (kept by an older cairn): run once without --offline", c.statePath())
	}
	proof := make(tlog.RecordProof, len(stored.MapProof))
	for i, h := range stored.MapProof {
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("%s: map_proof hash %d is %d bytes, not %d: delete it to start again from the server's word", c.statePath(), i, len(h), tlog.HashSize)
		}
		proof[i] = tlog.Hash(h)
	}
	if v.MapLeaf, err = CheckMapLeaf(sc.Checkpoint, []byte(stored.MapLeaf), proof); err != nil {
		return nil, fmt.Errorf("%s: the checkpoint verified last: %w: delete it to start again from the server's word", c.statePath(), err)
	}
	if v.Cosigned, err = c.Witnesses.Check(note, sc.Origin); err != nil {
		return nil, fmt.Errorf("%s: the checkpoint verified last (%s): %w", c.base(), c.statePath(), err)
	}
	v.Unwitnessed = c.Witnesses.Unwitnessed()
	return v, nil
}

// stored reads the last checkpoint verified; nil if there is none (or no
// StateDir).
func (c *Client) stored() (*storedState, error) {
	if c.StateDir == "" {
		return nil, nil
	}
	data, err := os.ReadFile(c.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s storedState
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w: delete it to start again from the server's word", c.statePath(), err)
	}
	return &s, nil
}

// advance checks that v's checkpoint, sc, follows the stored one (no
// rollback, no split view, a consistency proof from the tiles), and
// returns store, which stores it (and is nil when there is nothing to
// store).
func (c *Client) advance(ctx context.Context, v *View, sc *checkpoint.Signed, stored *storedState, k *index.Key) (store func() error, err error) {
	next := sc.Checkpoint
	if stored != nil {
		last, err := checkpoint.Claimed([]byte(stored.Checkpoint))
		if err != nil {
			return nil, fmt.Errorf("%s: %w: delete it to start again from the server's word", c.statePath(), err)
		}
		inconsistent := func(problem string, err error) error {
			return &InconsistentError{URL: c.base(), Problem: problem, Stored: []byte(stored.Checkpoint), Served: v.Note, Err: err}
		}
		switch {
		case next.Size < last.Size:
			return nil, inconsistent("rollback", nil)
		case next.Size == last.Size && next.Root != last.Root:
			return nil, inconsistent("split view", nil)
		case next.Size > last.Size && last.Size > 0:
			hr := torchwood.TileHashReaderWithContext(ctx, next.Tree(), v.tiles)
			proof, err := tlog.ProveTree(next.Size, last.Size, hr)
			if notServed(err) {
				// Nothing proved wrong, nor right: the new tree is not
				// taken. Both checkpoints are said, as evidence should
				// the tiles never come (a split view can hide so).
				return nil, fmt.Errorf("%s: proving its checkpoint of size %d extends the one this machine verified last (size %d): %w; nothing was taken (if this persists, keep both checkpoints: the one verified last is in %s)\nserved now:\n%s", c.base(), next.Size, last.Size, err, c.statePath(), v.Note)
			}
			if err == nil {
				err = tlog.CheckTree(proof, next.Size, next.Root, last.Size, last.Root)
			}
			if err != nil {
				return nil, inconsistent("inconsistent", err)
			}
		}
		if next.Size == last.Size && next.Time.Before(last.Time) {
			return nil, nil // an older signature of the same tree: nothing new to keep
		}
		if string(v.Note) == stored.Checkpoint && k != nil && stored.Key == k.ID && stored.MapLeaf == string(v.MapLeaf.Text) {
			// The very checkpoint stored (the server signs a new one only
			// when its head moves or its interval ends): stored and synced
			// already, and its tree's older documents removed then.
			return nil, nil
		}
	}
	if c.StateDir == "" {
		return nil, nil
	}
	return func() error { return c.store(v, k, next) }, nil
}

// store stores v's checkpoint, next, signed by k, as the last one
// verified (synced: what a rollback is judged against), and removes the
// documents kept of older ones.
func (c *Client) store(v *View, k *index.Key, next checkpoint.Checkpoint) error {
	st := storedState{Checkpoint: string(v.Note), Key: k.ID, Public: keys.FormatPublic(k.Pub), MapLeaf: string(v.MapLeaf.Text)}
	for _, h := range v.MapLeaf.Proof {
		st.MapProof = append(st.MapProof, h[:])
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		return err
	}
	return safefile.Write(c.statePath(), append(data, '\n'), safefile.Options{Perm: 0o644})
}

// olderTrees are the directories of the documents kept at trees other
// than next's.
func (c *Client) olderTrees(next checkpoint.Checkpoint) []string {
	dir := filepath.Join(c.StateDir, c.Introduction+".subjects")
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != treeDir(next) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// keptSubjects are the subjects whose documents are kept in dirs.
func keptSubjects(dirs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, dir := range dirs {
		for s := range readKept(dir, true) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// wireFile is one file of a light read: its leaf index, entry line and
// bytes (docs/transparency.md, "Serving").
type wireFile struct {
	Index   int64  `json:"index"`
	Entry   string `json:"entry"`
	Content []byte `json:"content"`
	// derived: the compact decoder made Entry from Content (its sha256
	// and size are Content's: translog.SubjectFile.Derived). No JSON
	// document sets it.
	derived bool
	// entry: the compact decoder's entry line, which Entry is then not
	// (the same bytes, not copied into a string). No JSON document sets it.
	entry []byte
}

// text returns the file's entry line.
func (f *wireFile) text() []byte {
	if f.entry != nil {
		return f.entry
	}
	return []byte(f.Entry)
}

// wireSubject is GET /api/v1/log/subject's answer. It is decoded by
// go-json-experiment/json (four times faster than encoding/json here,
// and it refuses a member named twice).
type wireSubject struct {
	Subject string            `json:"subject"`
	Size    int64             `json:"size"`
	Count   uint64            `json:"count"`
	Files   []wireFile        `json:"files"`
	Proof   translog.MapProof `json:"proof"`
}

// Subject returns every file of a subject of the log's map ("package
// acme/fastjson", "key …", "root", …; index.SubjectOf), proved complete
// against the view's checkpoint and judged by the rules with the subjects
// it needs (index.ReplayProved), in index order; none if the index holds
// none. A server that leaves a file out, adds one or changes one is a
// *ProofError naming the subject.
func (v *View) Subject(ctx context.Context, subject string) ([]index.MemFile, error) {
	l := v.load(ctx, subject)
	return l.files, l.err
}

// judged reads subject and what it needs, and returns the state the
// rules leave after judging them all.
func (v *View) judged(ctx context.Context, subject string) (*index.Overlay, error) {
	l := v.load(ctx, subject)
	if l.err != nil {
		return nil, l.err
	}
	return index.ReplayProved(v.client.Introduction, v.closure(l))
}

// closure returns the files of l's subject and of every subject its
// judgment read.
func (v *View) closure(l *subjectLoad) []index.MemFile {
	out := append([]index.MemFile(nil), l.files...)
	for _, s := range l.needs {
		out = append(out, v.loaded(s).files...)
	}
	return out
}

// loaded returns the load of a subject read before (nil if none).
func (v *View) loaded(subject string) *subjectLoad {
	if l, ok := v.subjects.Load(subject); ok {
		return l.(*subjectLoad)
	}
	return nil
}

// claim returns the load of subject, and whether the caller claimed it:
// a new one, which it fills in and finishes; else one claimed before.
func (v *View) claim(subject string) (*subjectLoad, bool) {
	if l := v.loaded(subject); l != nil {
		return l, false
	}
	l := &subjectLoad{done: make(chan struct{})}
	got, loaded := v.subjects.LoadOrStore(subject, l)
	return got.(*subjectLoad), !loaded
}

// load reads and judges subject once (concurrent callers wait for it); a
// failed load is forgotten, so that the next read tries again.
func (v *View) load(ctx context.Context, subject string) *subjectLoad {
	l, claimed := v.claim(subject)
	if !claimed {
		select {
		case <-l.done:
			return l
		case <-ctx.Done(): // interrupted: the load goes on for its other readers
			return &subjectLoad{err: ctx.Err()}
		}
	}
	// A package's refusals by the server's policy, which resolution
	// asks for next, are read meanwhile.
	var refusals sync.WaitGroup
	if name, ok := strings.CutPrefix(subject, "package "); ok && v.policy != "" && !v.offline {
		refusals.Go(func() { v.Refusals(ctx, name) })
	}
	l.files, l.needs, l.err = v.fetchAndJudge(ctx, subject)
	refusals.Wait()
	v.finish([]string{subject}, []*subjectLoad{l})
	return l
}

// finish publishes loads of subjects that were claimed (put in
// v.subjects) and filled in: a failed one is forgotten, and readers
// waiting on them go on.
func (v *View) finish(subjects []string, loads []*subjectLoad) {
	for i, l := range loads {
		if l.err != nil {
			v.subjects.CompareAndDelete(subjects[i], l)
		} else if subjects[i] == "keys" {
			v.keysRead(l)
		}
	}
	for _, l := range loads {
		close(l.done)
	}
}

// keysRead makes every key's subject read, from "keys" just read: it
// holds every key's files, proved complete, so each key's are those under
// its directory.
func (v *View) keysRead(l *subjectLoad) {
	byKey := map[string][]index.MemFile{}
	for _, f := range l.files {
		if s, ok := index.SubjectOf(f.Path); ok {
			byKey[s] = append(byKey[s], f)
		}
	}
	for s, files := range byKey {
		done := make(chan struct{})
		close(done)
		v.subjects.LoadOrStore(s, &subjectLoad{done: done, files: files, needs: []string{"root"}})
	}
}

// fetchAndJudge fetches subject, loads what it needs (in parallel), and
// judges the whole by the rules. It returns the subject's files and the
// subjects of the closure.
func (v *View) fetchAndJudge(ctx context.Context, subject string) ([]index.MemFile, []string, error) {
	files, keep, err := v.fetch(ctx, subject)
	if err != nil {
		return nil, nil, err
	}
	needs, errs := v.judge(ctx, []string{subject}, [][]index.MemFile{files})
	if errs[0] != nil {
		return nil, nil, errs[0]
	}
	if keep != nil {
		keep()
	}
	return files, needs[0], nil
}

// judge judges subjects read together (their files, each proved
// complete, are files[i]), with every subject they need, by the rules:
// it loads the needs that are not among them (in parallel), and returns
// each subject's closure (the subjects its judgment read) or why it is
// refused.
//
// The subjects are judged at once, all their files and their closures'
// in one replay (index.ReplayProved), as a full replica's replay judges
// the whole history at once: a set of subjects that holds the needs of
// each is judged, file by file, as each alone with its needs is (the
// rules read nothing of a subject that its needs do not name). Only
// when that replay refuses are they judged one by one, so that the
// error names the subject whose files break the rule.
func (v *View) judge(ctx context.Context, subjects []string, files [][]index.MemFile) ([][]string, []error) {
	n := len(subjects)
	needs, errs := make([][]string, n), make([]error, n)
	in := map[string]int{}
	for i, s := range subjects {
		in[s] = i
	}
	// Each subject's direct needs, and those to load from outside.
	direct := make([][]string, n)
	var outside []string
	seen := map[string]bool{}
	for i, s := range subjects {
		d := index.Needs(files[i])
		if s != "root" {
			d = append(d, "root")
		}
		for _, x := range d {
			if x == s {
				continue // a key's own grant names it
			}
			direct[i] = append(direct[i], x)
			if _, ok := in[x]; !ok && !seen[x] {
				seen[x] = true
				outside = append(outside, x)
			}
		}
	}
	// Those not read yet in batches (one request for the keys a batch
	// of packages names, not one each); then each as load has it (one
	// whose batch failed is read again alone, to say why).
	if len(outside) > 1 {
		v.Prefetch(ctx, outside...)
	}
	// Each in a slot of its own: nothing shared to lock.
	outsideLoads := make([]*subjectLoad, len(outside))
	var wg sync.WaitGroup
	for k, x := range outside {
		wg.Go(func() { outsideLoads[k] = v.load(ctx, x) })
	}
	wg.Wait()
	loads := make(map[string]*subjectLoad, len(outside))
	for k, x := range outside {
		loads[x] = outsideLoads[k]
	}

	// Each subject's closure: its needs, and theirs.
	closures := make([]map[string]bool, n)
	state := make([]int, n) // 0 not yet, 1 in progress, 2 done
	var closureOf func(i int) map[string]bool
	closureOf = func(i int) map[string]bool {
		if state[i] != 0 {
			return closures[i] // done, or a circle (needs never go round: Needs)
		}
		state[i] = 1
		c := map[string]bool{}
		for _, x := range direct[i] {
			c[x] = true
			if j, ok := in[x]; ok {
				for y := range closureOf(j) {
					c[y] = true
				}
				if errs[j] != nil && errs[i] == nil {
					errs[i] = errs[j]
				}
			} else if l := loads[x]; l.err != nil {
				errs[i] = l.err
			} else {
				for _, y := range l.needs {
					c[y] = true
				}
			}
		}
		delete(c, subjects[i])
		closures[i], state[i] = c, 2
		return c
	}
	for i := range subjects {
		closureOf(i)
	}
	filesOf := func(x string) []index.MemFile {
		if j, ok := in[x]; ok {
			return files[j]
		}
		return v.loaded(x).files
	}
	judgeOne := func(i int) error {
		all := [][]index.MemFile{files[i]}
		for x := range closures[i] {
			all = append(all, filesOf(x))
		}
		if _, err := index.ReplayProved(v.client.Introduction, union(all)); err != nil {
			return &ProofError{URL: v.client.base(), What: fmt.Sprintf("subject %q", subjects[i]), Checkpoint: v.Note,
				Err: fmt.Errorf("its files break the index's rules, which every full replica would refuse: %w", err)}
		}
		return nil
	}

	ok := true
	for i := range subjects {
		ok = ok && errs[i] == nil
	}
	if n == 1 || !ok {
		for i := range subjects {
			if errs[i] == nil {
				errs[i] = judgeOne(i)
			}
		}
	} else {
		every := map[string]bool{}
		for i, s := range subjects {
			every[s] = true
			for x := range closures[i] {
				every[x] = true
			}
		}
		var all [][]index.MemFile
		for x := range every {
			all = append(all, filesOf(x))
		}
		if _, err := index.ReplayProved(v.client.Introduction, union(all)); err != nil {
			for i := range subjects {
				errs[i] = judgeOne(i)
			}
		}
	}
	for i := range subjects {
		if errs[i] != nil {
			continue
		}
		for x := range closures[i] {
			needs[i] = append(needs[i], x)
		}
		slices.Sort(needs[i])
	}
	return needs, errs
}

// union returns the files of several subjects, each once: a file in two
// subjects (a key's, which "keys" holds too) is the same leaf, with the
// same path and bytes, or it is left twice for the rules to refuse.
func union(lists [][]index.MemFile) []index.MemFile {
	n := 0
	for _, files := range lists {
		n += len(files)
	}
	out, at := make([]index.MemFile, 0, n), make(map[int64]int, n)
	for _, files := range lists {
		for _, f := range files {
			if j, ok := at[f.Index]; ok && out[j].Path == f.Path && bytes.Equal(out[j].Data, f.Data) && out[j].Commit == f.Commit && out[j].Time.Equal(f.Time) {
				continue
			}
			at[f.Index] = len(out)
			out = append(out, f)
		}
	}
	return out
}

// fetch reads a subject and checks it against the checkpoint's map root:
// each file's bytes against its entry, the entries' chain, the map proof.
// Online, it asks at the view's tree (?size=N), and keep keeps the
// document for reads offline (the caller runs it once the files are
// judged).
func (v *View) fetch(ctx context.Context, subject string) (files []index.MemFile, keep func(), err error) {
	if v.offline {
		docs, err := v.kept(subject)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: reading %s: %w", v.client.base(), subject, err)
		}
		for _, d := range docs {
			var err2 error
			if d.doc != nil {
				files, err2 = v.checkDoc(subject, d.doc)
			} else {
				files, err2 = v.check(subject, d.body)
			}
			if err2 == nil {
				return files, nil, nil
			}
			err = cmp.Or(err, err2)
		}
		return nil, nil, err
	}
	at := v.reading()
	for try := 0; ; try++ {
		body, _, err := v.client.get(ctx, "/api/v1/log/subject?s="+url.QueryEscape(subject)+"&size="+strconv.FormatInt(at.Checkpoint.Size, 10), maxBatchAnswer)
		if err != nil {
			err = fmt.Errorf("%s: reading %s: %w", v.client.base(), subject, err)
		} else {
			files, err = at.check(subject, body)
		}
		if errors.Is(err, ErrMoved) && try == 0 {
			if at, err = v.reopen(ctx, at); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		cp := at.Checkpoint.Checkpoint
		return v.within(files), func() { v.keepDoc(cp, subject, body) }, nil
	}
}

// kept returns the documents of subject that online reads at the view's
// checkpoint kept: its own file, then those of batches (each checked
// when read: the first that proves is the subject's).
func (v *View) kept(subject string) ([]keptDoc, error) {
	cp := v.Checkpoint.Checkpoint
	var out []keptDoc
	body, err := os.ReadFile(v.client.cachePath(cp, subject))
	if err == nil {
		out = append(out, keptDoc{body: body})
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	v.batchOnce.Do(func() {
		v.batchKept = readKept(filepath.Dir(v.client.cachePath(cp, subject)), false)
	})
	if out = append(out, v.batchKept[subject]...); len(out) > 0 {
		return out, nil
	}
	return nil, fmt.Errorf("%w (size %d): run without --offline", ErrNotKept, cp.Size)
}

// readKept reads the documents kept in a tree's directory in batches,
// by subject; with single, those kept one a file too. What does not
// parse holds nothing (a read checks each document again).
func readKept(dir string, single bool) map[string][]keptDoc {
	kept := map[string][]keptDoc{}
	paths, _ := filepath.Glob(filepath.Join(dir, batchPrefix+"*.json"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// One batch document or more, one after the other.
		dec := jsontext.NewDecoder(bytes.NewReader(data))
		for {
			val, err := dec.ReadValue()
			if err != nil {
				break
			}
			var batch wireSubjects
			if json.Unmarshal(val, &batch) != nil {
				break
			}
			for _, raw := range batch.Subjects {
				var doc struct{ Subject string }
				if json.Unmarshal(raw, &doc) == nil {
					kept[doc.Subject] = append(kept[doc.Subject], keptDoc{body: raw})
				}
			}
		}
	}
	paths, _ = filepath.Glob(filepath.Join(dir, batchPrefix+"*"+compactSuffix))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		docs, _, err := translog.ParseSubjects(data)
		if err != nil {
			continue
		}
		for i := range docs {
			w := wireFromCompact(&docs[i])
			kept[w.Subject] = append(kept[w.Subject], keptDoc{doc: &w})
		}
	}
	if single {
		paths, _ = filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range paths {
			if strings.HasPrefix(filepath.Base(p), batchPrefix) {
				continue
			}
			data, err := os.ReadFile(p)
			var doc struct{ Subject string }
			if err == nil && json.Unmarshal(data, &doc) == nil && doc.Subject != "" {
				kept[doc.Subject] = append(kept[doc.Subject], keptDoc{body: data})
			}
		}
	}
	return kept
}

// keptDoc is a subject document kept: JSON (body), or decoded from a
// compact batch (doc).
type keptDoc struct {
	body []byte
	doc  *wireSubject
}

// compactSuffix ends the names of the files that keep compact batches
// (translog.SubjectsMedia).
const compactSuffix = ".subjects"

// batchPrefix begins the names of the files that keep a batch's
// documents (the others are named by their subject's hash).
const batchPrefix = "batch-"

// wireSubjects is POST /api/v1/log/subjects's answer.
type wireSubjects struct {
	Size     int64             `json:"size"`
	Subjects []json.RawMessage `json:"subjects"`
}

// errNoBatch says the server does not answer POST /api/v1/log/subjects
// (an older one, or a static host): subjects are read one by one.
var errNoBatch = errors.New("the server reads no batches of subjects")

// fetchBatch reads subjects in one request (POST /api/v1/log/subjects,
// at the view's tree: ?size=N) and checks each document as fetch does.
// It fails whole (errNoBatch when the server has no such reads), else it
// returns each subject's files or why they are refused, and keep, which
// keeps the documents of the subjects it is given (those judged). proved,
// if set, is given each subject's files as soon as they are proved, in
// turn, before the next document is checked.
func (v *View) fetchBatch(ctx context.Context, subjects []string, proved func([]index.MemFile)) ([][]index.MemFile, []error, func(ok []int), error) {
	at := v.reading()
	for try := 0; ; try++ {
		files, errs, keep, err := v.fetchBatchAt(ctx, at, subjects, proved)
		if errors.Is(err, ErrMoved) && try == 0 {
			if at, err = v.reopen(ctx, at); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		return files, errs, keep, err
	}
}

// batchAnswer is a batch read's answer: its status, whether it is of the
// compact encoding, and its body.
type batchAnswer struct {
	code    int
	status  string
	compact bool
	body    []byte
}

// postBatch asks for subjects in one request (POST
// /api/v1/log/subjects): at the tree of size leaves, or at the server's
// latest with size -1.
func (c *Client) postBatch(ctx context.Context, subjects []string, size int64) (*batchAnswer, error) {
	const path = "/api/v1/log/subjects"
	q := ""
	if size >= 0 {
		q = "?size=" + strconv.FormatInt(size, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base()+path+q, strings.NewReader(strings.Join(subjects, "\n")+"\n"))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/plain")
	// The compact encoding if the server has it; else JSON (an older
	// server's only answer).
	req.Header.Set("Accept", translog.SubjectsMedia+", application/json;q=0.5")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: reading %d subjects: %w", c.base(), len(subjects), err)
	}
	defer resp.Body.Close()
	buf := bytes.NewBuffer(make([]byte, 0, max(0, min(resp.ContentLength, maxBatchAnswer))+512))
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBatchAnswer+1)); err != nil {
		return nil, fmt.Errorf("%s: POST %s: %w", c.base(), path, err)
	}
	if buf.Len() > maxBatchAnswer {
		return nil, fmt.Errorf("%s: POST %s: %s: an answer of more than %d bytes for %d subjects: refused unread", c.base(), path, resp.Status, maxBatchAnswer, len(subjects))
	}
	return &batchAnswer{code: resp.StatusCode, status: resp.Status, compact: resp.Header.Get("Content-Type") == translog.SubjectsMedia, body: buf.Bytes()}, nil
}

// fetchBatchAt is fetchBatch at the tree of at.
func (v *View) fetchBatchAt(ctx context.Context, at *View, subjects []string, proved func([]index.MemFile)) ([][]index.MemFile, []error, func(ok []int), error) {
	const path = "/api/v1/log/subjects"
	var (
		a      *batchAnswer
		cdocs  []translog.SubjectDoc
		spans  [][2]int // the compact answer's documents, in body
		parsed bool
		err    error
	)
	// The batch's early read (earlyReads), if it is of this view's tree;
	// else a read at it.
	if r := v.early.take(subjects); r != nil && at == v {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		}
		if r.err == nil && r.a.code == http.StatusOK && r.a.compact {
			if d, sp, err := translog.ParseSubjects(r.a.body); err == nil && len(d) == len(subjects) && d[0].Size == at.Checkpoint.Size {
				a, cdocs, spans, parsed = r.a, d, sp, true
			}
		}
	}
	if a == nil {
		if a, err = v.client.postBatch(ctx, subjects, at.Checkpoint.Size); err != nil {
			return nil, nil, nil, err
		}
	}
	body := a.body
	switch {
	case a.code == http.StatusNotFound || a.code == http.StatusMethodNotAllowed:
		return nil, nil, nil, errNoBatch
	case a.code == http.StatusGone:
		return nil, nil, nil, fmt.Errorf("%s: POST %s: %s: %s: %w", v.client.base(), path, a.status, bytes.TrimSpace(body[:min(len(body), 512)]), ErrMoved)
	case a.code != http.StatusOK:
		return nil, nil, nil, fmt.Errorf("%s: POST %s: %s: %s", v.client.base(), path, a.status, bytes.TrimSpace(body[:min(len(body), 512)]))
	}
	files, errs := make([][]index.MemFile, len(subjects)), make([]error, len(subjects))
	var docs []wireSubject
	compact := a.compact
	if compact {
		// Nothing to decode but lengths: the files' bytes are slices of
		// the body.
		if !parsed {
			cdocs, spans, err = translog.ParseSubjects(body)
		}
		if err == nil && len(cdocs) != len(subjects) {
			err = fmt.Errorf("%d documents for %d subjects asked", len(cdocs), len(subjects))
		}
		if err != nil {
			return nil, nil, nil, &ProofError{URL: v.client.base(), What: fmt.Sprintf("%d subjects read at once", len(subjects)), Checkpoint: at.Note, Err: fmt.Errorf("the answer is not %d subject documents: %w", len(subjects), err)}
		}
		docs = make([]wireSubject, len(cdocs))
		for i := range cdocs {
			docs[i] = wireFromCompact(&cdocs[i])
		}
	}
	// Every document decoded in one pass, none copied (as a rule); when
	// that fails, each alone (rawDocs), to say which is not one.
	var whole struct {
		Subjects []wireSubject `json:"subjects"`
	}
	if compact {
	} else if err := jsonv2.Unmarshal(body, &whole); err == nil && len(whole.Subjects) == len(subjects) {
		docs = whole.Subjects
	} else {
		raw, err := rawDocs(body, len(subjects))
		if err != nil {
			return nil, nil, nil, &ProofError{URL: v.client.base(), What: fmt.Sprintf("%d subjects read at once", len(subjects)), Checkpoint: at.Note, Err: err}
		}
		docs = make([]wireSubject, len(subjects))
		for i, s := range subjects {
			if err := jsonv2.Unmarshal(raw[i], &docs[i]); err != nil {
				errs[i] = at.refuse(s, fmt.Errorf("its answer is not a subject document: %w", err))
			}
		}
	}
	for i, s := range subjects {
		if errs[i] != nil {
			continue
		}
		if files[i], errs[i] = at.checkDoc(s, &docs[i]); errs[i] == nil {
			files[i] = v.within(files[i])
			if proved != nil {
				proved(files[i])
			}
		}
	}
	cp := at.Checkpoint.Checkpoint
	keep := func(ok []int) {
		var kept []int
		for _, i := range ok {
			if errs[i] == nil {
				kept = append(kept, i)
			}
		}
		if len(kept) == len(subjects) {
			// All of them: the answer is the batch document to keep.
			v.keepDocs(cp, subjects, body, compact)
			return
		}
		if compact {
			names, some := make([]string, 0, len(kept)), translog.AppendSubjectsHeader(nil, cp.Size, len(kept))
			for _, i := range kept {
				names, some = append(names, subjects[i]), append(some, body[spans[i][0]:spans[i][1]]...)
			}
			v.keepDocs(cp, names, some, true)
			return
		}
		raw, err := rawDocs(body, len(subjects))
		if err != nil {
			return
		}
		var names []string
		var docs [][]byte
		for _, i := range kept {
			names, docs = append(names, subjects[i]), append(docs, raw[i])
		}
		v.keepDocs(cp, names, batchBody(cp, docs), false)
	}
	return files, errs, keep, nil
}

// wireFromCompact returns a document of the compact encoding as the
// JSON one decodes (its files' bytes not copied).
func wireFromCompact(d *translog.SubjectDoc) wireSubject {
	w := wireSubject{Subject: d.Subject, Size: d.Size, Count: d.Count, Files: make([]wireFile, len(d.Files)), Proof: d.Proof}
	for i, f := range d.Files {
		w.Files[i] = wireFile{Index: f.Index, entry: f.Entry, Content: f.Content, derived: f.Derived}
	}
	return w
}

// rawDocs returns the n documents of a batch's answer, undecoded.
func rawDocs(body []byte, n int) ([]jsontext.Value, error) {
	var batch struct {
		Subjects []jsontext.Value `json:"subjects"`
	}
	if err := jsonv2.Unmarshal(body, &batch); err != nil || len(batch.Subjects) != n {
		return nil, fmt.Errorf("the answer is not %d subject documents (%d; %v)", n, len(batch.Subjects), err)
	}
	return batch.Subjects, nil
}

// claimAll claims the loads of those of subjects no one claimed before
// (claim): the caller fills them in and finishes them.
func (v *View) claimAll(subjects []string) (claimed []string, loads []*subjectLoad) {
	for _, s := range subjects {
		if l, ok := v.claim(s); ok {
			claimed, loads = append(claimed, s), append(loads, l)
		}
	}
	return claimed, loads
}

// Batch reads: how many subjects one request asks for, and how many
// such requests run at once.
const (
	batchSize     = 64
	batchParallel = 4
)

// Prefetch reads subjects ahead of the reads that will ask for them: in
// batches (POST /api/v1/log/subjects, a few at once), each batch judged
// at once (see judge); from a server without batches, or offline, a few
// at a time. What fails is left for those reads to say.
func (v *View) Prefetch(ctx context.Context, subjects ...string) {
	claimed, loads := v.claimAll(subjects)
	// A subject's needs are of a lower rank: one rank's batches wait
	// for none of their own (their loads finish together).
	byRank := map[int][]int{}
	for i, s := range claimed {
		byRank[rank(s)] = append(byRank[rank(s)], i)
	}
	for r := range maxRank + 1 {
		var ss []string
		var ls []*subjectLoad
		for _, i := range byRank[r] {
			ss, ls = append(ss, claimed[i]), append(ls, loads[i])
		}
		sem := make(chan struct{}, batchParallel)
		var wg sync.WaitGroup
		for _, b := range batchSpans(len(ss)) {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				v.loadBatch(ctx, ss[b[0]:b[1]], ls[b[0]:b[1]])
			})
		}
		wg.Wait()
	}
}

// batchSpans splits n subjects of one rank into batches of about the
// same size (so that they share the cores evenly), at most batchSize
// each: each batch's first and end.
func batchSpans(n int) [][2]int {
	size := n
	if size > batchSize {
		k := (size + batchSize - 1) / batchSize
		size = (size + k - 1) / k
	}
	var out [][2]int
	for i := 0; i < n; i += size {
		out = append(out, [2]int{i, min(i+size, n)})
	}
	return out
}

// earlyReads are the first batch reads of a prefetch, asked with the
// checkpoint, before its size is known: at the server's latest tree (no
// ?size). The batch of the same subjects takes its read (fetchBatchAt)
// and uses it only if it is answered 200 in the compact encoding, parses,
// and is of the tree of the view's checkpoint (its checks are any
// batch's then); else it reads again at that tree. A round trip less
// before the first documents arrive.
type earlyReads struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	reads  map[string]*earlyRead // by the batch's subjects, a line each
}

// earlyRead is one early batch read, done once done is closed.
type earlyRead struct {
	done chan struct{}
	a    *batchAnswer
	err  error
}

// readEarly starts the batch reads that Prefetch(subjects) on a new view
// asks first (its lowest rank's first batchParallel batches), at the
// server's latest tree, once after is closed; nil if there are none.
func (c *Client) readEarly(ctx context.Context, subjects []string, after <-chan struct{}) *earlyReads {
	if len(subjects) == 0 {
		return nil
	}
	seen := map[string]bool{}
	low, byRank := maxRank+1, map[int][]string{}
	for _, s := range subjects {
		if !seen[s] {
			seen[s] = true
			r := rank(s)
			byRank[r], low = append(byRank[r], s), min(low, r)
		}
	}
	ss := byRank[low]
	spans := batchSpans(len(ss))
	ctx, cancel := context.WithCancel(ctx)
	e := &earlyReads{cancel: cancel, reads: map[string]*earlyRead{}}
	for _, b := range spans[:min(len(spans), batchParallel)] {
		batch := ss[b[0]:b[1]]
		r := &earlyRead{done: make(chan struct{})}
		e.reads[strings.Join(batch, "\n")] = r
		e.wg.Go(func() {
			defer close(r.done)
			select {
			case <-after:
			case <-ctx.Done():
				r.err = ctx.Err()
				return
			}
			r.a, r.err = c.postBatch(ctx, batch, -1)
		})
	}
	return e
}

// take returns the early read of a batch of subjects, once (nil if none).
func (e *earlyReads) take(subjects []string) *earlyRead {
	if e == nil {
		return nil
	}
	key := strings.Join(subjects, "\n")
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reads[key]
	delete(e.reads, key)
	return r
}

// end cancels the early reads not taken and waits for every one.
func (e *earlyReads) end() {
	if e != nil {
		e.cancel()
		e.wg.Wait()
	}
}

// maxRank is the highest rank.
const maxRank = 5

// rank orders subjects so that a subject's needs (index.Needs) are all
// of a lower rank: root; keys; packages and upstreams' declarations (all
// of them: "upstreams"); upstreams' packages and snapshots; labels and
// policies; anything else.
func rank(subject string) int {
	kind, rest, _ := strings.Cut(subject, " ")
	switch kind {
	case "root":
		return 0
	case "key", "keys":
		return 1
	case "package", "upstreams":
		return 2
	case "upstream":
		if strings.Contains(rest, " package ") {
			return 3
		}
		return 2
	case "snapshot":
		return 3
	case "label", "policy":
		return 4
	}
	return maxRank
}

// loadBatch fills in and finishes the loads of subjects, claimed by the
// caller: one request and one judgment for all, when the server reads
// batches.
func (v *View) loadBatch(ctx context.Context, subjects []string, loads []*subjectLoad) {
	var files [][]index.MemFile
	var errs []error
	var keep func(ok []int)
	// What the first document proved needs (the keys that signed it,
	// which most likely signed the others too) is read at once, while
	// the others are checked, not once they all are; judge reads the rest
	// of the batch's needs in one request. Those reads end before the
	// loads do.
	var early sync.WaitGroup
	finished := func(int) bool { return false } // finished before the end (refused)
	err := errNoBatch
	if !v.offline && !v.noBatch.Load() {
		var once sync.Once
		proved := func(files []index.MemFile) {
			once.Do(func() {
				var needs []string
				for _, x := range index.Needs(files) {
					if !slices.Contains(subjects, x) {
						needs = append(needs, x)
					}
				}
				if len(needs) > 0 {
					early.Go(func() { v.Prefetch(ctx, needs...) })
					// Their request leaves now: the goroutine that
					// sends it would wait until this batch is
					// checked (the other batches' checks hold the
					// other cores), 2-4 ms at 100k records.
					runtime.Gosched()
				}
			})
		}
		files, errs, keep, err = v.fetchBatch(ctx, subjects, proved)
		if errors.Is(err, errNoBatch) {
			v.noBatch.Store(true)
		}
	}
	switch {
	case errors.Is(err, errNoBatch):
		// One by one, a few at once, each finished as soon as it is
		// judged: one may need another of the batch (the root and a
		// key), whose load it waits for.
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for i, s := range subjects {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				l := loads[i]
				l.files, l.needs, l.err = v.fetchAndJudge(ctx, s)
				v.finish([]string{s}, []*subjectLoad{l})
			})
		}
		wg.Wait()
		early.Wait()
		v.filesLoaded(subjects, loads)
		return
	case err != nil:
		for _, l := range loads {
			l.err = err
		}
	default:
		// Judge those that were proved; say why the others were not.
		var ok []int
		var refused []string
		var refusedLoads []*subjectLoad
		for i := range subjects {
			if errs[i] == nil {
				ok = append(ok, i)
			} else {
				loads[i].err = errs[i]
				refused, refusedLoads = append(refused, subjects[i]), append(refusedLoads, loads[i])
			}
		}
		// Those refused are finished (forgotten) before the others are
		// judged: one of them that another needs (the root, which the
		// checkpoint's key needs) is then read again alone by that
		// judgment, not waited for here, where it would never finish.
		v.finish(refused, refusedLoads)
		finished = func(i int) bool { return errs[i] != nil }
		okSubjects, okFiles := make([]string, len(ok)), make([][]index.MemFile, len(ok))
		for k, i := range ok {
			okSubjects[k], okFiles[k] = subjects[i], files[i]
		}
		needs, jerrs := v.judge(ctx, okSubjects, okFiles)
		var judged []int
		for k, i := range ok {
			if loads[i].err = jerrs[k]; jerrs[k] == nil {
				loads[i].files, loads[i].needs = files[i], needs[k]
				judged = append(judged, i)
			}
		}
		keep(judged)
	}
	early.Wait()
	var rest []string
	var restLoads []*subjectLoad
	for i := range subjects {
		if !finished(i) {
			rest, restLoads = append(rest, subjects[i]), append(restLoads, loads[i])
		}
	}
	v.finish(rest, restLoads)
	v.filesLoaded(subjects, loads)
}

// filesLoaded adds the catalog's files of subjects loaded, here, on the
// cores that read them, not by the resolution that asks for them next,
// one by one (what fails to add is added again, and said, when asked).
func (v *View) filesLoaded(subjects []string, loads []*subjectLoad) {
	for i, l := range loads {
		if l.err == nil {
			v.files.Loaded(subjects[i], l.files)
		}
	}
}

// check checks a subject document against the view's checkpoint.
func (v *View) check(subject string, body []byte) ([]index.MemFile, error) {
	var doc wireSubject
	if err := jsonv2.Unmarshal(body, &doc); err != nil {
		return nil, v.refuse(subject, fmt.Errorf("its answer is not a subject document: %w", err))
	}
	return v.checkDoc(subject, &doc)
}

// checkDoc checks a subject document, decoded, against the view's
// checkpoint.
func (v *View) checkDoc(subject string, doc *wireSubject) ([]index.MemFile, error) {
	cp := v.Checkpoint.Checkpoint
	if doc.Size < cp.Size {
		// Asked at the tree of the checkpoint it signed, a server
		// answers at that tree or not at all (410): an answer at an
		// older tree is never a race (one that was a reader's would be
		// at a newer tree), but a server, or a proxy in front of it,
		// showing what it held before.
		return nil, v.refuse(subject, fmt.Errorf("answered at log size %d, older than the checkpoint's tree (size %d) it was asked at: a server answers at the tree it is asked at, or not at all", doc.Size, cp.Size))
	}
	if doc.Size != cp.Size {
		return nil, fmt.Errorf("%s: subject %q was answered at log size %d, the checkpoint read is of size %d: %w", v.client.base(), subject, doc.Size, cp.Size, ErrMoved)
	}
	return checkSubject(cp, subject, doc, func(err error) error { return v.refuse(subject, err) })
}

// checkSubject checks a subject document against a checkpoint and
// returns its files.
func checkSubject(cp checkpoint.Checkpoint, subject string, doc *wireSubject, refuse func(error) error) ([]index.MemFile, error) {
	if doc.Subject != subject {
		return nil, refuse(fmt.Errorf("the answer is about subject %q", doc.Subject))
	}
	if doc.Count != uint64(len(doc.Files)) {
		return nil, refuse(fmt.Errorf("the answer counts %d files and holds %d", doc.Count, len(doc.Files)))
	}
	var (
		value translog.Value
		out   = make([]index.MemFile, 0, len(doc.Files))
		last  = int64(-1)
	)
	for _, f := range doc.Files {
		if f.Index <= last || f.Index >= cp.Size {
			return nil, refuse(fmt.Errorf("leaf %d is out of order or past the tree of %d leaves", f.Index, cp.Size))
		}
		last = f.Index
		text := f.text()
		e, err := translog.ParseEntry(text)
		if err != nil {
			return nil, refuse(fmt.Errorf("leaf %d: %w", f.Index, err))
		}
		// An entry the compact decoder made from the bytes names their
		// sha256 (hashed there): not hashed again.
		if int64(len(f.Content)) != e.Size || !f.derived && sha256.Sum256(f.Content) != e.SHA256 {
			return nil, refuse(fmt.Errorf("leaf %d (%s): the bytes served are not the ones its entry names (sha256 %x, %d bytes)", f.Index, e.Path, e.SHA256, e.Size))
		}
		if !slices.Contains(index.SubjectsOf(e.Path), subject) {
			return nil, refuse(fmt.Errorf("leaf %d is %s, a file of subjects %q", f.Index, e.Path, index.SubjectsOf(e.Path)))
		}
		value = value.Extend(f.Index, translog.LeafHash(text))
		out = append(out, index.MemFile{Path: e.Path, Data: f.Content, Index: f.Index, Commit: e.Commit, Time: time.Unix(e.Time, 0).UTC()})
	}
	var want *translog.Value
	if value.Count > 0 {
		want = &value
	}
	if err := translog.VerifyMap(cp.Map, subject, want, doc.Proof); err != nil {
		return nil, refuse(fmt.Errorf("the files served are not all of the subject's, or not its files: %w", err))
	}
	index.ParseFiles(out) // parsed once, for every judgment that reads them
	return out, nil
}

func (v *View) refuse(subject string, err error) error {
	return &ProofError{URL: v.client.base(), What: fmt.Sprintf("subject %q", subject), Checkpoint: v.Note, Err: err}
}

// Catalog returns the view's catalog: the index as the checkpoint shows
// it, read subject by subject as the catalog asks (index.MemFiles), with
// the index's own code. A catalog read that needs a listing no subject
// proves (every label, every key) fails with index.ErrUnlisted.
func (v *View) Catalog() (*index.Catalog, error) {
	v.catOnce.Do(func() {
		v.cat, v.catErr = index.NewCatalog(v.files, v.client.base(), v.Checkpoint.Head)
	})
	return v.cat, v.catErr
}

// withFiles makes v's catalog files (v.files, which the loads of batches
// fill in as they finish) and returns v.
func (v *View) withFiles() *View {
	v.files = &index.MemFiles{Load: func(subject string) ([]index.MemFile, error) {
		return v.Subject(v.ctx, subject)
	}}
	return v
}

// Record is a record proved included in the log: its leaf, entry and
// bytes, and the inclusion path to the view's checkpoint.
type Record struct {
	ID      string
	Index   int64
	Entry   translog.Entry
	Text    []byte // the entry line
	Content []byte
	Proof   tlog.RecordProof
	// Checkpoint is the signed checkpoint (with cosignatures) the proof
	// leads to.
	Checkpoint []byte
}

// Record finds a record by id and proves it is in the log: its bytes
// match its entry, and the entry's leaf hash leads, by an inclusion path
// computed from the server's tiles, to the checkpoint's root. A record
// the log does not hold, or tiles with other hashes, are a *ProofError.
func (v *View) Record(ctx context.Context, id string) (*Record, error) {
	if v.offline {
		return nil, fmt.Errorf("record %.16s: an inclusion proof reads the server's tiles: run without --offline", id)
	}
	if !isHex(id, 64) {
		return nil, fmt.Errorf("record %q: want its id, 64 lowercase hex digits", id)
	}
	body, _, err := v.client.get(ctx, "/api/v1/log/record/"+id, maxBatchAnswer)
	if err != nil {
		return nil, fmt.Errorf("%s: reading record %.16s: %w", v.client.base(), id, err)
	}
	refuse := func(err error) error {
		return &ProofError{URL: v.client.base(), What: "record " + id, Checkpoint: v.Note, Err: err}
	}
	var f wireFile
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, refuse(fmt.Errorf("its answer is not a log file: %w", err))
	}
	cp := v.Checkpoint.Checkpoint
	if f.Index < 0 || f.Index >= cp.Size {
		return nil, fmt.Errorf("%s: record %.16s is at leaf %d, past the checkpoint's %d leaves: %w", v.client.base(), id, f.Index, cp.Size, ErrMoved)
	}
	e, err := translog.ParseEntry([]byte(f.Entry))
	if err != nil {
		return nil, refuse(err)
	}
	if sha256.Sum256(f.Content) != e.SHA256 || int64(len(f.Content)) != e.Size {
		return nil, refuse(fmt.Errorf("the bytes served are not the ones its entry names"))
	}
	rec, err := record.Parse(f.Content)
	if err != nil || rec.ID != id {
		return nil, refuse(fmt.Errorf("the file served at %s is not record %s", e.Path, id))
	}
	hr := torchwood.TileHashReaderWithContext(ctx, cp.Tree(), v.tiles)
	proof, err := tlog.ProveRecord(cp.Size, f.Index, hr)
	if notServed(err) {
		return nil, fmt.Errorf("%s: proving record %.16s is leaf %d: %w", v.client.base(), id, f.Index, err)
	}
	if err == nil {
		err = tlog.CheckRecord(proof, cp.Size, cp.Root, f.Index, translog.LeafHash([]byte(f.Entry)))
	}
	if err != nil {
		return nil, refuse(fmt.Errorf("leaf %d is not in the log the checkpoint signs: %w", f.Index, err))
	}
	return &Record{ID: id, Index: f.Index, Entry: e, Text: []byte(f.Entry), Content: f.Content, Proof: proof, Checkpoint: v.Note}, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// Older opens a signed checkpoint of the view's log that is not newer
// than the view's (a lock's, say) and checks it as the view's was: a key
// the index grants the checkpoint scope (not revoked, its grant live at
// the checkpoint's time) signed it, its tree is the view's or one that
// the view's extends (a consistency proof from the tiles), and its last
// leaf is the map leaf of its cairn-map and cairn-head. One
// newer than the view's, or of another tree, is a security error: the
// server rolled its log back, or shows another history.
func (v *View) Older(ctx context.Context, note []byte) (*checkpoint.Signed, error) {
	c := v.client
	origin := checkpoint.Origin(c.Introduction)
	claimed, err := checkpoint.Claimed(note)
	if err != nil {
		return nil, err
	}
	if claimed.Origin != origin {
		return nil, fmt.Errorf("the checkpoint is of %s, not of %s: it signs another index", claimed.Origin, origin)
	}
	// The view's key first; else every key granted the checkpoint scope.
	st, err := v.judged(ctx, "key "+mustHex(v.Checkpoint.Key))
	if err != nil {
		return nil, err
	}
	cands := []*index.Key{}
	if k, _ := st.Key(v.Checkpoint.Key); k != nil {
		cands = append(cands, k)
	}
	sc, k, err := openBy(note, origin, cands)
	if err != nil {
		all, err2 := v.judged(ctx, "keys")
		if err2 != nil {
			return nil, err2
		}
		cands = cands[:0]
		for _, f := range v.subjectFiles("keys") {
			s, _ := index.SubjectOf(f.Path)
			id, err := keys.IDFromHex(strings.TrimPrefix(s, "key "))
			if err != nil {
				continue
			}
			if k, _ := all.Key(id); k != nil && !slices.ContainsFunc(cands, func(c *index.Key) bool { return c.ID == id }) {
				cands = append(cands, k)
			}
		}
		if sc, k, err = openBy(note, origin, cands); err != nil {
			return nil, err
		}
	}
	if err := k.MayCheckpoint(sc.Time); err != nil {
		return nil, err
	}
	now := v.Checkpoint.Checkpoint
	inconsistent := func(problem string, err error) error {
		return &InconsistentError{URL: c.base(), Problem: problem, Stored: note, Served: v.Note, Err: err}
	}
	switch {
	case sc.Size > now.Size:
		return nil, inconsistent("rollback", nil)
	case sc.Size == now.Size && sc.Root != now.Root:
		return nil, inconsistent("split view", nil)
	case sc.Size == now.Size:
		// The same tree, so the same last leaf: the view's map leaf.
		if _, err := CheckMapLeaf(sc.Checkpoint, v.MapLeaf.Text, v.MapLeaf.Proof); err != nil {
			return nil, &ProofError{URL: c.base(), What: "the older checkpoint", Checkpoint: note, Err: err}
		}
	default:
		// Offline, from the tiles kept when this machine proved it
		// online (keptTiles).
		if sc.Size > 0 {
			hr := torchwood.TileHashReaderWithContext(ctx, now.Tree(), v.tiles)
			proof, err := tlog.ProveTree(now.Size, sc.Size, hr)
			if errors.Is(err, ErrTileNotKept) {
				return nil, fmt.Errorf("the checkpoint of size %d is older than the one this machine verified (size %d), and proving one extends the other reads %w", sc.Size, now.Size, err)
			}
			if err == nil {
				err = tlog.CheckTree(proof, now.Size, now.Root, sc.Size, sc.Root)
			}
			if err != nil {
				return nil, inconsistent("inconsistent", err)
			}
		}
		// Its tree is a prefix of the view's. Its last bundle and right
		// edge are read from those kept for its tree (when this machine
		// opened it online), else from the server.
		if _, err := proveMapLeaf(ctx, newTileCache(c.tiles(v.server, sc.Checkpoint)), sc.Checkpoint); err != nil {
			var mle *MapLeafError
			if errors.As(err, &mle) {
				return nil, &ProofError{URL: c.base(), What: "the older checkpoint", Checkpoint: note, Err: err}
			}
			if errors.Is(err, ErrTileNotKept) {
				return nil, fmt.Errorf("the checkpoint of size %d is older than the one this machine verified (size %d), and proving its map leaf reads %w", sc.Size, now.Size, err)
			}
			return nil, fmt.Errorf("%s: %w", c.base(), err)
		}
	}
	return sc, nil
}

// openBy opens note with the first of cands that signed it.
func openBy(note []byte, origin string, cands []*index.Key) (*checkpoint.Signed, *index.Key, error) {
	pubs := make([]ed25519.PublicKey, len(cands))
	for i, k := range cands {
		pubs[i] = k.Pub
	}
	sc, err := checkpoint.Open(note, origin, pubs)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range cands {
		if k.ID == sc.Key {
			return sc, k, nil
		}
	}
	return nil, nil, fmt.Errorf("checkpoint signed by key %s, which is not among those tried", sc.Key)
}

// subjectFiles returns the files of a subject read before.
func (v *View) subjectFiles(subject string) []index.MemFile {
	if l := v.loaded(subject); l != nil {
		return l.files
	}
	return nil
}

func mustHex(id string) string {
	h, _ := keys.HexFromID(id)
	return h
}
