package proof

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/translog"
)

// ErrNoCheckpoint is the parent of FromRepo's error for a repository
// that holds no signed checkpoint to prove against.
var ErrNoCheckpoint = errors.New("no signed checkpoint to prove against")

// Made is a proof FromRepo made: the record it proves, the checkpoint it
// leads to, and where that checkpoint came from.
type Made struct {
	Proof      *translog.Proof
	ID         string // the record's id
	Checkpoint checkpoint.Checkpoint
	Source     string // "this repository's server" or "remote NAME"
}

// ServedCheckpoint is where a repository keeps the latest checkpoint its
// server signed, with the cosignatures it got (cairn serve
// --checkpoint-key).
func ServedCheckpoint(r *index.Repo) string { return filepath.Join(r.LocalDir(), "checkpoint") }

// FromRepo makes the proof of the record id (or a unique prefix of at
// least 8 hex digits) of r's main, from a log r computed and a signed
// checkpoint r holds that covers it: the one r's server signed, else the
// last one pulled from each remote, in turn. It checks the proof against
// r's verified keys before returning it (see TrustOf; no witness quorum:
// the server or the pull judged it).
func FromRepo(ctx context.Context, r *index.Repo, id string) (*Made, error) {
	f, err := r.FindRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	data, path, err := r.Record(ctx, f.ID)
	if err != nil {
		return nil, err
	}
	type source struct {
		name string
		line index.Line
		note []byte
	}
	var sources []source
	note, err := os.ReadFile(ServedCheckpoint(r))
	switch {
	case err == nil:
		sources = append(sources, source{"this repository's server", r.Main(), note})
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	rms, err := remote.List(r)
	if err != nil {
		return nil, err
	}
	for _, rm := range rms {
		if rm.Introduction != r.Config.Introduction {
			continue
		}
		note, err := rm.LastCheckpoint(r)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sources = append(sources, source{"remote " + rm.Name, rm.Line(r), note})
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("%w in %s: its server signs none (cairn serve --checkpoint-key KEY), and no remote's checkpoint was pulled (cairn pull)", ErrNoCheckpoint, r.Dir)
	}
	trust, err := TrustOf(ctx, r)
	if err != nil {
		return nil, err
	}
	// Each checkpoint is tried with its line's log, then main's (which
	// holds a remote's history once main follows it); a proof is made
	// from the first that covers the record. If none does, a record newer
	// than a checkpoint is the error to report, then one a log lacks, then
	// a checkpoint of another log.
	var notCovered, missing, otherLog error
	for _, s := range sources {
		lines := []index.Line{s.line}
		if s.line.Marker != r.Main().Marker {
			lines = append(lines, r.Main())
		}
		for _, l := range lines {
			// A line's log follows its verification: bring it to the
			// line's verified head (a pull verifies the remote's incoming
			// line, then moves the line's marker; its log catches up here).
			if _, err := r.VerifyLine(ctx, l, false); err != nil {
				return nil, err
			}
			st, err := r.StoreOf(l)
			if err != nil {
				return nil, err
			}
			p, err := Make(st, path, data, s.note)
			if err == nil {
				var proven *Proven
				if proven, err = Verify(p.Marshal(), trust); err == nil {
					return &Made{Proof: p, ID: f.ID, Checkpoint: proven.Checkpoint, Source: s.name}, nil
				}
			}
			err = fmt.Errorf("against the checkpoint of %s: %w", s.name, err)
			switch {
			case errors.Is(err, ErrNotCovered):
				notCovered = cmp.Or(notCovered, err)
			case errors.Is(err, ErrOtherLog):
				otherLog = cmp.Or(otherLog, err)
			default:
				missing = cmp.Or(missing, err)
			}
		}
	}
	return nil, fmt.Errorf("proving record %s (%s): %w", f.ID, path, cmp.Or(notCovered, missing, otherLog))
}

// TrustOf returns the trust of r's verified main: its index, and the keys
// its root granted the checkpoint scope by the verified head, each
// allowed to have signed only while a grant of it was live; a key revoked
// since only a tree that ends before its revocation, as main's log places
// it, which main's log holds or the witness quorum cosigned
// (index.Key.MayHaveCheckpointed). It requires no witness.
func TrustOf(ctx context.Context, r *index.Repo) (Trust, error) {
	res, err := r.Verified(ctx)
	if err != nil {
		return Trust{}, fmt.Errorf("the index does not verify, so its keys are not trusted: %w", err)
	}
	if res.Head == "" {
		return Trust{}, fmt.Errorf("%s has no verified history, so no log keys: pull first, or name the log keys", r.Dir)
	}
	granted, err := r.KeysGrantedEver(ctx, res.Head, "checkpoint")
	if err != nil {
		return Trust{}, err
	}
	st, err := r.StoreOf(r.Main())
	if err != nil {
		return Trust{}, err
	}
	for _, k := range granted {
		// A revocation main's log does not hold (yet) stays unplaced:
		// the key's checkpoints are then all refused.
		if err := k.PlaceRevocationInLog(st); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Trust{}, err
		}
	}
	held := func(size int64, root tlog.Hash) bool {
		if size > st.Size() {
			return false
		}
		h, err := st.TreeHash(size)
		return err == nil && h == root
	}
	return TrustOfKeys(r.Config.Introduction, granted, held, fmt.Sprintf("%s at %.12s", r.Dir, res.Head)), nil
}

// TrustOfKeys returns the trust of the index introduced by intro whose
// root granted ks the checkpoint scope (revoked ones included, their
// revocations placed in the log: index.Key.PlaceRevocation), as where
// (a replica and its head) read them. held says whether the verifier's
// own verified log holds the tree of size leaves and root root; a
// verifier with no log (a light client, which proved the keys' files
// and their leaves) passes nil, and then trusts a key revoked since only
// for a tree its witness quorum cosigned.
func TrustOfKeys(intro string, ks []*index.Key, held func(size int64, root tlog.Hash) bool, where string) Trust {
	origin := checkpoint.Origin(intro)
	t := Trust{Introduction: intro}
	byID := map[string]*index.Key{}
	for _, k := range ks {
		t.LogKeys = append(t.LogKeys, LogKey{Origin: origin, Key: k.Pub})
		byID[k.ID] = k
	}
	t.MaySign = func(id string, c checkpoint.Checkpoint, witnessed bool) error {
		k := byID[id]
		if k == nil {
			return fmt.Errorf("key %s is not granted the checkpoint scope in %s", id, where)
		}
		h := held != nil && held(c.Size, c.Root)
		return k.MayHaveCheckpointed(c.Time, c.Size, h, witnessed)
	}
	return t
}
