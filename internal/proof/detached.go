package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
)

// A detached proof is an offline proof without the file's bytes: its
// extra data is {"entry", "map_time", "map_path"}, the entry naming the
// file by its path, size and SHA-256 (docs/evidence.md, Proofs). It is
// for a container that holds the file's bytes elsewhere (an evidence
// bundle holds each record once, in its repository's documents): it
// proves nothing until VerifyDetached is given the record it names and
// checks its bytes against the entry.

// detachedExtra is a detached proof's extra data, in its one spelling's
// field order.
type detachedExtra struct {
	Entry   string `json:"entry"`
	MapTime int64  `json:"map_time"`
	MapPath []byte `json:"map_path"`
}

// marshalDetached writes x as a detached proof's extra data: compact
// JSON, fields entry, map_time, map_path, no HTML escaping.
func marshalDetached(x detachedExtra) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, fmt.Errorf("the detached proof's extra data: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Detach returns p, a cairn offline proof (with the file's bytes), as a
// detached proof: the same entry, inclusion path, checkpoint and map
// leaf, without the bytes. It checks p's record part first (checkProof).
func Detach(p *translog.Proof) (*translog.Proof, error) {
	if _, _, _, err := checkProof(p); err != nil {
		return nil, fmt.Errorf("detaching the proof of leaf %d: %w", p.Index, err)
	}
	x, err := ParseExtra(p)
	if err != nil {
		return nil, err
	}
	extra, err := marshalDetached(detachedExtra{Entry: x.Entry, MapTime: x.MapTime, MapPath: x.MapPath})
	if err != nil {
		return nil, err
	}
	return &translog.Proof{Extra: extra, Index: p.Index, Path: p.Path, Checkpoint: p.Checkpoint}, nil
}

// parseDetachedExtra parses a detached proof's extra data, strictly: every
// field present, no other, written as marshalDetached writes it.
func parseDetachedExtra(p *translog.Proof) (Extra, error) {
	if len(p.Extra) == 0 {
		return Extra{}, fmt.Errorf("%w: no extra data: a detached proof carries the entry and the map leaf", translog.ErrProof)
	}
	// The common spelling read by hand; the result is the same as the
	// JSON decoder's below (FuzzDetachedExtraByHand), or it is read again
	// by the decoder, to say what is wrong.
	if d, ok := parseDetachedCanonical(p.Extra); ok && checkMapPath(d.MapPath) == nil {
		return Extra{Entry: d.Entry, MapTime: d.MapTime, MapPath: d.MapPath}, nil
	}
	d, err := parseDetachedJSON(p.Extra)
	if err != nil {
		return Extra{}, err
	}
	return Extra{Entry: d.Entry, MapTime: d.MapTime, MapPath: d.MapPath}, nil
}

// parseDetachedJSON is parseDetachedExtra of extra data, by the JSON
// decoder.
func parseDetachedJSON(extra []byte) (detachedExtra, error) {
	var x struct {
		Entry   *string `json:"entry"`
		MapTime *int64  `json:"map_time"`
		MapPath *[]byte `json:"map_path"`
	}
	if err := jsonv2.Unmarshal(extra, &x, jsonv2.RejectUnknownMembers(true)); err != nil {
		return detachedExtra{}, fmt.Errorf("%w: extra data is not a detached proof's {\"entry\", \"map_time\", \"map_path\"}: %v", translog.ErrProof, err)
	}
	if x.Entry == nil || x.MapTime == nil || x.MapPath == nil {
		return detachedExtra{}, fmt.Errorf("%w: a detached proof's extra data lacks \"entry\", \"map_time\" or \"map_path\"", translog.ErrProof)
	}
	d := detachedExtra{Entry: *x.Entry, MapTime: *x.MapTime, MapPath: *x.MapPath}
	if err := canonicalDetached(d, extra); err != nil {
		return detachedExtra{}, err
	}
	return d, nil
}

// checkMapPath checks that a detached proof's map path is whole hashes,
// at most 63.
func checkMapPath(path []byte) error {
	if len(path)%tlog.HashSize != 0 || len(path) > 63*tlog.HashSize {
		return fmt.Errorf("%w: map_path is %d bytes, not whole %d-byte hashes, at most 63", translog.ErrProof, len(path), tlog.HashSize)
	}
	return nil
}

// canonicalDetached checks that d's map path is whole hashes, at most 63,
// and that extra is d as marshalDetached writes it.
func canonicalDetached(d detachedExtra, extra []byte) error {
	if err := checkMapPath(d.MapPath); err != nil {
		return err
	}
	if again, err := marshalDetached(d); err != nil || !bytes.Equal(again, extra) {
		return fmt.Errorf("%w: extra data is not written as cairn writes a detached proof's (compact JSON, fields entry, map_time, map_path in that order, canonical base64)", translog.ErrProof)
	}
	return nil
}

// ParseDetached parses a detached proof and checks what of it needs no
// trust and no file: its format, its entry, and that its inclusion path
// proves the entry's leaf in the tree its checkpoint's text claims.
// Every refusal is a *RefusedError.
func ParseDetached(data []byte) (*Parsed, error) {
	return parseDetached(data, nil)
}

// parseDetached is ParseDetached, sharing dp's work if dp is not nil.
func parseDetached(data []byte, dp *DetachedParser) (*Parsed, error) {
	var evidence []byte
	refuse := func(err error) (*Parsed, error) {
		return nil, &RefusedError{Err: err, Checkpoint: evidence}
	}
	p, err := translog.ParseProof(data)
	if err != nil {
		return refuse(err)
	}
	evidence = p.Checkpoint
	x, err := parseDetachedExtra(p)
	if err != nil {
		return refuse(err)
	}
	claim := checkpoint.Claimed
	if dp != nil {
		claim = dp.claim
	}
	c, err := claim(p.Checkpoint)
	if err != nil {
		return refuse(fmt.Errorf("%w: the proof's checkpoint: %w", translog.ErrProof, err))
	}
	e, err := translog.ParseEntry([]byte(x.Entry))
	if err != nil {
		return refuse(fmt.Errorf("%w: the proof's entry: %w", translog.ErrProof, err))
	}
	// The leaf checked with the entry's own size and hash: the bytes are
	// checked against them by VerifyDetached.
	var memo *inclusionMemo
	if dp != nil {
		memo = dp.memo(c.Tree())
	}
	if _, err := checkLeafOf(p, []byte(x.Entry), e, c, memo); err != nil {
		return refuse(err)
	}
	return &Parsed{proof: p, extra: x, claimed: c, entry: e, detached: true}, nil
}

// checkLeafOf checks that p's inclusion path proves the leaf of entry
// (parsed as e) in the tree c's text claims; through memo, the memo of
// that tree, if not nil.
func checkLeafOf(p *translog.Proof, entry []byte, e translog.Entry, c checkpoint.Checkpoint, memo *inclusionMemo) (translog.Entry, error) {
	tree := c.Tree()
	if p.Index >= tree.N {
		return translog.Entry{}, &translog.InclusionError{Index: p.Index, Entry: string(entry), Origin: c.Origin, Tree: tree, Reason: fmt.Sprintf("index %d is not in a tree of %d leaves", p.Index, tree.N)}
	}
	leaf := translog.LeafHash(entry)
	check := tlog.CheckRecord
	if memo != nil {
		check = func(path tlog.RecordProof, _ int64, _ tlog.Hash, n int64, h tlog.Hash) error {
			return memo.check(path, n, h)
		}
	}
	if err := check(p.Path, tree.N, tree.Hash, p.Index, leaf); err != nil {
		return translog.Entry{}, &translog.InclusionError{Index: p.Index, Entry: string(entry), Origin: c.Origin, Tree: tree, Reason: fmt.Sprintf("the inclusion path of leaf hash %s does not lead to the root (%v)", leaf, err)}
	}
	return e, nil
}

// Path returns the file path the proof's entry claims (not to be
// believed before the proof is verified).
func (pp *Parsed) Path() string { return pp.entry.Path }

// VerifyDetached is VerifyParsed of a detached proof (ParseDetached),
// given the record its entry names: rec's bytes (rec.Raw) must have the
// entry's size and SHA-256, and when the entry's path names a record id
// (…/<id>.json), rec must be that record. The record is not parsed again:
// rec is the caller's parse of those bytes. Every refusal is a
// *RefusedError.
func (v *Verifier) VerifyDetached(pp *Parsed, rec *record.Record) (*Proven, error) {
	refuse := func(err error) (*Proven, error) {
		return nil, &RefusedError{Err: err, Checkpoint: pp.proof.Checkpoint}
	}
	if !pp.detached {
		return refuse(fmt.Errorf("%w: not a detached proof", translog.ErrProof))
	}
	if rec == nil {
		return refuse(fmt.Errorf("%w: no record given for the file at %s", translog.ErrProof, pp.entry.Path))
	}
	// The checkpoint first: a proof of another index is refused as such.
	pr, err := v.verifyTrust(pp)
	if err != nil {
		return nil, err
	}
	e := pp.entry
	inclusion := func(format string, args ...any) (*Proven, error) {
		c := pp.claimed
		return refuse(&translog.InclusionError{Index: pp.proof.Index, Entry: pp.extra.Entry, Origin: c.Origin, Tree: c.Tree(), Reason: fmt.Sprintf(format, args...)})
	}
	base := e.Path[strings.LastIndexByte(e.Path, '/')+1:]
	if id, named := strings.CutSuffix(base, ".json"); named && translog.IsLowerHex(id, 64) && id != rec.ID {
		return refuse(fmt.Errorf("the proof is of the file at %s, record %s, not the record %s given", e.Path, id, rec.ID))
	}
	if got := int64(len(rec.Raw)); got != e.Size {
		return inclusion("record %s is %d bytes, the entry says %d", rec.ID, got, e.Size)
	}
	if got := sha256.Sum256(rec.Raw); got != e.SHA256 {
		return inclusion("record %s's sha256 is %s, the entry says %s", rec.ID, hex.EncodeToString(got[:]), hex.EncodeToString(e.SHA256[:]))
	}
	pr.Content = rec.Raw
	pr.Subject, _ = index.SubjectOf(e.Path)
	pr.Record = rec.Clone()
	return pr, nil
}
