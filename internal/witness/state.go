package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/safefile"
)

// Files of a witness's state directory.
const (
	stateName = "witness.json" // the logs, their keys and latest cosigned trees
	lockName  = "lock"         // held while the state is read and changed
)

// Log is what a witness knows of one log: the keys it trusts to sign the
// log's checkpoints, and the latest tree it cosigned (size 0 and the
// empty tree's hash before its first).
type Log struct {
	Origin string    `json:"origin"`
	Keys   []string  `json:"keys"` // note verifier keys (vkeys) of the log's signers
	Size   int64     `json:"size"`
	Hash   tlog.Hash `json:"hash"`
	// Checkpoint is the text of the latest checkpoint cosigned ("" before
	// the first): the witness's evidence when the log later contradicts it.
	Checkpoint string `json:"checkpoint,omitempty"`
	// Audit, for a cairn index's log (origin cairn.dev/index/…), is the
	// URL of a cairn server of that index: the witness keeps a full
	// replica of it and cosigns only a tree its own verified log holds
	// (see Auditor). "" for a log witnessed by its tree alone.
	Audit string `json:"audit,omitempty"`
}

// CairnOriginPrefix starts the origin of every cairn index's log
// (docs/transparency.md, "The checkpoint"): such a log is held to one map
// per tree, and may be audited.
const CairnOriginPrefix = "cairn.dev/index/"

// Tree is the log's latest cosigned tree.
func (l Log) Tree() tlog.Tree { return tlog.Tree{N: l.Size, Hash: l.Hash} }

// verifiers returns the note verifiers of the log's keys.
func (l Log) verifiers() (note.Verifiers, error) {
	var vs []note.Verifier
	for _, k := range l.Keys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("witness state: log %s: key %q: %w", l.Origin, k, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// emptyTreeHash is the RFC 6962 hash of the empty tree, SHA-256 of no
// bytes: the tree a witness starts a log at.
var emptyTreeHash = tlog.Hash(sha256.Sum256(nil))

// stateFile is the state file's content.
type stateFile struct {
	Version int   `json:"version"`
	Logs    []Log `json:"logs"` // sorted by origin
}

// State is a witness's durable memory: the logs it witnesses, in one
// file of a directory. Every change is made under the directory's lock
// (an flock: one request of one process at a time, across processes),
// written to a temporary file that is synced and renamed into place, the
// directory synced after, so that a crash leaves the old state or the new
// one. It is read afresh under the lock for every change, so that `cairn
// witness add-log` may change it while a witness serves.
type State struct {
	dir string
}

// OpenState opens the state kept in dir, making the directory and an
// empty state when there is none.
func OpenState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	s := &State{dir: dir}
	err := s.change(func(*stateFile) error { return nil })
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the state's directory.
func (s *State) Dir() string { return s.dir }

// Logs returns the logs the witness witnesses, sorted by origin.
func (s *State) Logs() ([]Log, error) {
	var logs []Log
	err := s.change(func(f *stateFile) error {
		logs = f.Logs
		return errUnchanged
	})
	return logs, err
}

// Log returns what the witness knows of the log named by origin, or an
// error wrapping ErrUnknownLog.
func (s *State) Log(origin string) (Log, error) {
	var l Log
	err := s.change(func(f *stateFile) error {
		i, ok := find(f, origin)
		if !ok {
			return fmt.Errorf("%w: %s (cairn witness add-log adds it)", ErrUnknownLog, origin)
		}
		l = f.Logs[i]
		return errUnchanged
	})
	return l, err
}

// AddLog makes the witness witness the log named by origin, whose
// checkpoints are signed by the keys named by vkeys (C2SP signed-note
// verifier keys, "name+hash+base64"); for a log it already witnesses, the
// keys are added to its keys and its cosigned tree is kept. A log is
// never removed, nor its tree reset: a witness that forgot a log would
// cosign a split view of it.
func (s *State) AddLog(origin string, vkeys ...string) (Log, error) {
	if !validName(origin) {
		return Log{}, fmt.Errorf("log origin %q: want a non-empty name without spaces or '+'", origin)
	}
	if len(vkeys) == 0 {
		return Log{}, fmt.Errorf("log %s: name at least one key that signs its checkpoints", origin)
	}
	for _, k := range vkeys {
		if _, err := note.NewVerifier(k); err != nil {
			return Log{}, fmt.Errorf("log %s: key %q: %w (want a vkey name+hash+base64, as 'cairn key vkey' prints)", origin, k, err)
		}
	}
	var l Log
	err := s.change(func(f *stateFile) error {
		i, ok := find(f, origin)
		if !ok {
			f.Logs = slices.Insert(f.Logs, i, Log{Origin: origin, Hash: emptyTreeHash})
		}
		for _, k := range vkeys {
			if !slices.Contains(f.Logs[i].Keys, k) {
				f.Logs[i].Keys = append(f.Logs[i].Keys, k)
			}
		}
		l = f.Logs[i]
		return nil
	})
	return l, err
}

// SetAudit makes the witness audit the log named by origin, which it
// witnesses and which must be a cairn index's (CairnOriginPrefix): from
// then on it cosigns a checkpoint of it only when its own replica of the
// index, pulled from url (a cairn server's http:// or https:// URL),
// holds the checkpoint's tree (see Auditor). Setting it again changes the
// URL (the server moved); an audit is never removed.
func (s *State) SetAudit(origin, url string) (Log, error) {
	if !strings.HasPrefix(origin, CairnOriginPrefix) {
		return Log{}, fmt.Errorf("log %s: only a cairn index's log (origin %s<introduction>) can be audited", origin, CairnOriginPrefix)
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return Log{}, fmt.Errorf("log %s: audit URL %q: want the http:// or https:// URL of a cairn server of the index", origin, url)
	}
	url = strings.TrimSuffix(url, "/")
	var l Log
	err := s.change(func(f *stateFile) error {
		i, ok := find(f, origin)
		if !ok {
			return fmt.Errorf("%w: %s (cairn witness add-log adds it)", ErrUnknownLog, origin)
		}
		f.Logs[i].Audit = url
		l = f.Logs[i]
		return nil
	})
	return l, err
}

// Advance moves the log named by origin from the tree from to the tree
// to, the checkpoint cosigned being checkpoint, if and only if its latest
// cosigned tree is still from: a compare-and-swap, so that two requests
// checked against one tree cannot both move it. Otherwise it returns a
// *ConflictError with the size the log is at, and changes nothing.
func (s *State) Advance(origin string, from, to tlog.Tree, checkpoint string) error {
	return s.change(func(f *stateFile) error {
		i, ok := find(f, origin)
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownLog, origin)
		}
		l := &f.Logs[i]
		if l.Tree() != from {
			return &ConflictError{Origin: origin, Sent: from.N, Known: l.Size}
		}
		if to == from && l.Checkpoint != "" {
			return errUnchanged // the first checkpoint of the tree is kept
		}
		l.Size, l.Hash, l.Checkpoint = to.N, to.Hash, checkpoint
		return nil
	})
}

// errUnchanged tells change that fn changed nothing: nothing is written.
var errUnchanged = errors.New("unchanged")

// change runs fn on the state under the directory's lock and writes what
// it leaves, durably, unless it returns an error (errUnchanged: no error,
// nothing to write).
func (s *State) change(fn func(*stateFile) error) error {
	unlock, err := lockDir(filepath.Join(s.dir, lockName))
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(s.dir, stateName)
	f := &stateFile{Version: 1}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil // a new state: written below
	case err != nil:
		return fmt.Errorf("witness state: %w", err)
	default:
		if err := parseState(data, f); err != nil {
			return fmt.Errorf("witness state %s: %w", path, err)
		}
	}
	if err := fn(f); err == errUnchanged && data != nil {
		return nil
	} else if err != nil && err != errUnchanged {
		return err
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if bytes.Equal(out, data) {
		return nil
	}
	if err := safefile.Write(path, out, safefile.Options{Perm: 0o600}); err != nil {
		return fmt.Errorf("witness state: %w", err)
	}
	return syncDir(s.dir)
}

// parseState reads a state file, refusing what the witness would not
// write: a witness that misread its state could cosign a split view.
func parseState(data []byte, f *stateFile) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(f); err != nil {
		return fmt.Errorf("not a witness state file: %w", err)
	}
	if f.Version != 1 {
		return fmt.Errorf("state version %d, want 1 (a newer cairn wrote it?)", f.Version)
	}
	for i, l := range f.Logs {
		if i > 0 && strings.Compare(f.Logs[i-1].Origin, l.Origin) >= 0 {
			return fmt.Errorf("logs not sorted by origin, or %s twice", l.Origin)
		}
		if l.Size < 0 {
			return fmt.Errorf("log %s: negative size", l.Origin)
		}
		if l.Audit != "" && !strings.HasPrefix(l.Origin, CairnOriginPrefix) {
			return fmt.Errorf("log %s: audited, but not a cairn index's log", l.Origin)
		}
	}
	return nil
}

// find returns the index of the log named origin in f, or where it
// would be inserted.
func find(f *stateFile, origin string) (int, bool) {
	return slices.BinarySearchFunc(f.Logs, origin, func(l Log, o string) int { return strings.Compare(l.Origin, o) })
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("witness state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("witness state: sync %s: %w", dir, err)
	}
	return nil
}
