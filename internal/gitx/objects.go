package gitx

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// zlibs pools compressors: a new one allocates over half a megabyte.
// They store without compressing (Compression), as the repository's
// core.compression tells git to.
var zlibs = sync.Pool{New: func() any {
	zw, _ := zlib.NewWriterLevel(io.Discard, Compression)
	return zw
}}

// Modes of tree entries cairn writes and reads.
const (
	ModeFile = "100644"
	ModeTree = "40000"
)

// TreeEntry is one entry of a tree object.
type TreeEntry struct {
	Mode string
	Name string
	ID   string // hex
}

// IsTree reports whether the entry is a subtree.
func (e TreeEntry) IsTree() bool { return e.Mode == ModeTree }

// ParseTree decodes a tree object of a repository whose ids are hexSize
// hex digits.
func ParseTree(data []byte, hexSize int) ([]TreeEntry, error) {
	raw := hexSize / 2
	var out []TreeEntry
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp < 0 {
			return nil, errors.New("corrupt tree: no mode")
		}
		nul := bytes.IndexByte(data[sp:], 0)
		if nul < 0 || sp+nul+1+raw > len(data) {
			return nil, errors.New("corrupt tree: truncated entry")
		}
		nul += sp
		out = append(out, TreeEntry{
			Mode: string(data[:sp]),
			Name: string(data[sp+1 : nul]),
			ID:   hex.EncodeToString(data[nul+1 : nul+1+raw]),
		})
		data = data[nul+1+raw:]
	}
	return out, nil
}

// FormatTree encodes entries as a tree object, in git's order (a subtree
// sorts as if its name ended in "/").
func FormatTree(entries []TreeEntry) ([]byte, error) {
	sorted := append([]TreeEntry(nil), entries...)
	key := func(e TreeEntry) string {
		if e.IsTree() {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(sorted, func(i, j int) bool { return key(sorted[i]) < key(sorted[j]) })
	var buf bytes.Buffer
	for i, e := range sorted {
		if i > 0 && sorted[i-1].Name == e.Name {
			return nil, fmt.Errorf("duplicate tree entry %q", e.Name)
		}
		id, err := hex.DecodeString(e.ID)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&buf, "%s %s\x00", e.Mode, e.Name)
		buf.Write(id)
	}
	return buf.Bytes(), nil
}

// Commit is a parsed commit object.
type Commit struct {
	ID        string
	Tree      string
	Parents   []string
	Committer string // "name <email>"
	Time      int64  // committer time, unix seconds
	Message   string
}

// ParseCommit decodes a commit object.
func ParseCommit(id string, data []byte) (*Commit, error) {
	c := &Commit{ID: id}
	head, msg, _ := bytes.Cut(data, []byte("\n\n"))
	c.Message = string(msg)
	for _, line := range strings.Split(string(head), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "tree":
			c.Tree = v
		case "parent":
			c.Parents = append(c.Parents, v)
		case "committer":
			i := strings.LastIndexByte(v, '>')
			if i < 0 {
				return nil, fmt.Errorf("commit %s: bad committer line", id)
			}
			c.Committer = v[:i+1]
			f := strings.Fields(v[i+1:])
			if len(f) > 0 {
				c.Time, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	if c.Tree == "" {
		return nil, fmt.Errorf("commit %s: no tree", id)
	}
	return c, nil
}

// FormatCommit encodes a commit object.
func FormatCommit(tree string, parents []string, ident string, unix int64, message string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "tree %s\n", tree)
	for _, p := range parents {
		fmt.Fprintf(&b, "parent %s\n", p)
	}
	fmt.Fprintf(&b, "author %s %d +0000\ncommitter %s %d +0000\n\n%s", ident, unix, ident, unix, message)
	if !strings.HasSuffix(message, "\n") {
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
