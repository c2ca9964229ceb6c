package translog

import (
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Store is a log with its map beside it: the map of the committed log,
// a pure function of the log's entries (each entry's path names its
// subject). The map is built from the entries the first time it is asked
// for and follows the log from there: each later read adds the leaves
// committed since, so appending (a verification) never pays for it.
type Store struct {
	*Log
	subjectsOf func(path string) []string

	mu   sync.Mutex
	m    *Map      // the map of the log's first size leaves; never changed once published
	size int64     // leaves m covers
	root tlog.Hash // the log's root at size
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
// the log first.
func (s *Store) Map() (MapAt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size, root := s.committedTree()
	if s.m != nil && s.size == size && s.root == root {
		return MapAt{s.m, s.size, s.root}, nil
	}
	m, from := s.m, s.size
	if m == nil || size < s.size {
		m, from = NewMap(), 0
	} else if r, err := s.Log.TreeHash(s.size); err != nil || r != s.root {
		// The log under the map is not the one it was built from.
		m, from = NewMap(), 0
	} else {
		m = m.Clone()
	}
	err := s.Log.Range(from, size, func(i int64, text []byte) error {
		e, err := ParseEntry(text)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrCorrupt, i, err)
		}
		leaf := LeafHash(text)
		for _, subject := range s.subjectsOf(e.Path) {
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

// committedTree returns the log's committed size and root together.
func (s *Store) committedTree() (int64, tlog.Hash) {
	s.Log.mu.RLock()
	defer s.Log.mu.RUnlock()
	return s.Log.size, s.Log.root
}
