package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/torchwood"
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
// checkpoint, cosignatures included, verbatim. cairn's Extra is the JSON
// of a ProofExtra: the leaf's entry line and the file's bytes, so that
// the proof is self-contained.
type Proof struct {
	Extra      []byte      // opaque extra data; nil or empty: none
	Index      int64       // the leaf's zero-based index
	Path       []tlog.Hash // the inclusion path, as tlog.CheckRecord takes it
	Checkpoint []byte      // the signed checkpoint note, verbatim
}

// ProofExtra is cairn's extra data of a Proof: the leaf's entry line
// (docs/transparency.md) and the bytes of the file it names. It is not
// authenticated by itself: CheckInclusion checks it against the leaf.
type ProofExtra struct {
	Entry   string `json:"entry"`   // the entry line, final newline included
	Content []byte `json:"content"` // the file's bytes (base64 in JSON)
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
// blank line; then a non-empty checkpoint, kept verbatim (CheckInclusion
// and the signature checks read it). ParseProof(data).Marshal() is data.
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

// NewProof returns the proof of leaf index, whose entry line is entry
// and whose file's bytes are content, by the inclusion path path in the
// tree of the signed checkpoint (a note whose text is a C2SP
// checkpoint). It checks the proof it makes (CheckInclusion) before it
// returns it.
func NewProof(entry, content []byte, index int64, path tlog.RecordProof, checkpoint []byte) (*Proof, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ProofExtra{Entry: string(entry), Content: content}); err != nil {
		return nil, fmt.Errorf("the proof's extra data: %w", err)
	}
	p := &Proof{
		Extra:      bytes.TrimSuffix(b.Bytes(), []byte("\n")),
		Index:      index,
		Path:       append([]tlog.Hash(nil), path...),
		Checkpoint: bytes.Clone(checkpoint),
	}
	if _, err := p.CheckInclusion(); err != nil {
		return nil, fmt.Errorf("making the proof of leaf %d: %w", index, err)
	}
	return p, nil
}

// ParseExtra parses the proof's extra data as cairn's ProofExtra: a JSON
// object with exactly the fields entry and content.
func (p *Proof) ParseExtra() (ProofExtra, error) {
	var x struct {
		Entry   *string `json:"entry"`
		Content *[]byte `json:"content"`
	}
	if len(p.Extra) == 0 {
		return ProofExtra{}, fmt.Errorf("%w: no extra data: a cairn proof carries the entry and the file's bytes", ErrProof)
	}
	dec := json.NewDecoder(bytes.NewReader(p.Extra))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return ProofExtra{}, fmt.Errorf("%w: extra data is not cairn's {\"entry\", \"content\"}: %v", ErrProof, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ProofExtra{}, fmt.Errorf("%w: extra data has more after its JSON object", ErrProof)
	}
	if x.Entry == nil || x.Content == nil {
		return ProofExtra{}, fmt.Errorf("%w: extra data lacks \"entry\" or \"content\"", ErrProof)
	}
	return ProofExtra{Entry: *x.Entry, Content: *x.Content}, nil
}

// Inclusion is what CheckInclusion proved: the leaf at Index of the tree
// the checkpoint's text names is Entry, and Content is its file's bytes.
// The checkpoint's signatures are not checked: Checkpoint is what its
// text claims until the caller opens the note with the log's keys.
type Inclusion struct {
	Index      int64
	Entry      Entry
	Content    []byte
	Checkpoint torchwood.Checkpoint // the note's text, parsed
	Note       []byte               // the signed note, verbatim
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

// CheckInclusion checks the proof's inclusion part, without any network
// and without checking the checkpoint's signatures: the extra data is
// cairn's (ParseExtra); its entry is a well-formed entry line whose
// sha256 and size the content matches; the checkpoint's text is a C2SP
// checkpoint (torchwood.ParseCheckpoint); and the inclusion path proves
// the entry's leaf hash at Index in the checkpoint's tree
// (tlog.CheckRecord). A proof that fails one of these is an
// *InclusionError (a malformed one wraps ErrProof).
func (p *Proof) CheckInclusion() (*Inclusion, error) {
	x, err := p.ParseExtra()
	if err != nil {
		return nil, err
	}
	entry, err := ParseEntry([]byte(x.Entry))
	if err != nil {
		return nil, fmt.Errorf("%w: the proof's entry: %w", ErrProof, err)
	}
	i := bytes.LastIndex(p.Checkpoint, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("%w: the checkpoint is not a signed note (no blank line before its signatures)", ErrProof)
	}
	c, err := torchwood.ParseCheckpoint(string(p.Checkpoint[:i+1]))
	if err != nil {
		return nil, fmt.Errorf("%w: the proof's checkpoint: %v", ErrProof, err)
	}
	refuse := func(format string, args ...any) (*Inclusion, error) {
		return nil, &InclusionError{Index: p.Index, Entry: x.Entry, Origin: c.Origin, Tree: c.Tree, Reason: fmt.Sprintf(format, args...)}
	}
	if got := int64(len(x.Content)); got != entry.Size {
		return refuse("the content is %d bytes, the entry says %d", got, entry.Size)
	}
	if got := sha256.Sum256(x.Content); got != entry.SHA256 {
		return refuse("the content's sha256 is %s, the entry says %s", hex.EncodeToString(got[:]), hex.EncodeToString(entry.SHA256[:]))
	}
	if p.Index >= c.N {
		return refuse("index %d is not in a tree of %d leaves", p.Index, c.N)
	}
	leaf := LeafHash([]byte(x.Entry))
	if err := tlog.CheckRecord(p.Path, c.N, c.Hash, p.Index, leaf); err != nil {
		return refuse("the inclusion path of leaf hash %s does not lead to the root (%v)", leaf, err)
	}
	return &Inclusion{Index: p.Index, Entry: entry, Content: x.Content, Checkpoint: c, Note: p.Checkpoint}, nil
}
