// Package translog is cairn's transparency log: an RFC 6962 Merkle tree
// whose leaves are the index's files in index order, kept on disk as the
// C2SP tlog-tiles tree that a static file server can serve as it is, and
// the map from subject to files that makes per-subject reads provably
// complete. docs/transparency.md is the specification: the entry line,
// the leaf order, the tiles.
//
// The log is a pure function of the index's git history: the index
// computes it while it verifies (Append, then Commit with the verified
// head), so two honest replicas of one history hold byte-identical logs.
package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxEntry is the longest entry line: a tlog-tiles entry bundle prefixes
// each entry with its length as a uint16.
const MaxEntry = 0xFFFF

// ErrEntry is the parent of every malformed-entry error.
var ErrEntry = errors.New("malformed log entry")

// Entry is one leaf of the log: a file the index holds, named by the git
// commit that added it.
type Entry struct {
	Commit string   // the 40-hex git commit id that added the file (lowercase)
	Time   int64    // that commit's committer time, Unix seconds
	SHA256 [32]byte // of the file's bytes
	Size   int64    // the file's length in bytes
	Path   string   // the file's path in the index tree
}

// NewEntry returns the entry of a file at path, with bytes data, added by
// the commit of that id and committer time.
func NewEntry(commit string, time int64, path string, data []byte) Entry {
	return Entry{Commit: commit, Time: time, SHA256: sha256.Sum256(data), Size: int64(len(data)), Path: path}
}

// Text returns the entry line, as docs/transparency.md defines it:
//
//	<commit> <time> <sha256> <size> <path>\n
func (e Entry) Text() []byte {
	return e.appendText(make([]byte, 0, e.textLen()))
}

func (e Entry) textLen() int { return 40 + 1 + 10 + 1 + 64 + 1 + 8 + 1 + len(e.Path) + 1 }

// appendText appends the entry line to b.
func (e Entry) appendText(b []byte) []byte {
	b = append(b, e.Commit...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Time, 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, e.SHA256[:])
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, ' ')
	b = append(b, e.Path...)
	return append(b, '\n')
}

// Check reports whether the entry's fields are ones ParseEntry accepts
// back from its Text: a lowercase 40-hex commit, a size not negative, a
// path of printable ASCII without spaces, a line of at most MaxEntry bytes.
func (e Entry) Check() error {
	bad := func(what string) error {
		return fmt.Errorf("%w: %s in the entry of %q", ErrEntry, what, e.Path)
	}
	if !IsLowerHex(e.Commit, 40) {
		return bad("commit is not 40 lowercase hex digits")
	}
	if e.Size < 0 {
		return bad("size is negative")
	}
	if e.Path == "" {
		return bad("empty path")
	}
	for i := 0; i < len(e.Path); i++ {
		if c := e.Path[i]; c <= ' ' || c >= 0x7f {
			return bad(fmt.Sprintf("path has byte %#02x (printable ASCII, no spaces)", c))
		}
	}
	if n := len(e.Path) + 40 + 64 + 4 + 2*20 + 1; n > MaxEntry && len(e.Text()) > MaxEntry {
		return bad(fmt.Sprintf("%d bytes, more than %d", len(e.Text()), MaxEntry))
	}
	return nil
}

// ParseEntry parses an entry line. It is strict: it accepts exactly the
// lines Text produces (one canonical spelling of every field), so that an
// entry has one leaf hash.
func ParseEntry(text []byte) (Entry, error) {
	bad := func(what string) (Entry, error) {
		return Entry{}, fmt.Errorf("%w: %s in %q", ErrEntry, what, clip(text))
	}
	f, commit, t, wrong := splitEntry(text, func(f [][]byte) string {
		if IsMapEntry(text) {
			return "a map leaf, not a file entry (read it with ParseMapEntry)"
		}
		if len(f) != 5 {
			return fmt.Sprintf("%d fields, want 5 (commit, time, sha256, size, path)", len(f))
		}
		return ""
	})
	if wrong != "" {
		return bad(wrong)
	}
	e := Entry{Commit: commit, Time: t}
	var err error
	if !IsLowerHex(f[2], 64) {
		return bad("sha256 is not 64 lowercase hex digits")
	}
	hex.Decode(e.SHA256[:], f[2])
	if e.Size, err = canonicalInt(f[3]); err != nil || e.Size < 0 {
		return bad("size is not a decimal number of bytes")
	}
	if len(f[4]) == 0 {
		return bad("empty path")
	}
	for _, c := range f[4] {
		if c <= ' ' || c >= 0x7f {
			return bad(fmt.Sprintf("path has byte %#02x (printable ASCII, no spaces)", c))
		}
	}
	e.Path = string(f[4])
	return e, nil
}

// MapEntry is the map leaf that closes each commit's leaves: the map
// root after that commit's files were added to the map. It binds the map
// into the tree, so a witness checking tree consistency also covers the
// map (docs/transparency.md, "Leaves").
type MapEntry struct {
	Commit string    // the 40-hex git commit id (lowercase)
	Time   int64     // that commit's committer time, Unix seconds
	Root   tlog.Hash // the map root after the commit's files
}

// mapWord is the third field of a map entry, where a file entry has its
// 64-hex sha256: the two kinds cannot be confused.
const mapWord = "map"

// Text returns the map entry line, as docs/transparency.md defines it:
//
//	<commit> <time> map <maproot>\n
func (e MapEntry) Text() []byte {
	return e.appendText(make([]byte, 0, mapTextLen))
}

const mapTextLen = 40 + 1 + 20 + 1 + 3 + 1 + 64 + 1

// appendText appends the map entry line to b.
func (e MapEntry) appendText(b []byte) []byte {
	b = append(b, e.Commit...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Time, 10)
	b = append(b, ' ')
	b = append(b, mapWord...)
	b = append(b, ' ')
	b = hex.AppendEncode(b, e.Root[:])
	return append(b, '\n')
}

// IsMapEntry reports whether an entry line is a map leaf: its third field
// is "map". It does not check the rest; ParseMapEntry does.
func IsMapEntry(text []byte) bool {
	// <40-hex commit> <time> map ...: the commit has a fixed length.
	if len(text) < 41 || text[40] != ' ' {
		return false
	}
	rest := text[41:]
	i := bytes.IndexByte(rest, ' ')
	if i < 0 {
		return false
	}
	rest = rest[i+1:]
	return len(rest) > len(mapWord) && string(rest[:len(mapWord)]) == mapWord && rest[len(mapWord)] == ' '
}

// ParseMapEntry parses a map entry line. It is strict like ParseEntry: it
// accepts exactly the lines MapEntry.Text produces, and refuses a file
// entry.
func ParseMapEntry(text []byte) (MapEntry, error) {
	bad := func(what string) (MapEntry, error) {
		return MapEntry{}, fmt.Errorf("%w: %s in map entry %q", ErrEntry, what, clip(text))
	}
	f, commit, t, wrong := splitEntry(text, func(f [][]byte) string {
		if len(f) != 4 {
			return fmt.Sprintf("%d fields, want 4 (commit, time, map, maproot)", len(f))
		}
		return ""
	})
	if wrong != "" {
		return bad(wrong)
	}
	e := MapEntry{Commit: commit, Time: t}
	if string(f[2]) != mapWord {
		return bad(fmt.Sprintf("third field is %q, want %q (a file entry?)", clip(f[2]), mapWord))
	}
	if !IsLowerHex(f[3], 64) {
		return bad("map root is not 64 lowercase hex digits")
	}
	hex.Decode(e.Root[:], f[3])
	return e, nil
}

// splitEntry splits an entry line of either kind into its fields, lets
// shape judge their count and kind, then parses the two fields every leaf
// starts with: the commit and its time. It returns what is wrong with the
// line (shape's answer, else its own), or "".
func splitEntry(text []byte, shape func(f [][]byte) string) (f [][]byte, commit string, time int64, wrong string) {
	if len(text) > MaxEntry {
		return nil, "", 0, fmt.Sprintf("%d bytes, more than %d", len(text), MaxEntry)
	}
	line, ok := bytes.CutSuffix(text, []byte("\n"))
	if !ok {
		return nil, "", 0, "no final newline"
	}
	f = bytes.Split(line, []byte(" "))
	if wrong := shape(f); wrong != "" {
		return nil, "", 0, wrong
	}
	if !IsLowerHex(f[0], 40) {
		return nil, "", 0, "commit is not 40 lowercase hex digits"
	}
	time, err := canonicalInt(f[1])
	if err != nil {
		return nil, "", 0, "time is not a decimal number"
	}
	return f, string(f[0]), time, ""
}

// LeafHash returns the RFC 6962 leaf hash of an entry line:
// SHA-256(0x00 || text).
func LeafHash(text []byte) tlog.Hash { return tlog.RecordHash(text) }

// leaf returns the entry line and its leaf hash: the line is written
// after the leaf's 0x00 prefix, so that one SHA-256 of one buffer hashes
// it.
func (e Entry) leaf() ([]byte, tlog.Hash) {
	b := e.appendText(append(make([]byte, 0, 1+e.textLen()), 0x00))
	return b[1:], sha256.Sum256(b)
}

// leaf returns the map entry line and its leaf hash (see Entry.leaf).
func (e MapEntry) leaf() ([]byte, tlog.Hash) {
	b := e.appendText(append(make([]byte, 0, 1+mapTextLen), 0x00))
	return b[1:], sha256.Sum256(b)
}

// IsLowerHex reports whether s is n lowercase hex digits, the one
// spelling the log's lines and checkpoints give a git commit id (40) or a
// SHA-256 (64).
func IsLowerHex[T ~string | ~[]byte](s T, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// canonicalInt parses a decimal int64 written as strconv.FormatInt
// writes it: no sign but a minus, no leading zeros.
func canonicalInt(b []byte) (int64, error) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, err
	}
	if strconv.FormatInt(v, 10) != string(b) {
		return 0, errors.New("not canonical")
	}
	return v, nil
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
