// Package proof makes and checks cairn's offline proofs: one record's
// leaf in the index's transparency log, its inclusion path and the signed
// checkpoint (with the witnesses' cosignatures) that the path leads to,
// in one C2SP tlog-proof file (translog.Proof, docs/transparency.md
// "Offline proofs"). A proof is made by a full replica from the log it
// computed, or by a light client from a server's tiles; it is checked
// with no network by anyone who knows the index's log keys and the
// witnesses they trust.
package proof

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/light"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
	"cairn.dev/cairn/internal/witness"
)

// ErrRefused is the parent of every error of Verify about the proof
// itself: malformed, not proving its leaf, not signed by a log key
// trusted, of another index, or below the witness quorum.
var ErrRefused = errors.New("offline proof refused")

// RefusedError is Verify's refusal of a proof: what was wrong, and the
// proof's checkpoint as evidence (when it has one).
type RefusedError struct {
	Err        error
	Checkpoint []byte
}

func (e *RefusedError) Error() string {
	return "offline proof refused: " + e.Err.Error()
}

// Unwrap returns both ErrRefused and the cause, so that errors.Is and
// errors.As see the cause's family (a *witness.QuorumError, a
// *translog.InclusionError).
func (e *RefusedError) Unwrap() []error { return []error{ErrRefused, e.Err} }

// ErrNotCovered is the parent of the errors of Make for a file the
// checkpoint's tree does not hold yet: it was added after the checkpoint
// was signed.
var ErrNotCovered = errors.New("the checkpoint does not cover the file")

// ErrOtherLog is the parent of the errors of Make for a checkpoint whose
// tree is not the first leaves of the log given: a checkpoint of another
// line or index, or of leaves the log does not hold yet.
var ErrOtherLog = errors.New("the checkpoint is not of this log")

// Make returns the proof of the file at path, whose bytes are content, in
// the tree of the signed checkpoint note, from the log s (a line's log,
// whose first leaves the checkpoint signs). It finds the file's leaf
// through the log's map (the leaves of the path's subject), proves it
// from the log's hashes, and checks the proof before returning it.
func Make(s *translog.Store, path string, content, note []byte) (*translog.Proof, error) {
	c, err := checkpoint.Claimed(note)
	if err != nil {
		return nil, err
	}
	size := s.Size()
	if c.Size > size {
		return nil, fmt.Errorf("%w: the checkpoint signs %d leaves, the log %s holds %d: verify the history it signs first (cairn pull)", ErrOtherLog, c.Size, s.Dir(), size)
	}
	if root, err := s.TreeHash(c.Size); err != nil {
		return nil, err
	} else if root != c.Root {
		return nil, fmt.Errorf("%w: the checkpoint's root at size %d is %x, the log %s computes %x there", ErrOtherLog, c.Size, c.Root[:], s.Dir(), root[:])
	}
	i, entry, err := Leaf(s, path)
	if err != nil {
		return nil, err
	}
	if i >= c.Size {
		return nil, fmt.Errorf("%w: %s is leaf %d, and the checkpoint of head %.12s signs the first %d leaves: wait for a checkpoint that covers it (push it if the server lacks it, then cairn pull)", ErrNotCovered, path, i, c.Head, c.Size)
	}
	rp, err := s.ProveRecord(i, c.Size)
	if err != nil {
		return nil, err
	}
	mapText, err := s.Entry(c.Size - 1)
	if err != nil {
		return nil, err
	}
	mp, err := s.ProveRecord(c.Size-1, c.Size)
	if err != nil {
		return nil, err
	}
	return NewProof(entry, content, i, rp, mapText, mp, note)
}

// Extra is the extra data of cairn's offline proof (docs/transparency.md
// "Offline proofs"): the leaf's entry line and the bytes of the file it
// names, and the checkpoint's last leaf (the map leaf of its cairn-map
// and cairn-head) by its time, with its inclusion path: it binds the map
// root the checkpoint names to the tree its witnesses cosigned. It is not
// authenticated by itself: Verify checks both leaves against the root.
type Extra struct {
	Entry   string `json:"entry"`    // the entry line, final newline included
	Content []byte `json:"content"`  // the file's bytes (base64 in JSON)
	MapTime int64  `json:"map_time"` // the time of the map leaf, leaf size-1
	MapPath []byte `json:"map_path"` // its inclusion path: 32-byte hashes, concatenated (base64 in JSON)
}

// MapEntry returns the map leaf the proof claims for the checkpoint c:
// "<cairn-head> <map_time> map <cairn-map>".
func (x Extra) MapEntry(c checkpoint.Checkpoint) translog.MapEntry {
	return translog.MapEntry{Commit: c.Head, Time: x.MapTime, Root: c.Map}
}

// mapPath returns the map leaf's inclusion path as hashes.
func (x Extra) mapPath() tlog.RecordProof {
	out := make(tlog.RecordProof, len(x.MapPath)/tlog.HashSize)
	for i := range out {
		out[i] = tlog.Hash(x.MapPath[i*tlog.HashSize:])
	}
	return out
}

// marshalExtra writes x as a proof's extra data: compact JSON, fields in
// the order above, no HTML escaping.
func marshalExtra(x Extra) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(x.Entry) + base64.StdEncoding.EncodedLen(len(x.Content)) + base64.StdEncoding.EncodedLen(len(x.MapPath)) + 96)
	if err := encodeExtra(&b, x); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// encodeExtra writes x as marshalExtra spells it, and a newline.
func encodeExtra(w io.Writer, x Extra) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return fmt.Errorf("the proof's extra data: %w", err)
	}
	return nil
}

// isExtraOf reports whether data is marshalExtra(x), byte for byte,
// comparing as x is encoded instead of holding a second copy.
func isExtraOf(data []byte, x Extra) bool {
	w := &sameWriter{want: data}
	return encodeExtra(w, x) == nil && !w.differ && w.off == len(data) && w.extra == 1
}

// sameWriter compares what is written to it with want, then one
// newline (what encodeExtra writes after the value).
type sameWriter struct {
	want   []byte
	off    int  // bytes of want matched
	extra  int  // bytes written past want
	differ bool // a byte differed, or more than a newline followed want
}

func (w *sameWriter) Write(p []byte) (int, error) {
	if w.differ {
		return len(p), nil
	}
	k := min(len(p), len(w.want)-w.off)
	if !bytes.Equal(p[:k], w.want[w.off:w.off+k]) {
		w.differ = true
		return len(p), nil
	}
	w.off += k
	if rest := p[k:]; len(rest) > 0 {
		w.extra += len(rest)
		if w.extra > 1 || rest[0] != '\n' {
			w.differ = true
		}
	}
	return len(p), nil
}

// ParseExtra parses a proof's extra data as cairn's Extra. It is strict:
// exactly what NewProof writes (one spelling per proof), every field
// present, the map path whole 32-byte hashes, at most 63.
func ParseExtra(p *translog.Proof) (Extra, error) {
	if len(p.Extra) == 0 {
		return Extra{}, fmt.Errorf("%w: no extra data: a cairn proof carries the entry, the file's bytes and the map leaf", translog.ErrProof)
	}
	var x struct {
		Entry   *string `json:"entry"`
		Content *[]byte `json:"content"`
		MapTime *int64  `json:"map_time"`
		MapPath *[]byte `json:"map_path"`
	}
	// Its first value decoded strictly (no unknown or repeated member),
	// then the whole compared with what marshalExtra writes of it. The
	// whole is decoded in place when it is one value (as it is but in
	// a forgery), else its first value read by a decoder.
	err := jsonv2.Unmarshal(p.Extra, &x, jsonv2.RejectUnknownMembers(true))
	if err != nil {
		x.Entry, x.Content, x.MapTime, x.MapPath = nil, nil, nil, nil
		err = jsonv2.UnmarshalDecode(jsontext.NewDecoder(bytes.NewReader(p.Extra)), &x, jsonv2.RejectUnknownMembers(true))
	}
	if err != nil {
		return Extra{}, fmt.Errorf("%w: extra data is not cairn's {\"entry\", \"content\", \"map_time\", \"map_path\"}: %v", translog.ErrProof, err)
	}
	if x.Entry == nil || x.Content == nil {
		return Extra{}, fmt.Errorf("%w: extra data lacks \"entry\" or \"content\"", translog.ErrProof)
	}
	if x.MapTime == nil || x.MapPath == nil {
		return Extra{}, fmt.Errorf("%w: extra data lacks \"map_time\" or \"map_path\" (the checkpoint's map leaf): a proof made before map leaves were logged; make it again", translog.ErrProof)
	}
	out := Extra{Entry: *x.Entry, Content: *x.Content, MapTime: *x.MapTime, MapPath: *x.MapPath}
	if len(out.MapPath)%tlog.HashSize != 0 || len(out.MapPath) > 63*tlog.HashSize {
		return Extra{}, fmt.Errorf("%w: map_path is %d bytes, not whole %d-byte hashes, at most 63", translog.ErrProof, len(out.MapPath), tlog.HashSize)
	}
	if !isExtraOf(p.Extra, out) {
		return Extra{}, fmt.Errorf("%w: extra data is not written as cairn writes it (compact JSON, fields entry, content, map_time, map_path in that order, canonical base64)", translog.ErrProof)
	}
	return out, nil
}

// NewProof returns cairn's offline proof of leaf index, whose entry line
// is entry and whose file's bytes are content, by the inclusion path path
// in the tree of the signed checkpoint note, with the checkpoint's last
// leaf mapEntry (the map leaf of its cairn-map and cairn-head) and its
// inclusion path mapPath. It checks the proof it makes (checkProof,
// checkMapLeaf; not the signatures) before it returns it.
func NewProof(entry, content []byte, index int64, path tlog.RecordProof, mapEntry []byte, mapPath tlog.RecordProof, note []byte) (*translog.Proof, error) {
	me, err := translog.ParseMapEntry(mapEntry)
	if err != nil {
		return nil, fmt.Errorf("making the proof of leaf %d: the checkpoint's last leaf: %w", index, err)
	}
	x := Extra{Entry: string(entry), Content: content, MapTime: me.Time, MapPath: []byte{}}
	for _, h := range mapPath {
		x.MapPath = append(x.MapPath, h[:]...)
	}
	extra, err := marshalExtra(x)
	if err != nil {
		return nil, err
	}
	p := &translog.Proof{Extra: extra, Index: index, Path: append([]tlog.Hash(nil), path...), Checkpoint: bytes.Clone(note)}
	_, c, x, err := checkProof(p)
	if err == nil {
		_, err = checkMapLeaf(c, x)
	}
	if err != nil {
		return nil, fmt.Errorf("making the proof of leaf %d: %w", index, err)
	}
	return p, nil
}

// checkProof checks a proof's record part with no network and without
// its signatures: its extra data is cairn's (ParseExtra), its checkpoint's
// text a cairn checkpoint (checkpoint.Claimed), and the entry, the content
// and the inclusion path prove the leaf in the checkpoint's tree
// (translog.Proof.CheckLeaf). It returns the entry, the checkpoint as its
// text claims it (to be trusted once checkpoint.Open has verified it) and
// the extra data, whose map leaf is still to check against the checkpoint
// once its signature is (checkMapLeaf).
func checkProof(p *translog.Proof) (translog.Entry, checkpoint.Checkpoint, Extra, error) {
	x, err := ParseExtra(p)
	if err != nil {
		return translog.Entry{}, checkpoint.Checkpoint{}, Extra{}, err
	}
	c, err := checkpoint.Claimed(p.Checkpoint)
	if err != nil {
		return translog.Entry{}, checkpoint.Checkpoint{}, Extra{}, fmt.Errorf("%w: the proof's checkpoint: %w", translog.ErrProof, err)
	}
	e, err := p.CheckLeaf([]byte(x.Entry), x.Content, c.Origin, c.Tree())
	if err != nil {
		return translog.Entry{}, checkpoint.Checkpoint{}, Extra{}, err
	}
	return e, c, x, nil
}

// checkMapLeaf checks that the map leaf of c's cairn-map and cairn-head,
// at the proof's map time, is leaf size-1 of c's tree by the proof's map
// path (light.CheckMapLeaf): a *light.MapLeafError if not.
func checkMapLeaf(c checkpoint.Checkpoint, x Extra) (*light.MapLeaf, error) {
	return light.CheckMapLeaf(c, x.MapEntry(c).Text(), x.mapPath())
}

// Leaf returns the index and entry line of the leaf of the file at path
// in the log s, read through the map (the leaves of the path's subject)
// when the path has a subject, else by a scan of the log.
func Leaf(s *translog.Store, path string) (int64, []byte, error) {
	match := func(i int64, text []byte) (bool, error) {
		if translog.IsMapEntry(text) {
			return false, nil // a commit's map leaf: no file's
		}
		e, err := translog.ParseEntry(text)
		if err != nil {
			return false, fmt.Errorf("%w: entry %d of %s: %w", translog.ErrCorrupt, i, s.Dir(), err)
		}
		return e.Path == path, nil
	}
	if subject, ok := index.SubjectOf(path); ok {
		m, err := s.Map()
		if err != nil {
			return 0, nil, err
		}
		_, leaves, _ := m.Map.Get(subject)
		for _, i := range leaves {
			text, err := s.Entry(i)
			if err != nil {
				return 0, nil, err
			}
			if ok, err := match(i, text); err != nil || ok {
				return i, text, err
			}
		}
		return 0, nil, fmt.Errorf("%s is not in the transparency log %s (%d leaves): %w", path, s.Dir(), m.Size, fs.ErrNotExist)
	}
	found := errors.New("found")
	var at int64
	var entry []byte
	err := s.Range(0, s.Size(), func(i int64, text []byte) error {
		ok, err := match(i, text)
		if ok {
			at, entry = i, bytes.Clone(text)
			return found
		}
		return err
	})
	if err == found {
		return at, entry, nil
	}
	if err != nil {
		return 0, nil, err
	}
	return 0, nil, fmt.Errorf("%s is not in the transparency log %s: %w", path, s.Dir(), fs.ErrNotExist)
}

// LogKey is a key that signs an index's checkpoints, as a note verifier
// key names it: Origin, the key's name, is the origin of the checkpoints
// it signs (checkpoint.VKey).
type LogKey struct {
	Origin string
	Key    ed25519.PublicKey
}

// ParseLogKey parses a log key's verifier key,
// "<origin>+<hash>+base64(0x01 || ed25519 key)", as checkpoint.VKey and
// 'cairn key vkey' write it.
func ParseLogKey(vkey string) (LogKey, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return LogKey{}, fmt.Errorf("log key %q: not a note verifier key (origin+hash+base64): %w", vkey, err)
	}
	// name+hash+key: the name has no '+', base64 may.
	raw, err := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x01 {
		return LogKey{}, fmt.Errorf("log key %q: not an ed25519 key (a witness's cosignature key is not a log key)", vkey)
	}
	return LogKey{Origin: v.Name(), Key: ed25519.PublicKey(raw[1:])}, nil
}

// Trust is what a proof is checked against: the log keys that may sign
// the checkpoint, the index it must be of, and the witnesses that must
// have cosigned it.
type Trust struct {
	// LogKeys may sign the checkpoint, each for its own origin.
	LogKeys []LogKey
	// Introduction, when not "", pins the index: the checkpoint's origin
	// must be checkpoint.Origin(Introduction).
	Introduction string
	// MaySign, when not nil, is asked whether the log key that signed
	// (its keys.ID) was allowed to sign the checkpoint c, at its time,
	// once its signature and the witness quorum are checked: witnessed
	// says that quorum, of at least one witness, cosigned c. A key whose
	// grant had expired at c's time is refused; a key revoked since only
	// for a tree that ends before its revocation, which the verifier's
	// log holds or its witnesses cosigned (index.Key.MayHaveCheckpointed).
	MaySign func(keyID string, c checkpoint.Checkpoint, witnessed bool) error
	// Witnesses are the witnesses trusted and their quorum; with quorum
	// 0 a split view cannot be detected (Proven.Unwitnessed).
	Witnesses witness.Policy
}

// Proven is what Verify proved: the index whose checkpoint is signed by
// Key and cosigned by Witnesses holds, as leaf Index of its log, the file
// Entry names, whose bytes are Content.
type Proven struct {
	Index   int64
	Entry   translog.Entry
	Content []byte
	Subject string // the file's subject in the log's map ("" if none)
	// Record is the file as a record (nil if it is not one, such as a
	// descriptor); its signatures are the index's rules' business, which
	// every full replica checked before the log's key signed.
	Record *record.Record

	Checkpoint checkpoint.Checkpoint
	// MapLeaf is the checkpoint's last leaf, proved: the map leaf of its
	// cairn-map (the root a map proof is checked against) and cairn-head.
	MapLeaf translog.MapEntry
	Key     string // the id of the log key that signed the checkpoint
	// Cosignatures are those of the trusted witnesses, one per key;
	// Quorum is the number required, Unwitnessed says it is 0.
	Cosignatures []witness.Cosignature
	Quorum       int
	Unwitnessed  bool
}

// Verify checks an offline proof with no network: its format and its
// record part (checkProof: the entry, the content, the inclusion path to
// the checkpoint's root); the checkpoint's
// signature by one of trust's log keys for its origin, which must be
// the index's when trust pins one; that the checkpoint's last leaf,
// "<cairn-head> <map_time> map <cairn-map>", is leaf size-1 of its tree
// by the map path (light.CheckMapLeaf); and the witness quorum. A file named
// by a record id must hold that record. Every refusal is a
// *RefusedError.
func Verify(data []byte, trust Trust) (*Proven, error) {
	return (&Verifier{Trust: trust}).Verify(data)
}

// Verifier checks many proofs under one trust, as Verify does, checking
// the signatures and cosignatures of each distinct checkpoint once, and
// each distinct map leaf path to it once: the proofs of one bundle all
// lead to the same few. It is safe for concurrent use.
type Verifier struct {
	Trust Trust

	mu   sync.Mutex
	seen map[string]*checkedNote // by the note's bytes
}

// checkedNote is what a checkpoint's signatures proved, or why not, and
// the map leaves checked against it (by map time and path: every proof
// to one checkpoint carries the same).
type checkedNote struct {
	once sync.Once // the signatures, checked once the first proof's record part proves
	sc   *checkpoint.Signed
	n    []witness.Cosignature
	err  error

	mu   sync.Mutex
	maps map[string]*checkedMap
	last *lastMap // the map leaf asked about last
}

// lastMap is a map leaf checked, by its map time and path.
type lastMap struct {
	time int64
	path []byte
	*checkedMap
}

// checkedMap is a map leaf checked against a checkpoint (checkMapLeaf).
type checkedMap struct {
	ml  *light.MapLeaf
	err error
}

// note returns the checks of a proof's checkpoint note, made once.
func (v *Verifier) note(note []byte) *checkedNote {
	v.mu.Lock()
	defer v.mu.Unlock()
	cn := v.seen[string(note)]
	if cn == nil {
		cn = &checkedNote{}
		if v.seen == nil {
			v.seen = map[string]*checkedNote{}
		}
		v.seen[string(note)] = cn
	}
	return cn
}

// mapLeaf is checkMapLeaf of x against the note's checkpoint, made once
// per map time and path.
func (cn *checkedNote) mapLeaf(x Extra) (*light.MapLeaf, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	// The proofs to one checkpoint carry one map leaf: the last one
	// asked about is looked up without a key.
	if l := cn.last; l != nil && l.time == x.MapTime && bytes.Equal(l.path, x.MapPath) {
		return l.ml, l.err
	}
	key := strconv.FormatInt(x.MapTime, 10) + " " + string(x.MapPath)
	cm := cn.maps[key]
	if cm == nil {
		cm = &checkedMap{}
		cm.ml, cm.err = checkMapLeaf(cn.sc.Checkpoint, x)
		if cn.maps == nil {
			cn.maps = map[string]*checkedMap{}
		}
		cn.maps[key] = cm
	}
	cn.last = &lastMap{time: x.MapTime, path: slices.Clone(x.MapPath), checkedMap: cm}
	return cm.ml, cm.err
}

// Verify is the package's Verify under v.Trust.
func (v *Verifier) Verify(data []byte) (*Proven, error) {
	pp, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return v.VerifyParsed(pp)
}

// Parsed is an offline proof whose record part was checked, with no
// trust: its format, and that its entry, content and inclusion path
// prove its leaf in the tree its checkpoint's text claims (checkProof).
// Nothing it says is to be believed before a Verifier's VerifyParsed has
// checked the checkpoint's signatures and map leaf: Parse is the part of
// Verify that needs no trust, to run ahead of knowing it.
type Parsed struct {
	proof   *translog.Proof
	extra   Extra
	claimed checkpoint.Checkpoint
	entry   translog.Entry
	rec     *record.Record // the content as a record, if it is one
	recErr  error
	// detached: a detached proof (ParseDetached), with no content:
	// VerifyDetached checks the record it is given.
	detached bool
}

// Parse parses an offline proof and checks its record part (Parsed).
// Every refusal is a *RefusedError, as Verify's.
func Parse(data []byte) (*Parsed, error) {
	var evidence []byte
	refuse := func(err error) (*Parsed, error) {
		return nil, &RefusedError{Err: err, Checkpoint: evidence}
	}
	p, err := translog.ParseProof(data)
	if err != nil {
		return refuse(err)
	}
	evidence = p.Checkpoint
	entry, claimed, x, err := checkProof(p)
	if err != nil {
		return refuse(err)
	}
	pp := &Parsed{proof: p, extra: x, claimed: claimed, entry: entry}
	pp.rec, pp.recErr = record.Parse(x.Content)
	return pp, nil
}

// VerifyParsed is Verify of a proof Parse parsed: the checkpoint's
// signatures (checked once per checkpoint), its map leaf (once per
// checkpoint and map path), and that a file named by a record id holds
// that record.
func (v *Verifier) VerifyParsed(pp *Parsed) (*Proven, error) {
	if pp.detached {
		return nil, &RefusedError{Err: fmt.Errorf("%w: a detached proof (without the file's bytes): verify it with the record it names", translog.ErrProof), Checkpoint: pp.proof.Checkpoint}
	}
	p, x, entry := pp.proof, pp.extra, pp.entry
	refuse := func(err error) (*Proven, error) {
		return nil, &RefusedError{Err: err, Checkpoint: p.Checkpoint}
	}
	pr, err := v.verifyTrust(pp)
	if err != nil {
		return nil, err
	}
	pr.Content = x.Content
	pr.Subject, _ = index.SubjectOf(entry.Path)
	base := entry.Path[strings.LastIndexByte(entry.Path, '/')+1:]
	id, named := strings.CutSuffix(base, ".json")
	named = named && translog.IsLowerHex(id, 64)
	if pp.recErr == nil {
		pr.Record = pp.rec.Clone() // the caller's own
		if named && pr.Record.ID != id {
			return refuse(fmt.Errorf("the file at %s is record %s, not the record %s its path names", entry.Path, pr.Record.ID, id))
		}
	} else if named {
		return refuse(fmt.Errorf("the file at %s is not the record its path names: %w", entry.Path, pp.recErr))
	}
	return pr, nil
}

// verifyTrust checks what of a parsed proof needs trust: the checkpoint's
// signatures (once per checkpoint) and its map leaf (once per checkpoint
// and map path). It returns the Proven without its content and record.
func (v *Verifier) verifyTrust(pp *Parsed) (*Proven, error) {
	trust := v.Trust
	p, x, entry := pp.proof, pp.extra, pp.entry
	refuse := func(err error) (*Proven, error) {
		return nil, &RefusedError{Err: err, Checkpoint: p.Checkpoint}
	}
	cn := v.note(p.Checkpoint)
	cn.once.Do(func() { cn.sc, cn.n, cn.err = checkNote(p.Checkpoint, pp.claimed.Origin, trust) })
	if cn.err != nil {
		return refuse(cn.err)
	}
	sc, n := cn.sc, cn.n
	// The map root the checkpoint names is the one its tree holds: its
	// last leaf, which the witnesses cosigned with the tree.
	ml, err := cn.mapLeaf(x)
	if err != nil {
		return refuse(err)
	}
	return &Proven{
		Index: p.Index, Entry: entry,
		Checkpoint: sc.Checkpoint, MapLeaf: ml.Entry, Key: sc.Key,
		Cosignatures: n, Quorum: trust.Witnesses.Quorum, Unwitnessed: trust.Witnesses.Unwitnessed(),
	}, nil
}

// checkNote checks a proof's checkpoint note under trust: of the index
// trust pins, signed by one of its log keys for its origin, cosigned by
// the witness quorum, and by a key that could sign it then (MaySign).
func checkNote(note []byte, origin string, trust Trust) (*checkpoint.Signed, []witness.Cosignature, error) {
	if trust.Introduction != "" {
		if want := checkpoint.Origin(trust.Introduction); origin != want {
			return nil, nil, fmt.Errorf("the proof's checkpoint is of %s, not of the index introduced by %s (%s): it proves a record of another index", origin, trust.Introduction, want)
		}
	}
	var candidates []ed25519.PublicKey
	var names []string
	for _, k := range trust.LogKeys {
		if k.Origin == origin {
			candidates = append(candidates, k.Key)
		} else {
			names = append(names, k.Origin)
		}
	}
	if len(candidates) == 0 {
		if len(trust.LogKeys) == 0 {
			return nil, nil, fmt.Errorf("%w: no log key to check the checkpoint of %s against: name the index's log keys (--log-key VKEY), or verify inside a replica of the index", checkpoint.ErrUnsigned, origin)
		}
		return nil, nil, fmt.Errorf("%w: none of the %d log key(s) given is for %s (they are for %s)", checkpoint.ErrUnsigned, len(trust.LogKeys), origin, strings.Join(names, ", "))
	}
	sc, err := checkpoint.Open(note, origin, candidates)
	if err != nil {
		return nil, nil, err
	}
	n, err := trust.Witnesses.Cosignatures(note, origin)
	if err != nil {
		return nil, nil, err
	}
	if _, err := trust.Witnesses.Check(note, origin); err != nil {
		return nil, nil, err
	}
	if trust.MaySign != nil {
		if err := trust.MaySign(sc.Key, sc.Checkpoint, !trust.Witnesses.Unwitnessed()); err != nil {
			return nil, nil, fmt.Errorf("the checkpoint signed at %s by key %s: %w", sc.Time.UTC().Format(time.RFC3339), sc.Key, err)
		}
	}
	return sc, n, nil
}
