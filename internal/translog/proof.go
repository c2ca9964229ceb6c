package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

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
	// Lines are read in place, as views of data: nothing is copied but
	// the extra data decoded, the hashes and the checkpoint.
	rest := data
	lineNo := 0
	next := func() ([]byte, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, false
		}
		l := rest[:i]
		rest = rest[i+1:]
		lineNo++
		return l, true
	}
	var p Proof
	line, ok := next()
	if !ok || string(line) != ProofHeader {
		return bad(1, "want %q first", ProofHeader)
	}
	if line, ok = next(); !ok {
		return bad(lineNo+1, "want \"index N\" or \"extra BASE64\", the proof ends")
	}
	if b64, ok := bytes.CutPrefix(line, []byte("extra ")); ok {
		extra, ok := decodeCanonical(b64)
		if !ok || len(extra) == 0 {
			return bad(lineNo, "extra is not non-empty data in canonical base64")
		}
		p.Extra = extra
		if line, ok = next(); !ok {
			return bad(lineNo+1, "want \"index N\", the proof ends")
		}
	}
	n, ok := bytes.CutPrefix(line, []byte("index "))
	if !ok {
		return bad(lineNo, "want \"index N\", got %q", clip(line))
	}
	i, err := canonicalInt(n)
	if err != nil || i < 0 {
		return bad(lineNo, "index %q is not a decimal number without leading zeros", clip(n))
	}
	p.Index = i
	// The path's hashes are counted first (a line of 44 bytes each, as
	// Marshal writes them), so that the path is allocated once.
	if k := bytes.Index(rest, []byte("\n\n")); k > 0 {
		if h := (k + 1) / (hashLine + 1); h <= maxProofPath {
			p.Path = make([]tlog.Hash, 0, h)
		}
	}
	for {
		line, ok = next()
		if !ok {
			return bad(lineNo+1, "want a hash or a blank line before the checkpoint, the proof ends")
		}
		if len(line) == 0 {
			break
		}
		if len(p.Path) == maxProofPath {
			return bad(lineNo, "more than %d hashes in the inclusion path", maxProofPath)
		}
		h, ok := decodeHash(line)
		if !ok {
			return bad(lineNo, "%q is not a hash in canonical base64", clip(line))
		}
		p.Path = append(p.Path, h)
	}
	if len(rest) == 0 {
		return bad(lineNo+1, "no checkpoint after the blank line")
	}
	p.Checkpoint = bytes.Clone(rest)
	return &p, nil
}

// strictBase64 is standard base64 refusing padding bits that are not
// zero (made once: Strict copies the encoding).
var strictBase64 = base64.StdEncoding.Strict()

// hashLine is the length of a hash in base64 with its padding.
const hashLine = (tlog.HashSize + 2) / 3 * 4

// decodeCanonical decodes b64, standard base64 with padding, and reports
// whether it is the one spelling of what it decodes to: the spelling
// base64.StdEncoding.EncodeToString gives. A strict decoder refuses
// padding bits that are not zero and a wrong or missing padding; it
// skips '\r' and '\n', which no canonical spelling holds, so they are
// refused here. Nothing is allocated but the decoded bytes.
func decodeCanonical(b64 []byte) ([]byte, bool) {
	if len(b64)%4 != 0 || bytes.IndexByte(b64, '\r') >= 0 || bytes.IndexByte(b64, '\n') >= 0 {
		return nil, false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := strictBase64.Decode(out, b64)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// decodeHash decodes a hash in canonical base64 (decodeCanonical's
// spelling, of exactly tlog.HashSize bytes) without allocating, and
// checks the spelling by encoding it again into a buffer of its own.
func decodeHash(b64 []byte) (tlog.Hash, bool) {
	var h tlog.Hash
	if len(b64) != hashLine {
		return h, false
	}
	var raw [tlog.HashSize + 2]byte
	n, err := strictBase64.Decode(raw[:], b64)
	if err != nil || n != tlog.HashSize {
		return h, false
	}
	copy(h[:], raw[:n])
	var again [hashLine]byte
	base64.StdEncoding.Encode(again[:], h[:])
	if !bytes.Equal(again[:], b64) {
		return h, false
	}
	return h, true
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
