package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ProofHeader is the first line of an offline proof, C2SP tlog-proof.
const ProofHeader = "c2sp.org/tlog-proof@v1"

// MaxProof caps the size of an offline proof ParseProof reads: an index
// file (a record is at most 64 KiB) in base64 twice over, its entry, 63
// hashes and a checkpoint with its cosignatures fit well under it.
const MaxProof = 1 << 20

// maxProofPath is the longest inclusion path of a tree of at most 2⁶³
// leaves.
const maxProofPath = 63

// ErrProof is the parent of the errors about an offline proof's format.
var ErrProof = errors.New("malformed offline proof")

// ErrProofRefused is the parent of *InclusionError: a well-formed proof
// that does not prove what it claims.
var ErrProofRefused = errors.New("offline proof refused")

// Proof is an offline proof of one leaf of the log, C2SP tlog-proof
// (c2sp.org/tlog-proof@v1): the leaf's index, its RFC 6962 inclusion path
// (the leaf's sibling first, the root's child last) and the signed
// checkpoint, cosignatures included, verbatim. Extra is opaque here:
// internal/proof writes and reads cairn's (docs/transparency.md, "Offline
// proofs"), which carries the leaf's entry line and the file's bytes.
type Proof struct {
	Extra      []byte      // opaque extra data; nil or empty: none
	Index      int64       // the leaf's zero-based index
	Path       []tlog.Hash // the inclusion path, as tlog.CheckRecord takes it
	Checkpoint []byte      // the signed checkpoint note, verbatim
}

// Marshal returns the proof in C2SP tlog-proof form:
//
//	c2sp.org/tlog-proof@v1
//	extra <base64>        (only when Extra is not empty)
//	index <decimal>
//	<base64 hash>         (one a line, the leaf's sibling first)
//
//	<checkpoint note>
func (p *Proof) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(ProofHeader + "\n")
	if len(p.Extra) > 0 {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Extra) + "\n")
	}
	b.WriteString("index " + strconv.FormatInt(p.Index, 10) + "\n")
	for _, h := range p.Path {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return b.Bytes()
}

// ParseProof parses an offline proof in C2SP tlog-proof form. It is
// strict, accepting exactly what Marshal writes: the header line; an
// extra line only with data, in canonical base64; the index in decimal
// without leading zeros; each hash in canonical base64 of 32 bytes; a
// blank line; then a non-empty checkpoint, kept verbatim (the caller
// parses it and checks its signatures). ParseProof(data).Marshal() is data.
func ParseProof(data []byte) (*Proof, error) {
	bad := func(line int, format string, args ...any) (*Proof, error) {
		return nil, fmt.Errorf("%w: line %d: %s", ErrProof, line, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxProof {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrProof, len(data), MaxProof)
	}
	rest := data
	lineNo := 0
	next := func() (string, bool) {
		l, r, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return "", false
		}
		rest = r
		lineNo++
		return string(l), true
	}
	var p Proof
	line, ok := next()
	if !ok || line != ProofHeader {
		return bad(1, "want %q first", ProofHeader)
	}
	if line, ok = next(); !ok {
		return bad(lineNo+1, "want \"index N\" or \"extra BASE64\", the proof ends")
	}
	if b64, ok := strings.CutPrefix(line, "extra "); ok {
		extra, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(extra) == 0 || base64.StdEncoding.EncodeToString(extra) != b64 {
			return bad(lineNo, "extra is not non-empty data in canonical base64")
		}
		p.Extra = extra
		if line, ok = next(); !ok {
			return bad(lineNo+1, "want \"index N\", the proof ends")
		}
	}
	n, ok := strings.CutPrefix(line, "index ")
	if !ok {
		return bad(lineNo, "want \"index N\", got %q", clip([]byte(line)))
	}
	i, err := canonicalInt([]byte(n))
	if err != nil || i < 0 {
		return bad(lineNo, "index %q is not a decimal number without leading zeros", clip([]byte(n)))
	}
	p.Index = i
	for {
		line, ok = next()
		if !ok {
			return bad(lineNo+1, "want a hash or a blank line before the checkpoint, the proof ends")
		}
		if line == "" {
			break
		}
		if len(p.Path) == maxProofPath {
			return bad(lineNo, "more than %d hashes in the inclusion path", maxProofPath)
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != line {
			return bad(lineNo, "%q is not a hash in canonical base64", clip([]byte(line)))
		}
		p.Path = append(p.Path, tlog.Hash(raw))
	}
	if len(rest) == 0 {
		return bad(lineNo+1, "no checkpoint after the blank line")
	}
	p.Checkpoint = bytes.Clone(rest)
	return &p, nil
}

// InclusionError is a security error: a proof whose entry, content or
// inclusion path does not prove the leaf it names in the checkpoint's
// tree. It carries the evidence.
type InclusionError struct {
	Index  int64
	Entry  string // the entry line the proof carries
	Origin string // the checkpoint's
	Tree   tlog.Tree
	Reason string
}

func (e *InclusionError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: the proof of leaf %d (%q) in the checkpoint of %s (size %d, root %s) does not prove it: %s",
		e.Index, clip([]byte(e.Entry)), e.Origin, e.Tree.N, e.Tree.Hash, e.Reason)
}

func (e *InclusionError) Unwrap() error { return ErrProofRefused }

// CheckLeaf checks, without any network, that the proof proves the leaf
// entry (an entry line) at its Index in tree, the tree of its checkpoint
// (which the caller parses and whose signatures it checks; origin, the
// checkpoint's, names it in errors), and that content is the file the
// entry names: the entry is a well-formed entry line (ParseEntry) whose
// size and sha256 content matches, and the inclusion path leads from the
// entry's leaf hash at Index to tree's root (tlog.CheckRecord). It
// returns the entry parsed. A proof that does not prove the leaf is an
// *InclusionError; a malformed entry wraps ErrProof.
func (p *Proof) CheckLeaf(entry, content []byte, origin string, tree tlog.Tree) (Entry, error) {
	e, err := ParseEntry(entry)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: the proof's entry: %w", ErrProof, err)
	}
	refuse := func(format string, args ...any) (Entry, error) {
		return Entry{}, &InclusionError{Index: p.Index, Entry: string(entry), Origin: origin, Tree: tree, Reason: fmt.Sprintf(format, args...)}
	}
	if got := int64(len(content)); got != e.Size {
		return refuse("the content is %d bytes, the entry says %d", got, e.Size)
	}
	if got := sha256.Sum256(content); got != e.SHA256 {
		return refuse("the content's sha256 is %s, the entry says %s", hex.EncodeToString(got[:]), hex.EncodeToString(e.SHA256[:]))
	}
	if p.Index >= tree.N {
		return refuse("index %d is not in a tree of %d leaves", p.Index, tree.N)
	}
	leaf := LeafHash(entry)
	if err := tlog.CheckRecord(p.Path, tree.N, tree.Hash, p.Index, leaf); err != nil {
		return refuse("the inclusion path of leaf hash %s does not lead to the root (%v)", leaf, err)
	}
	return e, nil
}
