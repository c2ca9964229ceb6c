package author

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// DefaultWindow is how long a prepared root act may wait for its
// signatures: long enough for holders in other time zones to sign, short
// enough that an act nobody applied does not linger. An act signed in
// one process has it too (a clone's commit may be pushed days later).
const DefaultWindow = 7 * 24 * time.Hour

// Act is a root act prepared to be signed by each root key holder apart,
// on their own machine: its file is a DSSE envelope with no signatures
// (the act's statement is the payload). Each holder reads what it does
// (Describe) and signs it (Sign): a detached DSSE signature {keyid, sig}
// over its PAE. Apply joins the signatures into the envelope that signing
// in one process makes, and appends it.
//
// A prepared act is issued when it is prepared and carries an apply_by
// time (see record.Record.ApplyBy): however long its holders take to
// sign, within that window, it is accepted; after it, the index refuses
// it, so an act nobody applied does not wait for years for someone to.
type Act struct {
	rec *record.Record // the statement, unsigned
}

// prepare builds an act's statement with its window, for the index r:
// the statement names r's introduction, so that it applies to no other
// index with the same root keys.
func prepare(r *index.Repo, window time.Duration, build func(applyBy *time.Time, index string) ([]byte, error)) (*Act, error) {
	if window <= 0 {
		return nil, fmt.Errorf("an act's window must be positive, not %s", window)
	}
	if window > record.MaxActWindow {
		return nil, fmt.Errorf("an act's window of %s is longer than the %s allowed: an act waits for its signatures for days, not months", window, record.MaxActWindow)
	}
	if r.Config.Introduction == "" {
		return nil, fmt.Errorf("%s has no pinned introduction: an act names the index it is for", r.Dir)
	}
	by := now().Add(window)
	payload, err := build(&by, r.Config.Introduction)
	if err != nil {
		return nil, err
	}
	rec, err := record.ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	return &Act{rec: rec}, nil
}

// ParseAct reads an act's file.
func ParseAct(data []byte) (*Act, error) {
	var env dsse.Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("not a root act (a DSSE envelope with no signatures): %w", err)
	}
	if env.PayloadType != record.PayloadType {
		return nil, fmt.Errorf("not a root act: payload type %q, want %q", env.PayloadType, record.PayloadType)
	}
	if len(env.Signatures) != 0 {
		return nil, fmt.Errorf("the act carries %d signature(s): an act's file is unsigned, its signatures travel apart (cairn root sign writes one)", len(env.Signatures))
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("not a root act: payload is not base64: %w", err)
	}
	rec, err := record.ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	if !rec.Kind.IsRootSigned() {
		return nil, fmt.Errorf("a %s record is not a root act (grant, revoke-key, root, upstream)", rec.Kind)
	}
	if rec.ApplyBy() == nil {
		return nil, fmt.Errorf("the %s act has no apply_by time: prepare it with --unsigned", rec.Kind)
	}
	return &Act{rec: rec}, nil
}

// Marshal is the act's file.
func (a *Act) Marshal() ([]byte, error) {
	env := dsse.Envelope{PayloadType: record.PayloadType, Payload: base64.StdEncoding.EncodeToString(a.rec.Payload), Signatures: []dsse.Signature{}}
	data, err := json.MarshalIndent(env, "", "  ")
	return append(data, '\n'), err
}

// ID is the act's id: the sha256 of its payload, the id of the record it
// becomes.
func (a *Act) ID() string { return a.rec.ID }

// Index is the introduction of the index the act is for.
func (a *Act) Index() string { return a.rec.ActIndex() }

// Summary says in one line what the act does.
func (a *Act) Summary() string { return Summary(a.rec) }

// ApplyBy is the end of the act's window.
func (a *Act) ApplyBy() time.Time { return *a.rec.ApplyBy() }

// Describe says what signing the act signs: its summary, id, window and
// statement.
func (a *Act) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "act %s: %s\n", a.rec.ID, Summary(a.rec))
	fmt.Fprintf(&b, "apply by %s\n", a.ApplyBy().UTC().Format(time.RFC3339))
	if idx := a.rec.ActIndex(); idx != "" {
		fmt.Fprintf(&b, "for the index whose introduction is %s\n", idx)
	}
	var st bytes.Buffer
	if json.Indent(&st, a.rec.Payload, "", "  ") == nil {
		b.Write(st.Bytes())
		b.WriteByte('\n')
	}
	return b.String()
}

// Sign signs the act with s, apart: a detached DSSE signature. It refuses
// an act whose window has passed.
func (a *Act) Sign(s keys.Signer) (dsse.Signature, error) {
	if t := now(); t.After(a.ApplyBy()) {
		// The rule the index would refuse it by (exit 3, as root apply).
		return dsse.Signature{}, &index.RuleError{Rule: index.RuleActWindow, Record: a.rec.ID, Detail: fmt.Sprintf("act %.16s was to be applied by %s (it is now %s): it can no longer enter an index; ask for it to be prepared again", a.rec.ID, a.ApplyBy().UTC().Format(time.RFC3339), t.Format(time.RFC3339))}
	}
	return record.SignDetached(a.rec.Payload, s)
}

// ParseSignature reads a detached signature's file: one DSSE signature.
func ParseSignature(data []byte) (dsse.Signature, error) {
	var sig dsse.Signature
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sig); err != nil {
		return sig, fmt.Errorf("not a detached signature ({\"keyid\": …, \"sig\": …}): %w", err)
	}
	if _, err := keys.HexFromID(sig.KeyID); err != nil {
		return sig, err
	}
	if raw, err := base64.StdEncoding.DecodeString(sig.Sig); err != nil || len(raw) != 64 {
		return sig, fmt.Errorf("signature of key %s is not a base64 ed25519 signature", sig.KeyID)
	}
	return sig, nil
}

// Detached is a detached signature and where it came from (a file name),
// for the errors.
type Detached struct {
	Source string
	dsse.Signature
}

// ErrSignature is the parent of every SignatureError.
var ErrSignature = errors.New("root act signature refused")

// SignatureError is a detached signature refused, with its evidence: where
// it came from, its key and the act.
type SignatureError struct {
	Source string // the signature's file
	KeyID  string // the key it names
	Act    string // the act's id
	Reason string
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("signature %s by %s on act %.16s: %s", e.Source, e.KeyID, e.Act, e.Reason)
}

// Unwrap returns ErrSignature.
func (e *SignatureError) Unwrap() error { return ErrSignature }

// Apply joins an act's detached signatures and appends the record. Every
// signature must be by a distinct root key (for a rotation, a current or
// a new one) and verify over the act; the index's rules then check the
// threshold and the window, as for an act signed in one process.
func Apply(ctx context.Context, r *index.Repo, a *Act, sigs []Detached) (*Added, error) {
	if len(sigs) == 0 {
		return nil, fmt.Errorf("act %.16s has no signatures: each root key holder signs it (cairn root sign)", a.rec.ID)
	}
	st, err := headState(ctx, r)
	if err != nil {
		return nil, err
	}
	root, err := st.Root()
	if err != nil {
		return nil, err
	}
	candidates := map[string]string{} // key id → what it is
	pubs := map[string][]byte{}
	for id, pub := range root.Keys {
		candidates[id], pubs[id] = fmt.Sprintf("root key of root version %d", root.Version), pub
	}
	if p, ok := a.rec.Predicate.(record.RootPredicate); ok {
		for _, k := range p.Keys {
			pub, _, err := keys.ParsePublic([]byte(k.Key))
			if err != nil {
				return nil, err
			}
			id := keys.ID(pub)
			if _, cur := candidates[id]; !cur {
				candidates[id], pubs[id] = fmt.Sprintf("new root key of root version %d", p.Version), pub
			}
		}
	}
	var known []string
	for id := range candidates {
		known = append(known, id)
	}
	sort.Strings(known)
	seen := map[string]string{}
	var joined []dsse.Signature
	for _, s := range sigs {
		fail := func(format string, args ...any) error {
			return &SignatureError{Source: s.Source, KeyID: s.KeyID, Act: a.rec.ID, Reason: fmt.Sprintf(format, args...)}
		}
		if prev, ok := seen[s.KeyID]; ok {
			return nil, fail("the key signed already (%s): a threshold counts distinct keys", prev)
		}
		seen[s.KeyID] = s.Source
		if _, ok := candidates[s.KeyID]; !ok {
			return nil, fail("the key is not a root key of %s (it may sign: %s)", r.Dir, strings.Join(known, ", "))
		}
		joined = append(joined, s.Signature)
	}
	rec, err := record.Join(a.rec.Payload, joined...)
	if err != nil {
		return nil, err
	}
	for i, s := range sigs {
		if !rec.VerifySignature(i, pubs[s.KeyID]) {
			return nil, &SignatureError{Source: s.Source, KeyID: s.KeyID, Act: a.rec.ID,
				Reason: "it does not verify over this act: it was made over another act, or the act was changed after it was signed"}
		}
	}
	return addAs(ctx, r, st, sigs[0].KeyID, Summary(rec), index.Change{Records: []*record.Record{rec}})
}
