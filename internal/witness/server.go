package witness

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/keys"
)

// MaxRequest is the largest add-checkpoint body a Server reads: 63 proof
// lines and a checkpoint with a few signatures take a few KiB.
const MaxRequest = 64 << 10

// maxProof is tlog-witness's bound on consistency proof lines.
const maxProof = 63

// maxTreeSize is the largest tree a checkpoint may claim: past it the
// proof arithmetic of x/mod's tlog overflows (and a tree of 2^62 leaves
// is no log's). The witness cosigns any C2SP log's checkpoints, so it
// holds this bound itself; cairn's own (checkpoint.MaxSize) is the same.
const maxTreeSize = 1 << 62

// Server is a witness: an http.Handler for tlog-witness's
// POST /add-checkpoint over a State, cosigning with one ed25519 key.
type Server struct {
	state  *State
	signer *torchwood.CosignatureSigner
	log    *slog.Logger

	auditor Auditor // nil: audited logs are refused (503)

	// beforeAdvance, when set (by tests), runs after a request's checks
	// pass and before the state moves: where two requests race.
	beforeAdvance func()
}

// An Auditor checks, for a log the witness audits (Log.Audit), that a
// checkpoint's tree is the one the log's history gives: a witness that
// checks only trees' consistency cosigns a tree whose map leaf a log's
// key holder forged (a map that omits a record); an auditing witness
// recomputes the log from the history and refuses it.
//
// Audit is called after the checks of tlog-witness pass and before the
// state moves, without the state's lock held. An error wrapping ErrAudit
// says the tree is not the history's (the witness answers 422 and logs
// it as evidence); any other, that the auditor could not tell (503).
type Auditor interface {
	Audit(ctx context.Context, l Log, checkpoint string) error
}

// The errors of an audit.
var (
	// ErrAudit: 422, the checkpoint's tree is not the one the log's
	// history gives (another root, another map leaf, a head not at the
	// tree's end), or the history breaks the index's rules: the log's
	// key holder signed a log no full replica accepts.
	ErrAudit = errors.New("the checkpoint's tree is not the one its history gives")
	// ErrAuditUnavailable: 503, the auditor could not check the
	// checkpoint now (the server unreachable, its history not yet at the
	// checkpoint's head, a pull still running): the log may submit again.
	ErrAuditUnavailable = errors.New("the witness cannot audit the checkpoint now")
)

// SetAuditor makes the witness audit the logs whose Log.Audit is set with
// a; without one, their checkpoints are refused (503). Call it before
// serving.
func (s *Server) SetAuditor(a Auditor) { s.auditor = a }

// NewServer returns a witness named name (the key name of its
// cosignatures, e.g. witness.example.com/w1) that keeps its memory in
// state and cosigns with key, a key file's or an ssh-agent's. log gets
// one line per refusal that may be evidence of a misbehaving log (nil:
// none).
func NewServer(name string, key keys.Signer, state *State, log *slog.Logger) (*Server, error) {
	if !validName(name) {
		return nil, fmt.Errorf("witness name %q: want a non-empty name without spaces or '+' (e.g. witness.example.com/w1)", name)
	}
	s, err := torchwood.NewCosignatureSigner(name, cryptoSigner{key})
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{state: state, signer: s, log: log}, nil
}

// VerifierKey returns the witness's vkey, which readers put in their
// policies.
func (s *Server) VerifierKey() string { return s.signer.Verifier().String() }

// ServeHTTP answers POST /add-checkpoint as tlog-witness says; anything
// else is 404 (or 405 for another method).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "add-checkpoint takes POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequest))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			http.Error(w, fmt.Sprintf("request over %d bytes", MaxRequest), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	cosigs, err := s.AddCheckpoint(r.Context(), body)
	var ce *ConflictError
	switch {
	case err == nil:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(cosigs)
	case errors.As(err, &ce):
		w.Header().Set("Content-Type", "text/x.tlog.size")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "%d\n", ce.Known)
	case errors.Is(err, ErrMalformed):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrUnknownKey):
		http.Error(w, err.Error(), http.StatusForbidden)
	case errors.Is(err, ErrUnknownLog):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrBadProof), errors.Is(err, ErrAudit):
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
	case errors.Is(err, ErrAuditUnavailable):
		w.Header().Set("Retry-After", "10")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		s.log.Error("add-checkpoint", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// AddCheckpoint is add-checkpoint without HTTP: it checks the request
// body and, if the checkpoint is consistent with the latest one cosigned
// for its origin, records it and returns the witness's cosignature lines.
// Its errors wrap ErrMalformed, ErrUnknownLog, ErrUnknownKey or
// ErrBadProof, or are a *ConflictError; for an audited log, they may
// wrap ErrAudit or ErrAuditUnavailable (see Auditor).
func (s *Server) AddCheckpoint(ctx context.Context, body []byte) ([]byte, error) {
	oldSize, proof, signed, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(signed, '\r') >= 0 {
		// No line of a checkpoint or of a signature holds one: a note
		// written with CRLF line ends, not another log.
		return nil, fmt.Errorf("%w: the checkpoint note holds a carriage return (lines end with a newline alone)", ErrMalformed)
	}
	origin, _, _ := strings.Cut(string(signed), "\n")
	l, err := s.state.Log(origin)
	if err != nil {
		return nil, err
	}
	vs, err := l.verifiers()
	if err != nil {
		return nil, err
	}
	n, err := openAny(signed, vs)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return nil, fmt.Errorf("%w: checkpoint of %s", ErrUnknownKey, origin)
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("%w: checkpoint of %s: %v", ErrUnknownKey, origin, err)
		}
		return nil, fmt.Errorf("%w: checkpoint note: %v", ErrMalformed, err)
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if c.N > maxTreeSize {
		return nil, fmt.Errorf("%w: a tree of %d leaves, more than %d", ErrMalformed, c.N, int64(maxTreeSize))
	}
	if c.String() != n.Text {
		return nil, fmt.Errorf("%w: the checkpoint's root hash is not in canonical base64", ErrMalformed)
	}
	if oldSize > c.N {
		return nil, fmt.Errorf("%w: old size %d exceeds the checkpoint's size %d", ErrMalformed, oldSize, c.N)
	}
	if oldSize != l.Size {
		return nil, &ConflictError{Origin: origin, Sent: oldSize, Known: l.Size}
	}
	switch {
	case oldSize == c.N:
		if len(proof) != 0 {
			return nil, fmt.Errorf("%w: a proof from size %d to itself must be empty", ErrBadProof, oldSize)
		}
		if c.Hash != l.Hash {
			s.log.Warn("add-checkpoint: a different tree of the size cosigned (split view)", "origin", origin, "cosigned", l.Checkpoint, "submitted", n.Text)
			return nil, &ConflictError{Origin: origin, Sent: oldSize, Known: l.Size, Cosigned: l.Checkpoint, Submitted: n.Text}
		}
		if strings.HasPrefix(origin, CairnOriginPrefix) && l.Checkpoint != "" && !sameExtension(l.Checkpoint, n.Text) {
			s.log.Warn("add-checkpoint: the tree cosigned with other extension lines (another map or head: a split view)", "origin", origin, "cosigned", l.Checkpoint, "submitted", n.Text)
			return nil, &ConflictError{Origin: origin, Sent: oldSize, Known: l.Size, Cosigned: l.Checkpoint, Submitted: n.Text}
		}
	case oldSize == 0:
		if len(proof) != 0 {
			return nil, fmt.Errorf("%w: the proof from size 0 must be empty", ErrBadProof)
		}
	default:
		if err := tlog.CheckTree(proof, c.N, c.Hash, l.Size, l.Hash); err != nil {
			s.log.Warn("add-checkpoint: consistency proof does not verify", "origin", origin, "cosigned", l.Checkpoint, "submitted", n.Text, "err", err)
			return nil, fmt.Errorf("%w: from size %d to %d of %s: %v", ErrBadProof, l.Size, c.N, origin, err)
		}
	}
	// Dated as a cairn index's log dates its checkpoints: checked once
	// the tree is known consistent (a stale size is a 409 first).
	if strings.HasPrefix(origin, CairnOriginPrefix) {
		if err := checkCairnTime(n.Text, l.Checkpoint, time.Now()); err != nil {
			return nil, err
		}
	}
	if l.Audit != "" {
		if err := s.audit(ctx, l, n.Text); err != nil {
			return nil, err
		}
	}
	if s.beforeAdvance != nil {
		s.beforeAdvance()
	}
	if err := s.state.Advance(origin, l.Tree(), c.Tree, n.Text); err != nil {
		return nil, err
	}
	cosigned, err := note.Sign(&note.Note{Text: n.Text}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("witness %s: cosigning: %w", s.signer.Name(), err)
	}
	// The signed note is the text, a blank line, and the one signature line.
	return cosigned[len(n.Text)+1:], nil
}

// audit runs the auditor on a checkpoint of an audited log, logging a
// refusal with the evidence.
func (s *Server) audit(ctx context.Context, l Log, text string) error {
	if s.auditor == nil {
		return fmt.Errorf("%w: the log %s is audited (against %s) but this witness runs no auditor", ErrAuditUnavailable, l.Origin, l.Audit)
	}
	err := s.auditor.Audit(ctx, l, text)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAudit):
		s.log.Warn("add-checkpoint: SECURITY: the checkpoint's tree is not the one its history gives (the log's key signed a log no replica accepts)", "origin", l.Origin, "audit", l.Audit, "cosigned", l.Checkpoint, "submitted", text, "err", err)
		return err
	case errors.Is(err, ErrAuditUnavailable):
		s.log.Info("add-checkpoint: not audited", "origin", l.Origin, "audit", l.Audit, "err", err)
		return err
	}
	s.log.Warn("add-checkpoint: the audit failed", "origin", l.Origin, "audit", l.Audit, "err", err)
	return fmt.Errorf("%w: %s: %w", ErrAuditUnavailable, l.Origin, err)
}

// maxAhead is how far in the future of the witness's clock a cairn
// index's checkpoint may be dated: far more than two machines' clocks
// drift apart (a server's checkpoint is not left uncosigned by a clock
// stepped a few minutes), far less than a date no clock reached.
const maxAhead = time.Hour

// checkCairnTime checks a cairn index's checkpoint's time (its one
// cairn-time line, Unix seconds): not before the time of the checkpoint
// cosigned last (cosigned, "" for none), whose tree it extends, and not
// more than maxAhead past now. A witness cosigned one dated 1970, in the
// year 5138, or not dated at all.
func checkCairnTime(text, cosigned string, now time.Time) error {
	t, err := cairnTime(text)
	if err != nil {
		return err
	}
	if t.After(now.Add(maxAhead)) {
		return fmt.Errorf("%w: cairn-time %s is past this witness's clock (%s) by more than %s", ErrMalformed, t.Format(time.RFC3339), now.UTC().Format(time.RFC3339), maxAhead)
	}
	if cosigned != "" {
		if last, err := cairnTime(cosigned); err == nil && t.Before(last) {
			return fmt.Errorf("%w: cairn-time %s is before the time of the checkpoint cosigned last (%s): a log's time does not go back", ErrMalformed, t.Format(time.RFC3339), last.Format(time.RFC3339))
		}
	}
	return nil
}

// cairnTime reads a checkpoint's one cairn-time line.
func cairnTime(text string) (time.Time, error) {
	var found []string
	for _, line := range extensionsOf(text) {
		if v, ok := strings.CutPrefix(line, "cairn-time "); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		return time.Time{}, fmt.Errorf("%w: %d cairn-time lines, want one (a cairn index's checkpoint is dated)", ErrMalformed, len(found))
	}
	secs, err := strconv.ParseInt(found[0], 10, 64)
	if err != nil || secs < 0 || strconv.FormatInt(secs, 10) != found[0] {
		return time.Time{}, fmt.Errorf("%w: cairn-time %q is not Unix seconds", ErrMalformed, found[0])
	}
	return time.Unix(secs, 0).UTC(), nil
}

// extensionsOf returns the lines of a checkpoint's text after its
// origin, size and root hash.
func extensionsOf(text string) []string {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return nil
	}
	return lines[3:]
}

// sameExtension reports whether two checkpoints of one tree carry the
// same extension lines, but for cairn-time: a cairn index's log may sign
// its tree again later, but not with another cairn-map or cairn-head (its
// tree binds them: see Leaves in docs/transparency.md; other lines are a
// split view of them). Only cairn origins are held to it: tlog-witness
// requires cosigning the same tree whatever its extension lines.
func sameExtension(a, b string) bool {
	return slices.Equal(extensionLines(a), extensionLines(b))
}

// extensionLines returns the lines of a checkpoint's text after its
// origin, size and root hash, without its cairn-time lines.
func extensionLines(text string) []string {
	var ext []string
	for _, line := range extensionsOf(text) {
		if !strings.HasPrefix(line, "cairn-time ") {
			ext = append(ext, line)
		}
	}
	return ext
}

// openAny opens a signed note by any one of its signatures that
// verifies: note.Open refuses a note one of whose signatures by a known
// key does not verify, and tlog-witness refuses (403) only when none of
// them does.
func openAny(signed []byte, vs note.Verifiers) (*note.Note, error) {
	n, err := note.Open(signed, vs)
	var invalid *note.InvalidSignatureError
	if !errors.As(err, &invalid) {
		return n, err
	}
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return nil, err
	}
	text, sigs := signed[:i+2], signed[i+2:]
	for _, line := range bytes.SplitAfter(sigs, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if one, oerr := note.Open(append(bytes.Clone(text), line...), vs); oerr == nil {
			return one, nil
		}
	}
	return nil, err
}

// parseRequest splits an add-checkpoint body into the old size, the
// proof and the signed checkpoint note.
func parseRequest(body []byte) (oldSize int64, proof tlog.TreeProof, signed []byte, err error) {
	head, signed, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return 0, nil, nil, fmt.Errorf("%w: no blank line before the checkpoint", ErrMalformed)
	}
	lines := strings.Split(string(head), "\n")
	size, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return 0, nil, nil, fmt.Errorf("%w: the first line is not \"old SIZE\"", ErrMalformed)
	}
	oldSize, err = strconv.ParseInt(size, 10, 64)
	if err != nil || oldSize < 0 || strconv.FormatInt(oldSize, 10) != size {
		return 0, nil, nil, fmt.Errorf("%w: old size %q is not a decimal without leading zeros", ErrMalformed, size)
	}
	if len(lines)-1 > maxProof {
		return 0, nil, nil, fmt.Errorf("%w: %d proof lines, at most %d", ErrMalformed, len(lines)-1, maxProof)
	}
	for i, line := range lines[1:] {
		h, err := tlog.ParseHash(line)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%w: proof line %d is not a base64 hash", ErrMalformed, i+1)
		}
		proof = append(proof, h)
	}
	return oldSize, proof, signed, nil
}

// cryptoSigner is a keys.Signer (a key file's or an ssh-agent's) as the
// crypto.Signer torchwood's cosigner takes: ed25519 signs the message
// itself, unhashed.
type cryptoSigner struct{ k keys.Signer }

func (s cryptoSigner) Public() crypto.PublicKey { return s.k.Public() }

func (s cryptoSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.Hash(0) {
		return nil, fmt.Errorf("ed25519 signs messages unhashed, not with %v", opts.HashFunc())
	}
	sig, err := s.k.Sign(msg)
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("signature of %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	return sig, nil
}
