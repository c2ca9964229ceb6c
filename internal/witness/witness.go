// Package witness is cairn's side of C2SP tlog-witness and
// tlog-cosignature: a witness that cosigns a log's checkpoints, the client
// a log uses to ask witnesses for cosignatures, and the check a reader
// makes that a checkpoint carries enough of them.
//
// A witness remembers, for each log it witnesses (an origin and the keys
// that sign the log's checkpoints), the latest tree it cosigned, and
// cosigns a new checkpoint only with a consistency proof from that tree.
// Since it never cosigns two trees that are not consistent, a log that
// shows two readers two different histories (a split view) cannot get
// both cosigned by one honest witness; a reader that requires a quorum of
// witnesses it trusts (a Policy) refuses a checkpoint without them.
//
// Consistency does not make a cairn index's map root right: the log's key
// holder can forge a new tree's map leaf. A witness that audits the log
// (Log.Audit, an Auditor: package audit) cosigns only a tree its own
// verified replica of the index holds.
//
// The formats are the C2SP ones, so that witnesses and logs written
// elsewhere (litewitness, torchwood, sumdb's note package) interoperate:
//
//   - add-checkpoint (tlog-witness): POST <prefix>/add-checkpoint with
//     "old N", the consistency proof's hashes in base64 one a line, a
//     blank line and the signed checkpoint; the answer is 200 with
//     cosignature lines, 409 with the size the witness holds
//     (text/x.tlog.size), 403, 404, 422 or 400 (and, for a log it
//     audits, 422 for a tree the log's history does not give, 503 when
//     the audit cannot tell yet: see Auditor).
//   - cosignature/v1 (tlog-cosignature): an ed25519 note signature
//     over "cosignature/v1\ntime T\n" and the checkpoint, whose key is
//     named by a vkey "name+hash+base64(0x04 || key)".
package witness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// The errors of add-checkpoint, one per HTTP status of tlog-witness. The
// witness's errors wrap them (a Server answers with their status), and
// Submit's errors wrap them (as a *ResponseError) when a witness answers
// with their status. A 409 is a *ConflictError instead.
var (
	// ErrMalformed: 400, a request that is not a well-formed
	// add-checkpoint body, or whose old size exceeds the checkpoint's.
	ErrMalformed = errors.New("malformed add-checkpoint request")
	// ErrUnknownKey: 403, no signature on the checkpoint verifies with a
	// key the witness trusts for its origin.
	ErrUnknownKey = errors.New("no signature by a key the witness trusts for the log")
	// ErrUnknownLog: 404, the witness does not witness the origin.
	ErrUnknownLog = errors.New("the witness does not witness this log")
	// ErrBadProof: 422, the consistency proof does not prove the
	// checkpoint's tree extends the one the witness cosigned.
	ErrBadProof = errors.New("consistency proof does not verify")
)

// ConflictError is a 409 of add-checkpoint: the witness's latest cosigned
// checkpoint for Origin has size Known, not the old size Sent that the
// request named. When Known differs from Sent, the request may be made
// again with a consistency proof from Known. When they are equal, the
// witness holds another tree of that very size: the log showed it a
// different history (a split view, or a rewritten log), and no proof can
// reconcile them.
type ConflictError struct {
	URL    string // the witness (client side), or "" (witness side)
	Origin string
	Sent   int64 // the request's old size
	Known  int64 // the size of the latest checkpoint the witness cosigned
	// Evidence, on the witness's side, for a conflict at one size: the
	// checkpoint it cosigned and the one it was sent.
	Cosigned, Submitted string
}

func (e *ConflictError) Error() string {
	who := "witness"
	if e.URL != "" {
		who = "witness " + e.URL
	}
	if e.Known == e.Sent {
		msg := fmt.Sprintf("%s cosigned another tree of size %d for %s: the log showed it a different history (a split view)", who, e.Known, e.Origin)
		if e.Cosigned != "" {
			msg += fmt.Sprintf("; cosigned:\n%s; submitted:\n%s", e.Cosigned, e.Submitted)
		}
		return msg
	}
	return fmt.Sprintf("%s holds size %d for %s, not the old size %d the request named: send a consistency proof from size %d", who, e.Known, e.Origin, e.Sent, e.Known)
}

// Fork reports whether the conflict is at one size: the witness cosigned
// a different tree of the size the request named, which no retry fixes.
func (e *ConflictError) Fork() bool { return e.Known == e.Sent }

// A Witness is a witness a reader trusts: its name (the key name of its
// cosignature lines) and its ed25519 public key.
type Witness struct {
	Name string
	Key  ed25519.PublicKey
}

// algCosignatureV1 is the vkey signature type of tlog-cosignature's
// ed25519 cosignature/v1.
const algCosignatureV1 = 0x04

// ParseWitness parses a witness's vkey, "name+hash+base64(0x04 || key)"
// (C2SP signed-note verifier key, type cosignature/v1), as `cairn witness
// vkey` and litewitness print it.
func ParseWitness(vkey string) (Witness, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validName(name) || len(hash16) != 8 {
		return Witness{}, fmt.Errorf("witness key %q: not a vkey (want name+hash+base64)", vkey)
	}
	hash, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil || strings.ToLower(hash16) != hash16 { // one spelling: a vkey is compared as a string
		return Witness{}, fmt.Errorf("witness key %q: key hash %q is not 8 lowercase hex digits", vkey, hash16)
	}
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize {
		return Witness{}, fmt.Errorf("witness key %q: want base64 of 33 bytes (0x04 and an ed25519 key)", vkey)
	}
	if raw[0] != algCosignatureV1 {
		return Witness{}, fmt.Errorf("witness key %q: signature type 0x%02x, want 0x04 (cosignature/v1): is it a log's key rather than a witness's?", vkey, raw[0])
	}
	w := Witness{Name: name, Key: ed25519.PublicKey(raw[1:])}
	if uint32(hash) != w.keyHash() {
		return Witness{}, fmt.Errorf("witness key %q: key hash %s does not match the name and key (want %08x)", vkey, hash16, w.keyHash())
	}
	return w, nil
}

// String returns the witness's vkey.
func (w Witness) String() string {
	return fmt.Sprintf("%s+%08x+%s", w.Name, w.keyHash(),
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, w.Key...)))
}

// VerifierKey returns the vkey of the witness named name with key pub, as
// readers name it in their policies.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("witness name %q: want a non-empty name without spaces or '+' (e.g. witness.example.com/w1)", name)
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("witness key: want an ed25519 key, got %d bytes", len(pub))
	}
	return Witness{Name: name, Key: pub}.String(), nil
}

func (w Witness) keyHash() uint32 {
	h := sha256.New()
	h.Write([]byte(w.Name + "\n"))
	h.Write([]byte{algCosignatureV1})
	h.Write(w.Key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// Verifier returns a note verifier of the witness's cosignature/v1
// signatures. Signature bytes are an 8-byte big-endian timestamp and an
// ed25519 signature over "cosignature/v1\ntime T\n" and the note's text.
func (w Witness) Verifier() note.Verifier { return cosigVerifier{w, w.keyHash()} }

type cosigVerifier struct {
	w    Witness
	hash uint32
}

func (v cosigVerifier) Name() string    { return v.w.Name }
func (v cosigVerifier) KeyHash() uint32 { return v.hash }
func (v cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize || len(v.w.Key) != ed25519.PublicKeySize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > math.MaxInt64 {
		return false
	}
	return ed25519.Verify(v.w.Key, cosignedMessage(t, msg), sig[8:])
}

// cosignedMessage is what a cosignature/v1 signs: the header, the time
// line, then the checkpoint (the note's text).
func cosignedMessage(t uint64, checkpoint []byte) []byte {
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n", t)
	return append(m, checkpoint...)
}

// validName is signed-note's rule for key names: non-empty UTF-8, no
// Unicode spaces, no '+'.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}
