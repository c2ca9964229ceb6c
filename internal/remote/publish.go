package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/torchwood"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/witness"
)

// CheckpointKey is where a published log's signed checkpoint lives,
// beside its tile/ tree: the C2SP tlog-tiles layout, as a cairn server
// serves it under /log/.
const CheckpointKey = "checkpoint"

// PublishOptions say how PublishLog signs and writes.
type PublishOptions struct {
	// Key, if set, signs a fresh checkpoint of main's verified head (a
	// key the root granted the checkpoint scope). Without it, the
	// checkpoint that cairn serve signed last in this repository is
	// published, with the cosignatures it got.
	Key      keys.Signer
	Now      func() time.Time // default time.Now
	Parallel int              // tiles written at once (default 8)
	// Witnesses are asked to cosign the checkpoint Key signs before it is
	// published (C2SP tlog-witness), as cairn serve's are: clients that
	// trust them refuse a checkpoint below their quorum.
	Witnesses []witness.Endpoint
	Client    *http.Client // the witnesses' (default transport.Client())
	// Check reads every tile and entry bundle of the tree the store
	// holds, not only those past it, and rewrites those missing or not
	// the log's (a copy damaged, cut short or partly deleted).
	Check bool
}

// Published reports a PublishLog.
type Published struct {
	To    string `json:"to"`
	From  int64  `json:"from"`  // the tree size published before (0: none)
	Size  int64  `json:"size"`  // the tree size published now
	Head  string `json:"head"`  // the git head its checkpoint signs
	Tiles int    `json:"tiles"` // hash tiles and entry bundles written
	// Checked is how many of them Check read; those of the log's already
	// were not written again.
	Checked int `json:"checked,omitempty"`
	// Kept says the store held a checkpoint of the same tree signed
	// later than this one: it was left in place (KeptNewer says so).
	Kept bool `json:"kept,omitempty"`
	// Cosigned are the witnesses that cosigned the checkpoint; Refused
	// says, for each that did not, why (it was published without theirs).
	Cosigned   []string `json:"cosigned,omitempty"`
	Refused    []string `json:"refused,omitempty"`
	Checkpoint []byte   `json:"-"` // the checkpoint this publisher offered
}

// cosignForPublish asks each of o's witnesses to cosign note (prove
// proves its tree from an older size), one at a time, each with a proof
// from the size it cosigned last (it says which when asked from none),
// and returns note
// with the cosignatures that came, noting in out who cosigned and why the
// others did not. A witness that holds another tree of this size, or a
// larger one, does not cosign: a split view it caught.
func cosignForPublish(ctx context.Context, o PublishOptions, origin string, note []byte, prove witness.ProveFunc, out *Published) ([]byte, error) {
	if len(o.Witnesses) == 0 {
		return note, nil
	}
	if o.Key == nil {
		return nil, fmt.Errorf("witnesses cosign a checkpoint signed now: give --checkpoint-key with --witness")
	}
	hc := o.Client
	if hc == nil {
		hc = transport.Client()
	}
	for _, w := range o.Witnesses {
		p, err := witness.NewPolicy([]string{w.VKey}, 1)
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", w.URL, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		cos, err := witness.Cosign(wctx, hc, w.URL, 0, note, prove)
		cancel()
		if err == nil {
			own, _ := witness.OwnLine(p, origin, note, cos)
			if own == nil {
				err = fmt.Errorf("its answer holds no valid cosignature by its key %s", w.VKey)
			} else if note, err = witness.AppendCosignatures(note, own); err != nil {
				return nil, err
			}
		}
		if err != nil {
			out.Refused = append(out.Refused, fmt.Sprintf("%s: %v", w.URL, err))
			continue
		}
		out.Cosigned = append(out.Cosigned, w.URL)
	}
	return note, nil
}

// KeptNewer is what a publish says when the store's checkpoint of the
// same tree, signed later, was kept (Published.Kept).
const KeptNewer = "the store holds a newer checkpoint of this tree; kept"

// newerOfSameTree reports whether held (a checkpoint in the store) is of
// the same tree as offered, signed later: writing offered over it would
// take the published log's time back.
func newerOfSameTree(held, offered checkpoint.Checkpoint) bool {
	return held.Origin == offered.Origin && held.Size == offered.Size && held.Root == offered.Root && held.Time.After(offered.Time)
}

// PublishLog writes main's transparency log, verified, to dst as static
// files: the C2SP tlog-tiles layout (checkpoint, tile/L/N…,
// tile/entries/N…, the paths a cairn server serves under /log/), so that
// a static file server or a CDN in front of an object store serves light
// clients, tlog clients written elsewhere, and the full replicas of a
// plain git host (Remote.Log) without a cairn server. name is what
// messages call dst.
//
// Tiles are immutable: only those the published tree lacks are written
// (partial tiles at their width, as the spec names them), each object
// made visible whole by its store (an S3 PUT, a file renamed into
// place); the checkpoint is written last, so that a reader never sees a
// checkpoint whose tiles are missing. A store that holds a checkpoint of
// another index, of a larger tree or of another history is refused:
// publishing there would roll back or fork what its readers verified;
// one of the same tree signed later is kept (Published.Kept), so the
// published time never goes back.
// One publisher at a time per store: the checkpoint is read again just
// before it is written, and a larger one found there is left in place,
// but two publishers racing within that moment are not kept apart.
func PublishLog(ctx context.Context, r *index.Repo, dst *gcblob.Bucket, name string, o PublishOptions) (*Published, error) {
	res, err := r.Verify(ctx, false)
	if err != nil {
		return nil, err
	}
	if res.LogErr != nil {
		return nil, fmt.Errorf("main's transparency log: %w", res.LogErr)
	}
	st, err := r.StoreOf(r.Main())
	if err != nil {
		return nil, fmt.Errorf("main's transparency log: %w", err)
	}
	origin := checkpoint.Origin(r.Config.Introduction)
	var note []byte
	var signed checkpoint.Checkpoint
	if o.Key != nil {
		// The log and map of main's verified head, read as one: the head
		// before and after the map (the log only grows).
		var c checkpoint.Checkpoint
		for range 3 {
			head := st.Head()
			m, err := st.Map()
			if err != nil {
				return nil, fmt.Errorf("main's transparency log: %w", err)
			}
			if st.Head() == head {
				now := time.Now
				if o.Now != nil {
					now = o.Now
				}
				c = checkpoint.Checkpoint{Origin: origin, Size: m.Size, Root: m.Root, Map: m.Map.Root(), Head: head, Time: now().UTC().Truncate(time.Second)}
				break
			}
		}
		if c.Head == "" {
			return nil, fmt.Errorf("main's transparency log kept moving while it was read: try again")
		}
		if note, err = checkpoint.Sign(c, o.Key); err != nil {
			return nil, err
		}
	} else {
		path := filepath.Join(r.LocalDir(), "checkpoint")
		if note, err = os.ReadFile(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no checkpoint to publish: cairn serve has signed none in %s (%s): sign one with --checkpoint-key KEY, a key the root granted the checkpoint scope", r.Dir, path)
		} else if err != nil {
			return nil, err
		}
	}
	// What is published is checked as a client will check it: signed by
	// a key granted the checkpoint scope, of a head the verified history
	// holds, of the tree the log gives there.
	sc, err := OpenCheckpoint(ctx, r, st.Head(), r.Config.Introduction, note)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint to publish: %w", err)
	}
	signed = sc.Checkpoint
	if signed.Size > st.Size() {
		return nil, fmt.Errorf("the checkpoint to publish signs %d leaves, main's log holds %d: verify main (cairn verify) and publish again", signed.Size, st.Size())
	}
	if root, err := st.TreeHash(signed.Size); err != nil {
		return nil, fmt.Errorf("main's transparency log: %w", err)
	} else if root != signed.Root {
		return nil, fmt.Errorf("the checkpoint to publish signs root %x at %d leaves, main's log has %x there: it is of another history; refusing to publish it", signed.Root[:], signed.Size, root[:])
	}
	out := &Published{To: name, Size: signed.Size, Head: signed.Head}
	prove := func(old int64) (tlog.TreeProof, error) { return st.ProveTree(old, signed.Size) }
	if note, err = cosignForPublish(ctx, o, origin, note, prove, out); err != nil {
		return nil, err
	}
	out.Checkpoint = note

	// What the store holds already.
	old, err := dst.ReadAll(ctx, CheckpointKey)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
	case err != nil:
		return nil, fmt.Errorf("%s: reading %s: %w", name, CheckpointKey, err)
	default:
		prev, err := checkpoint.Claimed(old)
		if err != nil {
			return nil, fmt.Errorf("%s holds a %s that is not a cairn checkpoint (%v): publish to an empty store, or remove it if it is yours", name, CheckpointKey, err)
		}
		if prev.Origin != origin {
			return nil, fmt.Errorf("%s holds the log of another index (%s), not of this one (%s): publish each index's log to a store (or a prefix) of its own", name, prev.Origin, origin)
		}
		if prev.Size > signed.Size {
			return nil, fmt.Errorf("%s holds a checkpoint of %d leaves (head %s), past the %d of this copy's checkpoint: publishing would roll its readers back; pull this copy first", name, prev.Size, prev.Head, signed.Size)
		}
		if root, err := st.TreeHash(prev.Size); err != nil {
			return nil, fmt.Errorf("main's transparency log: %w", err)
		} else if root != prev.Root {
			return nil, fmt.Errorf("%s holds a checkpoint of another history (root %x at %d leaves, head %s; this copy's log has %x there): refusing to publish over it", name, prev.Root[:], prev.Size, prev.Head, root[:])
		}
		out.From = prev.Size
		if newerOfSameTree(prev, signed) {
			out.Kept = true
			if !o.Check {
				return out, nil
			}
		}
	}

	// The tiles the published tree lacks (with Check, every tile), then
	// the checkpoint.
	from := out.From
	if o.Check {
		from = 0
	}
	var paths []string
	for _, t := range tlog.NewTiles(torchwood.TileHeight, from, signed.Size) {
		paths = append(paths, torchwood.TilePath(t))
		if t.L == 0 {
			paths = append(paths, torchwood.TilePath(tlog.Tile{H: t.H, L: -1, N: t.N, W: t.W}))
		}
	}
	n := o.Parallel
	if n <= 0 {
		n = 8
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		first   error
		next    = make(chan string)
		written atomic.Int64
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(n, len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				wrote, err := publishTile(ctx, st.ReadTile, dst, p, o.Check)
				if wrote {
					written.Add(1)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", name, err)
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, p := range paths {
		select {
		case next <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out.Tiles = int(written.Load())
	if o.Check {
		out.Checked = len(paths)
	}
	if out.Kept {
		return out, nil // a newer checkpoint of the tree stays
	}
	if testHookBeforeCheckpoint != nil {
		testHookBeforeCheckpoint()
	}
	// Another publisher may have written a larger tree meanwhile: never
	// write over it (its readers would see this one as a rollback).
	if now, err := dst.ReadAll(ctx, CheckpointKey); err == nil && !bytes.Equal(now, old) {
		if c, err := checkpoint.Claimed(now); err == nil && c.Origin == origin && c.Size > signed.Size {
			return nil, fmt.Errorf("%s: another publisher wrote a checkpoint of %d leaves while this one wrote %d: its stays; publish from one place at a time", name, c.Size, signed.Size)
		} else if err == nil && newerOfSameTree(c, signed) {
			out.Kept = true
			return out, nil
		}
	}
	if err := writeObject(ctx, dst, CheckpointKey, note, "text/plain; charset=utf-8", "no-cache"); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// testHookBeforeCheckpoint, if set, runs in PublishLog after the tiles
// are written and before the checkpoint is read again and written: where
// a test lets another publisher get ahead.
var testHookBeforeCheckpoint func()

// publishTile writes the tile at path (read by read) to dst; with check,
// only if dst does not hold those bytes there already. wrote says
// whether it wrote.
func publishTile(ctx context.Context, read func(string) ([]byte, error), dst *gcblob.Bucket, path string, check bool) (wrote bool, err error) {
	data, err := read(path)
	if err != nil {
		return false, fmt.Errorf("main's transparency log: %w", err)
	}
	if check {
		if held, err := dst.ReadAll(ctx, path); err == nil && bytes.Equal(held, data) {
			return false, nil
		}
	}
	return true, writeObject(ctx, dst, path, data, "application/octet-stream", "public, max-age=31536000, immutable")
}

// writeObject writes data at key: visible whole or not at all (the
// store's writer commits on Close; an error aborts it).
func writeObject(ctx context.Context, dst *gcblob.Bucket, key string, data []byte, contentType, cacheControl string) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := dst.NewWriter(wctx, key, &gcblob.WriterOptions{ContentType: contentType, CacheControl: cacheControl})
	if err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	if _, err := w.ReadFrom(bytes.NewReader(data)); err != nil {
		cancel() // aborts the write: nothing becomes visible
		w.Close()
		return fmt.Errorf("writing %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}
