package server

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/translog"
)

// keptTreesFile is the file, beside the latest checkpoint, that names
// the trees of the last keptTrees checkpoints signed, so that a restarted
// server answers light reads at them as the one before it did.
const keptTreesFile = "trees.json"

// keptTree is a tree light reads are answered at, as keptTreesFile names
// it: what a checkpoint of it signed.
type keptTree struct {
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"` // the log's root at Size
	Map  tlog.Hash `json:"map"`  // the map's root, in the tree's last leaf
	Head string    `json:"head"` // main's commit, in the tree's last leaf
}

func treeOf(v logView) keptTree {
	return keptTree{Size: v.Size, Root: v.Root, Map: v.Map, Head: v.Head}
}

// loadKeptTrees reads the trees kept by the server before this one (at
// most keptTrees, none past the latest checkpoint, oldest first). They
// are a hint: a tree is answered at only once the log rebuilt proves it
// (buildKept). What cannot be read is logged and left out: the reads at
// those trees are answered 410, as they were before trees were kept.
func (c *checkpointer) loadKeptTrees() {
	b, err := os.ReadFile(c.trees)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var kept []keptTree
	if err == nil {
		err = json.Unmarshal(b, &kept)
	}
	if err != nil {
		c.log.Warn("the trees kept are unreadable: light reads are answered at the latest checkpoint's tree only, until more are signed", "path", c.trees, "err", err)
		return
	}
	kept = slices.DeleteFunc(kept, func(t keptTree) bool { return t.Size <= 0 || t.Size > c.last.Size })
	slices.SortFunc(kept, func(a, b keptTree) int { return cmp.Compare(a.Size, b.Size) })
	kept = slices.CompactFunc(kept, func(a, b keptTree) bool { return a.Size == b.Size })
	if len(kept) > keptTrees {
		kept = kept[len(kept)-keptTrees:]
	}
	c.kept = kept
}

// keepTree adds v's tree to the trees kept, at most keptTrees of them
// (the views of the others are dropped), and returns what
// writeKeptTrees writes; c.signing and c.mu are held.
func (c *checkpointer) keepTree(v logView) []keptTree {
	c.kept = append(slices.DeleteFunc(c.kept, func(t keptTree) bool { return t.Size >= v.Size }), treeOf(v))
	if len(c.kept) > keptTrees {
		c.kept = slices.Delete(c.kept, 0, len(c.kept)-keptTrees)
	}
	c.recent = slices.DeleteFunc(c.recent, func(r logView) bool { return !slices.Contains(c.kept, treeOf(r)) })
	return slices.Clone(c.kept)
}

// writeKeptTrees writes the trees kept durably (a temporary file
// renamed); c.signing is held. A failure is logged: a restart then
// answers at fewer trees.
func (c *checkpointer) writeKeptTrees(kept []keptTree) {
	b, err := json.MarshalIndent(kept, "", "  ")
	if err == nil {
		err = safefile.Write(c.trees, append(b, '\n'), safefile.Options{Perm: 0o644})
	}
	if err != nil {
		c.log.Warn("keeping the trees light reads are answered at (after a restart, only the latest is)", "path", c.trees, "err", err)
	}
}

// buildKept makes the views of the kept trees not yet in memory (those a
// restarted server loaded): one pass over the log up to the largest,
// each tree's map a snapshot of the pass, proved by the log as it is (its
// root at the tree's size) and by the tree's last leaf (the map's root
// and head). A tree the log does not prove is dropped, and logged: its
// reads are answered 410. c.building is held; st is the log of the
// latest view.
func (c *checkpointer) buildKept(st *translog.Store) {
	c.mu.Lock()
	var todo []keptTree
	view := c.view.Load()
	for _, t := range c.kept {
		if !slices.ContainsFunc(c.recent, func(r logView) bool { return treeOf(r) == t }) && (view == nil || treeOf(*view) != t) {
			todo = append(todo, t)
		}
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	var built []logView
	var bad []keptTree
	m := translog.NewMap()
	var from int64
	for _, t := range todo {
		v, err := buildTree(st, m, from, t)
		if err != nil {
			c.log.Warn("a tree kept is not the log's: light reads at it are answered 410", "size", t.Size, "head", t.Head, "err", err)
			bad = append(bad, t)
			continue
		}
		built = append(built, v)
		m, from = v.mapAt.Map, t.Size
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kept = slices.DeleteFunc(c.kept, func(t keptTree) bool { return slices.Contains(bad, t) })
	for _, v := range built {
		if slices.Contains(c.kept, treeOf(v)) && !slices.ContainsFunc(c.recent, func(r logView) bool { return r.Size == v.Size }) {
			c.recent = append(c.recent, v)
		}
	}
	slices.SortFunc(c.recent, func(a, b logView) int { return cmp.Compare(a.Size, b.Size) })
}

// buildTree extends m, the map of st's first from leaves, to the tree t
// and returns its view, if st proves it (see buildKept). m is not
// changed: the view's map is a new snapshot.
func buildTree(st *translog.Store, m *translog.Map, from int64, t keptTree) (logView, error) {
	root, err := st.TreeHash(t.Size)
	if err != nil {
		return logView{}, err
	}
	if root != t.Root {
		return logView{}, fmt.Errorf("the log's root at size %d is %x, not the kept %x", t.Size, root[:], t.Root[:])
	}
	m = m.Clone()
	if err := st.Range(from, t.Size, func(i int64, text []byte) error {
		if translog.IsMapEntry(text) {
			return nil
		}
		e, err := translog.ParseEntry(text)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		leaf := translog.LeafHash(text)
		for _, s := range index.SubjectsOf(e.Path) {
			m.Add(s, i, leaf)
		}
		return nil
	}); err != nil {
		return logView{}, err
	}
	text, err := st.Entry(t.Size - 1)
	if err != nil {
		return logView{}, err
	}
	me, err := translog.ParseMapEntry(text)
	if err != nil {
		return logView{}, fmt.Errorf("the tree's last leaf: %w", err)
	}
	if mr := m.Root(); me.Root != mr || me.Root != t.Map || me.Commit != t.Head {
		return logView{}, fmt.Errorf("the tree's last leaf names map %x and head %s, the log's files give map %x, the kept tree map %x and head %s", me.Root[:], me.Commit, mr[:], t.Map[:], t.Head)
	}
	return logView{Head: t.Head, Size: t.Size, Root: t.Root, Map: t.Map, store: st, mapAt: translog.MapAt{Map: m, Size: t.Size, Root: t.Root}}, nil
}
