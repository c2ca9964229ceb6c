package proof

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
)

// A DetachedParser parses detached proofs as ParseDetached does, each
// checked whole, with the work that proofs to one checkpoint share done
// once: the checkpoint's text parsed once per note, and each inclusion
// path hashed only up to where it joins a path already checked to the
// same tree (inclusionMemo). An evidence bundle holds hundreds of
// proofs to one checkpoint, whose paths share most of their nodes. It is
// safe for concurrent use; the zero value is ready.
type DetachedParser struct {
	mu      sync.Mutex
	claimed map[string]*claimedNote
	trees   map[tlog.Tree]*inclusionMemo
}

// claimedNote is checkpoint.Claimed of a note, made once.
type claimedNote struct {
	once sync.Once
	c    checkpoint.Checkpoint
	err  error
}

// Parse is ParseDetached, sharing the parser's work.
func (dp *DetachedParser) Parse(data []byte) (*Parsed, error) {
	return parseDetached(data, dp)
}

// claim returns checkpoint.Claimed(note), parsed once per note.
func (dp *DetachedParser) claim(note []byte) (checkpoint.Checkpoint, error) {
	dp.mu.Lock()
	cn := dp.claimed[string(note)]
	if cn == nil {
		if dp.claimed == nil {
			dp.claimed = map[string]*claimedNote{}
		}
		cn = &claimedNote{}
		dp.claimed[string(note)] = cn
	}
	dp.mu.Unlock()
	cn.once.Do(func() { cn.c, cn.err = checkpoint.Claimed(note) })
	return cn.c, cn.err
}

// memo returns the inclusion memo of tree.
func (dp *DetachedParser) memo(tree tlog.Tree) *inclusionMemo {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	m := dp.trees[tree]
	if m == nil {
		if dp.trees == nil {
			dp.trees = map[tlog.Tree]*inclusionMemo{}
		}
		m = &inclusionMemo{tree: tree, rest: map[pathState][]tlog.Hash{}}
		dp.trees[tree] = m
	}
	return m
}

// inclusionMemo checks inclusion paths to one tree (RFC 9162, 2.1.3.2),
// remembering each step of the paths that led to its root. A step's
// state is the node reached so far (its hash, and the leaf's and the
// tree's last index at its level); what the rest of the check computes
// depends on that state and the rest of the path only. A path that
// reaches a remembered state with the very hashes that remain of the
// path that led from it to the root leads to the root too: it is not
// hashed further. Every path is thus checked whole, as tlog.CheckRecord
// checks it; only the hashing of nodes already computed is saved.
type inclusionMemo struct {
	tree tlog.Tree
	mu   sync.RWMutex              // the parsers' lookups share it; remember holds it alone
	rest map[pathState][]tlog.Hash // a state of a path that led to the root → the rest of that path
}

// pathState is a step of an inclusion path's check.
type pathState struct {
	fn, sn int64
	r      tlog.Hash
}

// errNotRoot says an inclusion path does not lead to the root.
var errNotRoot = errors.New("the path does not lead to the tree's root")

// errPathLength says an inclusion path is of the wrong length.
var errPathLength = errors.New("the path is not as long as the leaf's in the tree")

// check checks that path proves leaf at index in m's tree, as
// tlog.CheckRecord(path, tree.N, tree.Hash, index, leaf) does.
func (m *inclusionMemo) check(path []tlog.Hash, index int64, leaf tlog.Hash) error {
	if index < 0 || index >= m.tree.N {
		return errPathLength
	}
	fn, sn, r := index, m.tree.N-1, leaf
	states := make([]pathState, 0, len(path))
	for k, p := range path {
		st := pathState{fn, sn, r}
		m.mu.RLock()
		rest, ok := m.rest[st]
		m.mu.RUnlock()
		if ok && sameHashes(rest, path[k:]) {
			m.remember(states, path)
			return nil
		}
		states = append(states, st)
		if sn == 0 {
			return errPathLength
		}
		if fn&1 == 1 || fn == sn {
			r = tlog.NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = tlog.NodeHash(r, p)
		}
		fn, sn = fn>>1, sn>>1
	}
	if sn != 0 {
		return errPathLength
	}
	if r != m.tree.Hash {
		return errNotRoot
	}
	m.remember(states, path)
	return nil
}

// remember keeps the states of a path that led to the root, each with
// the rest of the path from it.
func (m *inclusionMemo) remember(states []pathState, path []tlog.Hash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, st := range states {
		if _, ok := m.rest[st]; !ok {
			m.rest[st] = path[k:len(path):len(path)]
		}
	}
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// parseDetachedCanonical reads a detached proof's extra data written as
// marshalDetached writes it, when its entry holds no character JSON
// escapes but its final newline: the common case, read without a JSON
// decoder, and its spelling checked without writing it again. ok is true
// only if data is, byte for byte, marshalDetached's writing of d (its map
// path's length is the caller's to check); false: read it with a
// decoder (parseDetachedExtra). FuzzDetachedExtraByHand holds it to both.
func parseDetachedCanonical(data []byte) (d detachedExtra, ok bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"entry":"`))
	if !ok {
		return d, false
	}
	var entry []byte
	for i := 0; ; i++ {
		if i >= len(rest) {
			return d, false
		}
		c := rest[i]
		if c == '"' {
			entry, rest = rest[:i], rest[i+1:]
			break
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			if c == '\\' && i+2 < len(rest) && rest[i+1] == 'n' && rest[i+2] == '"' {
				entry, rest = append(rest[:i:i], '\n'), rest[i+3:]
				break
			}
			return d, false
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"map_time":`)); !ok {
		return d, false
	}
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return d, false
	}
	t, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	var digits [24]byte
	if err != nil || string(strconv.AppendInt(digits[:0], t, 10)) != string(rest[:i]) {
		return d, false // not a number, or not in its one spelling (+1, 01, -0)
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"map_path":"`)); !ok {
		return d, false
	}
	b64, ok := bytes.CutSuffix(rest, []byte(`"}`))
	if !ok {
		return d, false
	}
	path := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(path, b64)
	if err != nil || base64.StdEncoding.EncodedLen(n) != len(b64) {
		return d, false
	}
	// The one spelling of the bytes (the decoder skips newlines and
	// takes any bits past the last byte).
	var scratch [2816]byte // 63 hashes' base64, and some
	if string(base64.StdEncoding.AppendEncode(scratch[:0], path[:n])) != string(b64) {
		return d, false
	}
	return detachedExtra{Entry: string(entry), MapTime: t, MapPath: path[:n]}, true
}
