package witness

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// ErrUnwitnessed is what a reader whose Policy requires no cosignature
// must be told (Policy.Unwitnessed): nothing then stops a log from
// showing it a history that other readers are not shown.
var ErrUnwitnessed = errors.New("no witness cosignatures are required: a split view cannot be detected (name witnesses you trust and a quorum)")

// Policy is which witnesses a reader trusts for a log, and how many of
// them must have cosigned a checkpoint (k of n, as C2SP tlog-policy's
// "group k" of witnesses). Witnesses are counted by their public key: a
// key listed twice, or under two names, counts once.
type Policy struct {
	Witnesses []Witness
	Quorum    int
}

// NewPolicy returns the policy requiring quorum cosignatures by the
// witnesses named by vkeys (as ParseWitness reads them).
func NewPolicy(vkeys []string, quorum int) (Policy, error) {
	p := Policy{Quorum: quorum}
	for _, k := range vkeys {
		w, err := ParseWitness(k)
		if err != nil {
			return Policy{}, err
		}
		p.Witnesses = append(p.Witnesses, w)
	}
	if err := p.valid(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Unwitnessed reports whether the policy requires no cosignature, so
// that a split view cannot be detected: say so to the reader
// (ErrUnwitnessed).
func (p Policy) Unwitnessed() bool { return p.Quorum == 0 }

// keys returns the distinct public keys of the policy's witnesses.
func (p Policy) keys() map[string]bool {
	ks := map[string]bool{}
	for _, w := range p.Witnesses {
		ks[string(w.Key)] = true
	}
	return ks
}

func (p Policy) valid() error {
	for _, w := range p.Witnesses {
		if !validName(w.Name) || len(w.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("witness policy: witness %q: want a name and an ed25519 key", w.Name)
		}
	}
	if n := len(p.keys()); p.Quorum < 0 || p.Quorum > n {
		return fmt.Errorf("witness policy: quorum %d of %d distinct witness keys: want 0 to %d", p.Quorum, n, n)
	}
	return nil
}

// A Cosignature is a valid cosignature of a checkpoint by a trusted
// witness.
type Cosignature struct {
	Witness Witness
	Time    time.Time // when the witness cosigned, as it says
}

// Cosignatures returns the valid cosignatures of the checkpoint in
// signedNote by the policy's witnesses, one per distinct witness key,
// after checking that the note's text is a checkpoint of origin.
// Signatures by other keys (the log's own, unknown witnesses') are
// ignored; a signature line repeated, or a key listed under two names,
// counts once. A signature by a trusted witness's key that does not
// verify is an error: someone forged or altered it.
func (p Policy) Cosignatures(signedNote []byte, origin string) ([]Cosignature, error) {
	if err := p.valid(); err != nil {
		return nil, err
	}
	i := bytes.LastIndex(signedNote, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("witness cosignatures: not a signed note (no blank line before its signatures)")
	}
	c, err := torchwood.ParseCheckpoint(string(signedNote[:i+1]))
	if err != nil {
		return nil, fmt.Errorf("witness cosignatures: %w", err)
	}
	if c.Origin != origin {
		return nil, fmt.Errorf("witness cosignatures: the checkpoint is of %q, not of %q", c.Origin, origin)
	}
	// Each (name, key hash) once: note.Open refuses two verifiers for one.
	var vs []note.Verifier
	seen := map[string]bool{}
	for _, w := range p.Witnesses {
		v := w.Verifier()
		id := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
		if !seen[id] {
			seen[id] = true
			vs = append(vs, v)
		}
	}
	n, err := note.Open(signedNote, note.VerifierList(vs...))
	var unverified *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unverified):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("witness cosignatures on the checkpoint of %s: %w", origin, err)
	}
	byKey := map[string]bool{}
	var out []Cosignature
	for _, sig := range n.Sigs {
		var w Witness
		for _, x := range p.Witnesses {
			if x.Name == sig.Name && x.keyHash() == sig.Hash {
				w = x
				break
			}
		}
		if byKey[string(w.Key)] {
			continue
		}
		byKey[string(w.Key)] = true
		t, err := cosignatureTime(sig)
		if err != nil {
			return nil, err
		}
		out = append(out, Cosignature{Witness: w, Time: t})
	}
	return out, nil
}

// Check counts the valid cosignatures of the checkpoint in signedNote by
// distinct trusted witness keys (see Cosignatures), and refuses it with a
// *QuorumError when they are fewer than the quorum. It does not check
// the log's own signature: the caller does, with the log's keys. A
// policy with quorum 0 accepts any checkpoint of origin; the caller
// tells the reader ErrUnwitnessed.
func (p Policy) Check(signedNote []byte, origin string) (n int, err error) {
	cs, err := p.Cosignatures(signedNote, origin)
	if err != nil {
		return 0, err
	}
	if len(cs) < p.Quorum {
		e := &QuorumError{Origin: origin, Quorum: p.Quorum, Checkpoint: string(signedNote)}
		found := map[string]bool{}
		for _, c := range cs {
			e.Found = append(e.Found, c.Witness.Name)
			found[string(c.Witness.Key)] = true
		}
		for _, w := range p.Witnesses {
			if !found[string(w.Key)] {
				found[string(w.Key)] = true
				e.Missing = append(e.Missing, w.Name)
			}
		}
		return len(cs), e
	}
	return len(cs), nil
}

// QuorumError refuses a checkpoint cosigned by fewer trusted witnesses
// than the policy's quorum, naming those found and those missing, with
// the checkpoint as evidence.
type QuorumError struct {
	Origin         string
	Quorum         int
	Found, Missing []string // witness names
	Checkpoint     string   // the signed note refused
}

func (e *QuorumError) Error() string {
	found := "none"
	if len(e.Found) > 0 {
		found = strings.Join(e.Found, ", ")
	}
	return fmt.Sprintf("checkpoint of %s is cosigned by %d of the %d trusted witnesses required (found: %s; missing: %s)",
		e.Origin, len(e.Found), e.Quorum, found, strings.Join(e.Missing, ", "))
}

// cosignatureTime returns the time a cosignature/v1 says it was made.
func cosignatureTime(sig note.Signature) (time.Time, error) {
	raw, err := base64.StdEncoding.DecodeString(sig.Base64)
	if err != nil || len(raw) != 4+8+ed25519.SignatureSize {
		return time.Time{}, fmt.Errorf("cosignature by %s: malformed", sig.Name)
	}
	t := binary.BigEndian.Uint64(raw[4:])
	if t > math.MaxInt64 {
		return time.Time{}, fmt.Errorf("cosignature by %s: timestamp %d out of range", sig.Name, t)
	}
	return time.Unix(int64(t), 0).UTC(), nil
}
