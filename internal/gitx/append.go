package gitx

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ErrExists is returned by AddToTree when a path is already taken.
var ErrExists = fs.ErrExist

// File is a file to add to a tree.
type File struct {
	Path string
	Data []byte
}

// AddToTree returns the id of a tree that is base (a tree id, or "" for
// the empty tree) plus files. Only the trees on the added paths are read
// and written, so the cost is O(depth × entries per directory), whatever
// the size of the whole tree. An added path that already exists is
// ErrExists: trees only grow.
func (b *Batch) AddToTree(rd *Reader, base string, files []File) (string, error) {
	byRel := map[string][]byte{}
	for _, f := range files {
		if f.Path == "" || strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path || strings.Contains("/"+f.Path+"/", "/../") || strings.Contains("/"+f.Path+"/", "/./") {
			return "", fmt.Errorf("bad path %q", f.Path)
		}
		if _, dup := byRel[f.Path]; dup {
			return "", fmt.Errorf("%s: %w (added twice)", f.Path, ErrExists)
		}
		byRel[f.Path] = f.Data
	}
	return b.addTree(rd, base, "", byRel)
}

func (b *Batch) addTree(rd *Reader, base, prefix string, files map[string][]byte) (string, error) {
	var entries []TreeEntry
	if base != "" {
		var err error
		if typ, data, ok := b.Get(base); ok && typ == "tree" {
			entries, err = ParseTree(data, b.repo.HexSize())
		} else {
			entries, err = rd.Tree(base)
		}
		if err != nil {
			return "", err
		}
	}
	index := map[string]int{}
	for i, e := range entries {
		index[e.Name] = i
	}
	sub := map[string]map[string][]byte{}
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		dir, rest, nested := strings.Cut(p, "/")
		if !nested {
			if _, taken := index[p]; taken {
				return "", fmt.Errorf("%s%s: %w", prefix, p, ErrExists)
			}
			id := b.Write("blob", files[p])
			index[p] = len(entries)
			entries = append(entries, TreeEntry{Mode: ModeFile, Name: p, ID: id})
			continue
		}
		if sub[dir] == nil {
			sub[dir] = map[string][]byte{}
		}
		sub[dir][rest] = files[p]
	}
	for dir, subfiles := range sub {
		old := ""
		i, exists := index[dir]
		if exists {
			if !entries[i].IsTree() {
				return "", fmt.Errorf("%s%s: %w (a file, not a directory)", prefix, dir, ErrExists)
			}
			old = entries[i].ID
		}
		id, err := b.addTree(rd, old, prefix+dir+"/", subfiles)
		if err != nil {
			return "", err
		}
		if exists {
			entries[i].ID = id
		} else {
			index[dir] = len(entries)
			entries = append(entries, TreeEntry{Mode: ModeTree, Name: dir, ID: id})
		}
	}
	data, err := FormatTree(entries)
	if err != nil {
		return "", err
	}
	return b.Write("tree", data), nil
}
