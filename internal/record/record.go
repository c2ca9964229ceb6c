// Package record holds cairn's signed statements.
//
// A record is a DSSE envelope whose payload is an in-toto Statement v1: the
// subject says what the record speaks about (a package version's
// descriptor, some of its artifacts, a key, another record), the predicate
// type says what kind of statement it is, and the predicate carries the
// details. A record's id is the lowercase hex sha256 of its payload, so the
// same statement has the same id however it is signed or stored.
//
// Parse checks a record's form only: size caps, encodings, the statement's
// type, a known predicate type and a well-formed predicate. Whether its
// signatures come from keys allowed to make it is the index's business.
package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync/atomic"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/hdevalence/ed25519consensus"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/keys"
)

const (
	// PayloadType is the DSSE payload type of every record.
	PayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto Statement v1 type URI.
	StatementType = "https://in-toto.io/Statement/v1"
	// MaxSize caps an envelope file. Records are small statements; evidence
	// travels as blobs named by digest.
	MaxSize = 64 << 10
	// MaxSignatures caps the signatures on one envelope.
	MaxSignatures = 32
	// MaxSubjects caps the subjects of one statement.
	MaxSubjects = 256
)

// ErrMalformed is the parent of every form error Parse returns.
var ErrMalformed = errors.New("malformed record")

// Subject is an in-toto ResourceDescriptor restricted to what cairn uses.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// SHA256 returns the subject's sha256 digest.
func (s Subject) SHA256() string { return s.Digest["sha256"] }

// Statement is an in-toto Statement v1.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Signature is one DSSE signature, decoded.
type Signature struct {
	KeyID string
	Sig   []byte

	// memo is the answer of the last check: under which key, of which
	// payload and signature bytes. Parse gives each signature its own;
	// the copies of a parsed record (a light client's replays each judge
	// their own) share it, so that a signature is checked once whoever
	// asks. An answer counts only for the very bytes it was computed on
	// (the same slices: a copy given another payload or signature is
	// checked again); the bytes themselves are never changed after Parse.
	memo *sigMemo
}

// sigMemo remembers a signature's check, safely for concurrent checks.
type sigMemo struct{ v atomic.Pointer[sigVerdict] }

type sigVerdict struct {
	pub     ed25519.PublicKey
	payload []byte // the record's Payload checked
	sig     []byte // the Sig checked
	valid   bool
}

// same reports whether a and b are the same bytes in memory.
func same(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// known returns the remembered answer of signature i's check under pub,
// if it was made on this record's payload and that signature's bytes.
func (r *Record) known(i int, pub ed25519.PublicKey) (valid, ok bool) {
	s := &r.Signatures[i]
	if s.memo == nil {
		return false, false
	}
	if v := s.memo.v.Load(); v != nil && v.pub.Equal(pub) && same(v.payload, r.Payload) && same(v.sig, s.Sig) {
		return v.valid, true
	}
	return false, false
}

// remember keeps the answer of signature i's check under pub.
func (r *Record) remember(i int, pub ed25519.PublicKey, valid bool) {
	s := &r.Signatures[i]
	if s.memo == nil {
		s.memo = &sigMemo{}
	}
	s.memo.v.Store(&sigVerdict{pub: pub, payload: r.Payload, sig: s.Sig, valid: valid})
}

// Record is a parsed, well-formed record. Its signatures are not yet
// checked against any key: see VerifySignature.
type Record struct {
	ID         string // hex sha256 of Payload
	Kind       Kind
	Statement  Statement
	Predicate  any // one of the predicate types of this package, by Kind
	Payload    []byte
	Signatures []Signature
	Raw        []byte // the envelope file as stored

	pae    []byte // signingInput's answer, for paeFor
	paeFor []byte // the Payload pae was computed from (a copy may be given another)
}

// Issuer returns the key id of the first signature: the record's issuer
// for every kind but root, which carries several.
func (r *Record) Issuer() string { return r.Signatures[0].KeyID }

// Signatures are checked under ZIP 215, the precise ed25519 validity rules
// under which checking a batch and checking each signature alone always
// agree (cofactored equation, any point encoding). Every check in cairn
// uses them, so an append and a later verification cannot disagree. They
// accept what RFC 8032 verifiers accept, and more only for signatures a key
// holder crafts on purpose; weak keys, which would let anyone forge, are
// refused wherever keys are parsed (keys.CheckPublic).

// signingInput is the DSSE PAE of the record: the bytes its signatures sign.
func (r *Record) signingInput() []byte {
	if r.pae == nil || !same(r.paeFor, r.Payload) {
		r.pae, r.paeFor = dsse.PAE(PayloadType, r.Payload), r.Payload
	}
	return r.pae
}

// writeSigningInput writes r's signingInput to h: the PAE's header, then
// the payload, not joined in a buffer (a batch's check hashes each once).
func (r *Record) writeSigningInput(h hash.Hash) {
	if r.pae != nil && same(r.paeFor, r.Payload) {
		h.Write(r.pae)
		return
	}
	// dsse.PAE: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
	var head [64]byte
	b := append(head[:0], "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(PayloadType)), 10)
	b = append(append(append(b, ' '), PayloadType...), ' ')
	b = strconv.AppendInt(b, int64(len(r.Payload)), 10)
	h.Write(append(b, ' '))
	h.Write(r.Payload)
}

// VerifySignature reports whether signature i verifies under pub. The
// answer is remembered, so a record checked ahead of time (VerifyBatch),
// or a copy of the same parsed record checked before, is not checked
// twice.
func (r *Record) VerifySignature(i int, pub ed25519.PublicKey) bool {
	s := &r.Signatures[i]
	if valid, ok := r.known(i, pub); ok {
		return valid
	}
	valid := ed25519consensus.Verify(pub, r.signingInput(), s.Sig)
	r.remember(i, pub, valid)
	return valid
}

// Clone returns a copy of r whose fields its reader may set without
// changing r, and that remembers none of r's checks: as Parse of the same
// bytes returns it, without parsing them again. Its byte slices (Payload,
// Raw, each Sig) are r's, which nobody changes after Parse.
func (r *Record) Clone() *Record {
	c := *r
	c.pae, c.paeFor = nil, nil
	c.Signatures = make([]Signature, len(r.Signatures))
	for i, s := range r.Signatures {
		c.Signatures[i] = Signature{KeyID: s.KeyID, Sig: s.Sig, memo: &sigMemo{}}
	}
	return &c
}

// Check names one signature to verify: signature Sig of Rec under Pub.
type Check struct {
	Rec *Record
	Sig int
	Pub ed25519.PublicKey
}

// VerifyBatch verifies many signatures at once, much faster than one by
// one, and remembers each answer as VerifySignature would. If the batch
// fails, each signature is checked alone, so every answer is exact.
//
// Checks whose answer is known already (VerifySignature) are left out.
func VerifyBatch(checks []Check) {
	todo := checks[:0:0]
	for _, c := range checks {
		if _, ok := c.Rec.known(c.Sig, c.Pub); !ok {
			todo = append(todo, c)
		}
	}
	checks = todo
	switch len(checks) {
	case 0:
		return
	case 1:
		checks[0].Rec.VerifySignature(checks[0].Sig, checks[0].Pub)
		return
	}
	if batchVerify(checks) {
		for _, c := range checks {
			c.Rec.remember(c.Sig, c.Pub, true)
		}
		return
	}
	for _, c := range checks {
		c.Rec.VerifySignature(c.Sig, c.Pub)
	}
}

// SignedBy returns the distinct keys among candidates whose signature on
// the record verifies, matched by key id. A key counts once however many
// signatures name it.
func (r *Record) SignedBy(candidates map[string]ed25519.PublicKey) []string {
	seen := map[string]bool{}
	var ok []string
	for i, s := range r.Signatures {
		pub, found := candidates[s.KeyID]
		if !found || seen[s.KeyID] {
			continue
		}
		if r.VerifySignature(i, pub) {
			seen[s.KeyID] = true
			ok = append(ok, s.KeyID)
		}
	}
	return ok
}

// UnknownMemberError is a form error: a JSON object of a record (the
// envelope, the statement, a subject, the predicate, or an object inside
// them) has a member its format does not define. Records are decoded
// strictly, so that a statement cannot carry what one reader ignores and
// another honours.
type UnknownMemberError struct {
	Member string // the member's name
	At     string // the JSON pointer of the object holding it ("" for the top)
	In     string // what was decoded: "envelope", "statement", "predicate"
	Err    error  // the decoder's error
}

func (e *UnknownMemberError) Error() string {
	s := fmt.Sprintf("unknown member %q in the %s", e.Member, e.In)
	if e.At != "" {
		s += " at " + e.At
	}
	return s + ": a record carries only the members its format defines"
}

func (e *UnknownMemberError) Unwrap() error { return e.Err }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// IsDigest reports whether s is a lowercase hex sha256.
func IsDigest(s string) bool { return blob.IsDigest(s) }

// ID returns the record id of a payload.
func ID(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// Parse decodes and checks the form of an envelope file.
func Parse(data []byte) (*Record, error) {
	if len(data) > MaxSize {
		return nil, malformed("envelope is %d bytes, over the %d-byte cap", len(data), MaxSize)
	}
	// The base64 strings as slices of data when read by hand; else as
	// the decoder read them.
	payload64, sigs, byHand := readByHand(data)
	if !byHand {
		var env dsse.Envelope
		if err := decodeStrict(data, &env, "envelope"); err != nil {
			if ue := (*UnknownMemberError)(nil); errors.As(err, &ue) {
				return nil, malformed("%w", err)
			}
			return nil, malformed("envelope is not JSON: %w", err)
		}
		if env.PayloadType != PayloadType {
			return nil, malformed("payload type %q, want %q", env.PayloadType, PayloadType)
		}
		payload64 = []byte(env.Payload)
		for _, s := range env.Signatures {
			sigs = append(sigs, rawSignature{keyID: s.KeyID, sig: []byte(s.Sig)})
		}
	}
	payload, err := b64(payload64)
	if err != nil {
		return nil, malformed("payload is not base64: %w", err)
	}
	if len(sigs) == 0 {
		return nil, malformed("envelope has no signature")
	}
	if len(sigs) > MaxSignatures {
		return nil, malformed("envelope has %d signatures, over the cap of %d", len(sigs), MaxSignatures)
	}
	r := &Record{ID: ID(payload), Payload: payload, Raw: data, Signatures: make([]Signature, 0, len(sigs))}
	for i, s := range sigs {
		sig, err := b64(s.sig)
		if err != nil || len(sig) != ed25519.SignatureSize {
			return nil, malformed("signature %d is not a base64 ed25519 signature", i)
		}
		if err := keys.CheckID(s.keyID); err != nil {
			return nil, malformed("signature %d: %w", i, err)
		}
		r.Signatures = append(r.Signatures, Signature{KeyID: s.keyID, Sig: sig, memo: &sigMemo{}})
	}
	if err := r.parseStatement(); err != nil {
		return nil, err
	}
	if !r.Kind.MultiSig() && len(r.Signatures) != 1 {
		return nil, malformed("%s record has %d signatures, want exactly one", r.Kind, len(r.Signatures))
	}
	if named := namedIssuer(r.Predicate); named != "" && named != r.Signatures[0].KeyID {
		return nil, malformed("%s record names its issuer %s but is signed by %s: a certifier names its own key", r.Kind, named, r.Signatures[0].KeyID)
	}
	return r, nil
}

// parseStatement decodes and checks r's payload: the statement, its kind
// and its predicate.
func (r *Record) parseStatement() error {
	if err := decodeStrict(r.Payload, &r.Statement, "statement"); err != nil {
		return malformed("payload is not an in-toto statement: %w", err)
	}
	st := &r.Statement
	if st.Type != StatementType {
		return malformed("statement _type %q, want %q", st.Type, StatementType)
	}
	if len(st.Subject) == 0 || len(st.Subject) > MaxSubjects {
		return malformed("statement has %d subjects, want 1 to %d", len(st.Subject), MaxSubjects)
	}
	for i, s := range st.Subject {
		if s.Name == "" || !IsDigest(s.SHA256()) {
			return malformed("subject %d needs a name and a lowercase hex sha256 digest", i)
		}
	}
	kind, ok := kindOf[st.PredicateType]
	if !ok {
		return malformed("unknown predicate type %q", st.PredicateType)
	}
	r.Kind = kind
	if len(st.Predicate) == 0 || st.Predicate[0] != '{' {
		return malformed("%s record: predicate must be a JSON object", kind)
	}
	p, err := parsePredicate(kind, st.Predicate)
	if err != nil {
		return malformed("%s record: %w", kind, err)
	}
	r.Predicate = p
	return nil
}

// decodeStrict decodes data into v as go-json-experiment/json does
// (duplicate member names and invalid UTF-8 refused), and refuses members
// v does not define, at any depth: an *UnknownMemberError names the first.
// in says what is decoded, for the message.
func decodeStrict(data []byte, v any, in string) error {
	err := jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true))
	var se *jsonv2.SemanticError
	if errors.As(err, &se) && errors.Is(se.Err, jsonv2.ErrUnknownName) {
		return &UnknownMemberError{Member: se.JSONPointer.LastToken(), At: string(se.JSONPointer.Parent()), In: in, Err: err}
	}
	return err
}

// b64 accepts standard and URL-safe base64, as DSSE requires of verifiers.
func b64(s []byte) ([]byte, error) {
	enc := base64.StdEncoding
	if bytes.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	out := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(out, s)
	return out[:n], err
}

// Build makes the payload of a statement about subjects.
func Build(kind Kind, subjects []Subject, predicate any) ([]byte, error) {
	pt, ok := typeOf[kind]
	if !ok {
		return nil, fmt.Errorf("unknown record kind %q", kind)
	}
	pred, err := json.Marshal(predicate)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Statement{Type: StatementType, Subject: subjects, PredicateType: pt, Predicate: pred})
}

// Sign wraps payload in a DSSE envelope signed by every signer, and
// returns the parsed record.
func Sign(payload []byte, signers ...keys.Signer) (*Record, error) {
	var sigs []dsse.Signature
	for _, s := range signers {
		sig, err := SignDetached(payload, s)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	return Join(payload, sigs...)
}

// SignDetached signs payload apart: the DSSE signature {keyid, sig} over
// its PAE, to be joined with others' (Join).
func SignDetached(payload []byte, s keys.Signer) (dsse.Signature, error) {
	sig, err := s.Sign(dsse.PAE(PayloadType, payload))
	if err != nil {
		return dsse.Signature{}, err
	}
	return dsse.Signature{KeyID: keys.ID(s.Public()), Sig: base64.StdEncoding.EncodeToString(sig)}, nil
}

// Join wraps payload and its signatures, made together or apart, in a
// DSSE envelope, and returns the parsed record: the same envelope Sign
// makes when the signers sign in one process.
func Join(payload []byte, sigs ...dsse.Signature) (*Record, error) {
	env := dsse.Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: sigs}
	data, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return Parse(append(data, '\n'))
}

// ParseStatement checks the form of a payload that awaits its signatures
// (a root act prepared to be signed apart) as Parse checks a record's: it
// returns a record with no signatures and no envelope.
func ParseStatement(payload []byte) (*Record, error) {
	if len(payload) > MaxSize {
		return nil, malformed("payload is %d bytes, over the %d-byte cap", len(payload), MaxSize)
	}
	r := &Record{ID: ID(payload), Payload: payload}
	if err := r.parseStatement(); err != nil {
		return nil, err
	}
	return r, nil
}
