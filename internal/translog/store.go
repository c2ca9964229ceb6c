package translog

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"
)

// Store is a log with its map beside it: the map of the committed log,
// a pure function of the log's entries (each entry's path names its
// subject). The map is built from the entries the first time it is asked
// for and follows the log from there.
//
// A writer appends whole commits (AppendCommit): their files go to the log
// and to a staged copy of the map, and the map's root after them to the
// log as the commit's map leaf (docs/transparency.md, "Leaves"). Commit
// publishes the staged map with the log; Rollback drops both.
type Store struct {
	*Log
	subjectsOf func(path string) []string

	mu   sync.Mutex
	m    *Map      // the map of the log's first size leaves; never changed once published
	size int64     // leaves m covers
	root tlog.Hash // the log's root at size

	// The writer's (under the log's write lock): the map of the committed
	// and staged leaves, and how many leaves it covers; nil outside a batch.
	// A batch from the log's first leaf (a recomputation, or appends to an
	// empty log) stages a builder instead (build.go), whose Commit writes
	// the map snapshot (of a log of snapshotEvery leaves or more) rather
	// than keep the map in memory.
	staged     *Map
	build      *builder
	stagedSize int64

	unscanned atomic.Int64 // the bytes build holds (see Unscanned)
	snapSize  atomic.Int64 // the size of the map snapshot last written or read (see saveSnapshot)
	delta     bool         // a map read from a snapshot was committed since: Close writes a delta (the writer's)
}

// Close closes the log. If this Store committed a map read from a map
// snapshot, it first writes the delta of that map from the snapshot
// (delta.go), so that the next process reads only what changed since:
// once per process, not per commit (a cache: one not written costs the
// next process a replay of the entries since the snapshot, no more). A
// delta that would be too large of the snapshot is a new snapshot.
func (s *Store) Close() error {
	s.mu.Lock()
	m, size, root, dirty := s.m, s.size, s.root, s.delta
	s.delta = false
	s.mu.Unlock()
	s.dropBuild() // (a writer's batch not committed: Log.Close rolls it back)
	if dirty && m != nil && m.snap != nil && m.snap.size == s.snapSize.Load() && size > m.snap.size {
		if n, r := s.committedTree(); n == size && r == root {
			if err := s.saveDelta(m, size, root); errors.Is(err, errDeltaFull) {
				// The appends since the snapshot reach too much of it for
				// a delta: a new snapshot, or every process from now on
				// replays all the entries since the last delta, more at
				// each commit, until the log has grown by an eighth.
				s.saveSnapshot(m, size, root)
			}
		}
	}
	return s.Log.Close()
}

// OpenStore opens the log in dir (see OpenLog) with a map whose subjects
// subjectsOf gives from entry paths (a key's file is in its key's subject
// and in "keys"); a path without one is in the log and in no subject.
func OpenStore(dir string, subjectsOf func(path string) []string) (*Store, error) {
	l, err := OpenLog(dir)
	if err != nil {
		return nil, err
	}
	return &Store{Log: l, subjectsOf: subjectsOf}, nil
}

// MapAt is the map of a committed log of Size leaves whose root is Root.
// Its Map must not be changed (Clone it first).
type MapAt struct {
	Map  *Map
	Size int64
	Root tlog.Hash // the log's root at Size
}

// Map returns the map of the committed log, bringing it up to date with
// the log first, every subtree read (see mapAt).
func (s *Store) Map() (MapAt, error) {
	at, err := s.mapAt()
	if err != nil {
		return at, err
	}
	if err := at.Map.loadAll(); err != nil {
		return MapAt{}, fmt.Errorf("building the map of transparency log %s: %w", s.Dir(), err)
	}
	return at, nil
}

// MapRoot returns the committed log's size and root and its map's root,
// the root Map's map has: the map brought up to date with the log as Map
// does, every map leaf since its snapshot checked, but without reading
// the snapshot's subtrees that no append reached. Their hashes stand for
// them, as they do in Map's root: the snapshot's header, whose tree was
// checked against the log's map leaf at the snapshot's size when it was
// opened. A caller that compares a signed checkpoint with the log needs
// no more, and a map snapshot read whole costs a fault a page.
func (s *Store) MapRoot() (size int64, root, mapRoot tlog.Hash, err error) {
	at, err := s.mapAt()
	if err != nil {
		return 0, tlog.Hash{}, tlog.Hash{}, err
	}
	return at.Size, at.Root, at.Map.Root(), nil
}

// mapAt is Map, except that the subtrees of a map snapshot it started
// from may not be read yet: a writer reads only those its appends reach
// (Map.load).
func (s *Store) mapAt() (MapAt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size, root := s.committedTree()
	if s.m != nil && s.size == size && s.root == root {
		return MapAt{s.m, s.size, s.root}, nil
	}
	m, from := s.m, s.size
	if m == nil || size < s.size {
		m, from = s.startMap(size)
	} else if r, err := s.Log.TreeHash(s.size); err != nil || r != s.root {
		// The log under the map is not the one it was built from.
		m, from = s.startMap(size)
	} else {
		m = m.Clone()
	}
	err := s.Log.Range(from, size, func(i int64, text []byte) error {
		if IsMapEntry(text) {
			// A map leaf: in no subject, and its root must be the map's
			// rebuilt so far.
			me, err := ParseMapEntry(text)
			if err != nil {
				return fmt.Errorf("%w: entry %d: %w", ErrCorrupt, i, err)
			}
			if r := m.Root(); r != me.Root {
				return fmt.Errorf("%w: map leaf %d (commit %s) has map root %x, but the files before it give %x", ErrCorrupt, i, me.Commit, me.Root[:], r[:])
			}
			return nil
		}
		e, err := ParseEntry(text)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrCorrupt, i, err)
		}
		leaf := LeafHash(text)
		for _, subject := range s.subjectsOf(e.Path) {
			if err := m.load(subject); err != nil {
				return err
			}
			m.Add(subject, i, leaf)
		}
		return nil
	})
	if err != nil {
		return MapAt{}, fmt.Errorf("building the map of transparency log %s: %w", s.Dir(), err)
	}
	m.Root()
	s.m, s.size, s.root = m, size, root
	return MapAt{m, size, root}, nil
}

// startMap returns the map to build the map of the log's first size
// leaves from, and the leaves it covers: the snapshot's, if there is one
// of this log, else an empty map.
func (s *Store) startMap(size int64) (*Map, int64) {
	if m, n, full, ok := s.loadSnapshot(size); ok {
		s.snapSize.Store(full)
		return m, n
	}
	return NewMap(), 0
}

// committedTree returns the log's committed size and root together.
func (s *Store) committedTree() (int64, tlog.Hash) {
	s.Log.mu.RLock()
	defer s.Log.mu.RUnlock()
	return s.Log.size, s.Log.root
}

// Begin takes the log's write lock for appends that continue the log
// committed at head (see Log.Begin) and stages a copy of its map, built
// first if this Store has not built it yet.
func (s *Store) Begin(head string) error {
	if err := s.Log.Begin(head); err != nil {
		return err
	}
	if err := s.stage(); err != nil {
		s.Log.Rollback()
		return err
	}
	return nil
}

// BeginRecompute takes the log's write lock to compute the committed log
// again from its first leaf, as a full verification of the history does:
// the commits appended (AppendCommit) are checked, up to the committed
// size, against the log's files — every entry, stored hash and tile —
// rather than written, with the map built again from empty; past the
// committed size they are staged as usual. So a log found right is kept
// as it is, its tiles not written again. A leaf or a file that differs
// fails the append with ErrDiffers, and so does a Commit before the
// recomputation reached the committed size (Commit rolls back): the
// caller computes the log afresh. Nothing on disk changes before a Commit
// past the committed size.
func (s *Store) BeginRecompute() error {
	if err := s.Log.beginRedo(); err != nil {
		return err
	}
	s.dropBuild()
	s.staged, s.build, s.stagedSize = nil, newBuilder(s.Dir()), 0
	// The snapshot on disk, if it is of this log, need not be written
	// again (see Commit).
	if size := s.Log.Size(); size > 0 {
		if _, _, full, ok := s.loadSnapshot(size); ok {
			s.snapSize.Store(full)
		}
	}
	return nil
}

// stage makes the staged map, if there is none: the committed map's clone.
func (s *Store) stage() error {
	if s.staged != nil || s.build != nil {
		return nil
	}
	if n := s.Log.Staged(); n != 0 {
		return fmt.Errorf("transparency log %s: %d leaves staged without the map (Append, not AppendCommit): roll back first", s.Dir(), n)
	}
	if size, _ := s.committedTree(); size == 0 {
		s.build, s.stagedSize = newBuilder(s.Dir()), 0
		return nil
	}
	at, err := s.mapAt()
	if err != nil {
		return err
	}
	if size, _ := s.committedTree(); size != at.Size {
		return fmt.Errorf("%w: %s moved while its map was built", ErrMoved, s.Dir())
	}
	s.staged, s.stagedSize = at.Map.Clone(), at.Size
	return nil
}

// AppendCommit stages one commit of the index's line: its files' entries
// sorted by path (entries is sorted in place), each added to the map under
// its subjects, then the commit's map leaf with the map's root after them.
// A commit that adds no file gets its map leaf all the same. It takes the
// write lock if Begin did not; on an error the caller rolls back.
func (s *Store) AppendCommit(commit string, time int64, entries []Entry) (MapEntry, error) {
	leaves := make([]Leaf, len(entries))
	for i, e := range entries {
		l, err := NewLeaf(e, s.subjectsOf(e.Path))
		if err != nil {
			return MapEntry{Commit: commit, Time: time}, fmt.Errorf("appending to transparency log %s: %w", s.Dir(), err)
		}
		leaves[i] = l
	}
	return s.AppendLeaves(commit, time, leaves)
}

// Leaf is an entry made ready to append: its line, its leaf hash and
// its subjects, computed ahead of the writer (NewLeaf is safe for
// concurrent use), so that a replay that checks files on many cores
// hands the log's writer only what is left to do in order.
type Leaf struct {
	Entry    Entry
	text     []byte
	hash     tlog.Hash
	subjects []string
}

// NewLeaf checks e (Entry.Check) and returns it ready to append under
// subjects, which must be the store's subjectsOf(e.Path) (OpenStore):
// the map's subjects are its one rule, and the caller only computes them
// ahead (it may memoize them; subjects is not changed nor kept beyond
// the append).
func NewLeaf(e Entry, subjects []string) (Leaf, error) {
	if err := e.Check(); err != nil {
		return Leaf{}, err
	}
	text, hash := e.leaf()
	return Leaf{Entry: e, text: text, hash: hash, subjects: subjects}, nil
}

// Hash returns the leaf's RFC 6962 leaf hash.
func (l Leaf) Hash() tlog.Hash { return l.hash }

// AppendLeaves is AppendCommit of leaves made by NewLeaf (sorted in place
// by path).
func (s *Store) AppendLeaves(commit string, time int64, leaves []Leaf) (MapEntry, error) {
	me := MapEntry{Commit: commit, Time: time}
	if !IsLowerHex(commit, 40) {
		return me, fmt.Errorf("%w: commit %q is not 40 lowercase hex digits, in the map leaf", ErrEntry, commit)
	}
	if err := s.Log.hold(); err != nil {
		return me, err
	}
	if err := s.stage(); err != nil {
		return me, err
	}
	if err := s.Log.redoFailed(); err != nil {
		return me, err
	}
	if s.Log.Next() != s.stagedSize {
		return me, fmt.Errorf("transparency log %s: leaves were staged without the map (Append, not AppendCommit): roll back", s.Dir())
	}
	slices.SortFunc(leaves, func(a, b Leaf) int { return strings.Compare(a.Entry.Path, b.Entry.Path) })
	for _, l := range leaves {
		e := l.Entry
		if e.Commit != commit || e.Time != time {
			return me, fmt.Errorf("%w: entry of %s names commit %s at %d, in commit %s at %d", ErrEntry, e.Path, e.Commit, e.Time, commit, time)
		}
		if l.text == nil {
			return me, fmt.Errorf("%w: entry of %s was not made by NewLeaf", ErrEntry, e.Path)
		}
		i, leaf, err := s.Log.appendLeaf(l.text, l.hash)
		if err != nil {
			return me, err
		}
		for _, subject := range l.subjects {
			if s.build != nil {
				s.build.Add(subject, i, leaf)
				if err := s.build.Err(); err != nil {
					return me, fmt.Errorf("transparency log %s: %w", s.Dir(), err)
				}
				continue
			}
			if err := s.staged.load(subject); err != nil {
				return me, fmt.Errorf("transparency log %s: %w", s.Dir(), err)
			}
			s.staged.Add(subject, i, leaf)
		}
	}
	if s.build != nil {
		me.Root = s.build.Root()
		s.unscanned.Store(s.build.bytes())
	} else {
		me.Root = s.staged.Root()
	}
	if _, _, err := s.Log.appendLeaf(me.leaf()); err != nil {
		return me, err
	}
	s.stagedSize += int64(len(leaves)) + 1
	return me, nil
}

// Commit durably publishes the staged leaves as covering git commit head
// (see Log.Commit), and the staged map with them.
func (s *Store) Commit(head string) error {
	staged, build, covers := s.staged, s.build, s.stagedSize
	s.staged, s.build = nil, nil
	s.unscanned.Store(0)
	if build != nil {
		defer build.close()
	}
	if err := s.Log.Commit(head); err != nil {
		return err
	}
	size, root := s.committedTree()
	if build != nil {
		// The map is read from its snapshot when asked for (mapAt), as
		// another process would: written now, unless the one on disk is
		// of this size already (a recomputation that found the log
		// right) or the log is small enough to replay (a cache, as a Map's snapshot is, below).
		s.mu.Lock()
		s.m, s.delta = nil, false
		s.mu.Unlock()
		if covers == size && size >= snapshotEvery && s.snapSize.Load() != size && build.writeSnapshot(s.Dir(), size, root) == nil {
			s.snapSize.Store(size)
		}
		return nil
	}
	if staged != nil && covers == size {
		// A cache: one not written is rebuilt next time.
		grown := size - s.snapSize.Load()
		full := grown >= snapshotEvery && grown >= size/8
		s.mu.Lock()
		s.m, s.size, s.root = staged, size, root
		s.delta = !full && staged.snap != nil // see Close
		s.mu.Unlock()
		if full && s.saveSnapshot(staged, size, root) == nil {
			s.snapSize.Store(size)
		}
	}
	return nil
}

// Rollback drops the staged leaves and the staged map.
func (s *Store) Rollback() {
	s.staged = nil
	s.dropBuild()
	s.Log.Rollback()
}

// dropBuild drops the builder, if there is one, and its temporary file.
func (s *Store) dropBuild() {
	if s.build != nil {
		s.build.close()
		s.build = nil
	}
	s.unscanned.Store(0)
}

// Unscanned returns how many bytes the map staged now holds in memory
// that hold no pointer (a batch from the log's first leaf builds it so:
// see Store), for a replay to tell the collector's pacing (a collection
// need not scan them). Safe for concurrent use.
func (s *Store) Unscanned() int64 { return s.unscanned.Load() }

// AdoptMap takes from's committed map as this Store's if both logs are
// committed at the same size and root (from, a log computed elsewhere and
// installed in this one's place): the map is a function of the leaves, so
// it need not be built again. It reports whether it did.
func (s *Store) AdoptMap(from *Store) bool {
	from.mu.Lock()
	m, size, root := from.m, from.size, from.root
	from.mu.Unlock()
	if m == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, r := s.committedTree(); n != size || r != root {
		return false
	}
	s.m, s.size, s.root = m, size, root
	return true
}

// LastMap returns the map leaf that closes the committed log (its last
// leaf), and the log's size; ok is false for an empty log or one whose last
// leaf is not a map leaf (not a log of the index's format).
func (s *Store) LastMap() (me MapEntry, size int64, ok bool, err error) {
	size = s.Log.Size()
	if size == 0 {
		return MapEntry{}, 0, false, nil
	}
	text, err := s.Log.Entry(size - 1)
	if err != nil {
		return MapEntry{}, size, false, err
	}
	if !IsMapEntry(text) {
		return MapEntry{}, size, false, nil
	}
	me, err = ParseMapEntry(text)
	if err != nil {
		return MapEntry{}, size, false, fmt.Errorf("%w: entry %d of %s: %w", ErrCorrupt, size-1, s.Dir(), err)
	}
	return me, size, true, nil
}
