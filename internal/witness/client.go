package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// maxResponse bounds what Submit reads of a witness's answer.
const maxResponse = 64 << 10

// ResponseError is a witness's refusal other than a 409: Err is
// ErrMalformed (400), ErrUnknownKey (403), ErrUnknownLog (404) or
// ErrBadProof (422), or nil for another status.
type ResponseError struct {
	URL    string
	Status int
	Body   string // the start of the answer's body, for the operator
	Err    error
	// RetryAfter is the wait the answer's Retry-After header asks for
	// (a 503's "cannot tell yet"), in seconds or as an HTTP date; 0 if
	// it has none.
	RetryAfter time.Duration
}

func (e *ResponseError) Error() string {
	what := http.StatusText(e.Status)
	if e.Err != nil {
		what = e.Err.Error()
	}
	msg := fmt.Sprintf("witness %s: %d: %s", e.URL, e.Status, what)
	if body := strings.TrimSpace(e.Body); body != "" {
		msg += " (" + body + ")"
	}
	return msg
}

func (e *ResponseError) Unwrap() error { return e.Err }

// Submit asks the witness whose submission prefix is witnessURL to
// cosign signedCheckpoint (a signed note), with a consistency proof from
// oldSize, the size of the latest checkpoint the witness is believed to
// have cosigned for the log (0 for none), as C2SP tlog-witness's
// add-checkpoint says. It returns the witness's cosignature lines
// (AppendCosignatures adds them to the note), which the caller should
// check (Policy.Check) before serving them.
//
// A 409 is a *ConflictError carrying the size the witness holds: submit
// again with a proof from that size (Cosign does), unless its Fork
// reports a conflict at one size. Other refusals are a *ResponseError
// wrapping ErrMalformed, ErrUnknownKey, ErrUnknownLog or ErrBadProof.
func Submit(ctx context.Context, hc *http.Client, witnessURL string, oldSize int64, proof tlog.TreeProof, signedCheckpoint []byte) (cosignatures []byte, err error) {
	if oldSize < 0 || len(proof) > maxProof {
		return nil, fmt.Errorf("witness %s: old size %d with %d proof hashes: want a size ≥ 0 and at most %d hashes", witnessURL, oldSize, len(proof), maxProof)
	}
	if len(signedCheckpoint) == 0 || signedCheckpoint[len(signedCheckpoint)-1] != '\n' {
		return nil, fmt.Errorf("witness %s: the signed checkpoint does not end with a newline", witnessURL)
	}
	origin, _, _ := strings.Cut(string(signedCheckpoint), "\n")
	var body bytes.Buffer
	fmt.Fprintf(&body, "old %d\n", oldSize)
	for _, h := range proof {
		body.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		body.WriteByte('\n')
	}
	body.WriteByte('\n')
	body.Write(signedCheckpoint)
	url := strings.TrimSuffix(witnessURL, "/") + "/add-checkpoint"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &body)
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", witnessURL, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness %s: add-checkpoint: %w", witnessURL, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("witness %s: reading its answer: %w", witnessURL, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if err := checkSignatureLines(answer); err != nil {
			return nil, fmt.Errorf("witness %s: answer to add-checkpoint: %w", witnessURL, err)
		}
		return answer, nil
	case http.StatusConflict:
		text := strings.TrimSuffix(string(answer), "\n")
		known, err := strconv.ParseInt(text, 10, 64)
		if err != nil || known < 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/x.tlog.size") {
			return nil, &ResponseError{URL: witnessURL, Status: resp.StatusCode, Body: excerpt(answer)}
		}
		return nil, &ConflictError{URL: witnessURL, Origin: origin, Sent: oldSize, Known: known}
	}
	e := &ResponseError{URL: witnessURL, Status: resp.StatusCode, Body: excerpt(answer), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	switch resp.StatusCode {
	case http.StatusBadRequest:
		e.Err = ErrMalformed
	case http.StatusForbidden:
		e.Err = ErrUnknownKey
	case http.StatusNotFound:
		e.Err = ErrUnknownLog
	case http.StatusUnprocessableEntity:
		e.Err = ErrBadProof
	}
	return nil, e
}

// retryAfter parses a Retry-After header (RFC 9110: seconds, or an HTTP
// date): 0 for none, or one that cannot be read or is past.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// ProveFunc returns a consistency proof from the log's tree of size old
// to the tree of the checkpoint being submitted (tlog.ProveTree).
type ProveFunc func(old int64) (tlog.TreeProof, error)

// Cosign gets the cosignature lines of the witness at witnessURL for
// signedCheckpoint: it submits it with a proof from last, the size of
// the latest checkpoint the witness cosigned as far as the caller knows
// (0 when it does not know), and, when the witness answers that it holds
// another size smaller than the checkpoint's, once more with a proof
// from that size. A witness that holds a larger size, or another tree of
// the same size (ConflictError.Fork), does not cosign: its
// *ConflictError is returned.
func Cosign(ctx context.Context, hc *http.Client, witnessURL string, last int64, signedCheckpoint []byte, prove ProveFunc) ([]byte, error) {
	i := bytes.LastIndex(signedCheckpoint, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("witness %s: submitting a checkpoint: not a signed note (no blank line before its signatures)", witnessURL)
	}
	c, err := torchwood.ParseCheckpoint(string(signedCheckpoint[:i+1]))
	if err != nil {
		return nil, fmt.Errorf("witness %s: submitting a checkpoint: %w", witnessURL, err)
	}
	if last < 0 || last > c.N {
		last = 0
	}
	for try := 0; ; try++ {
		proof, err := proofFrom(prove, last, c.N)
		if err != nil {
			return nil, fmt.Errorf("witness %s: consistency proof from %d to %d: %w", witnessURL, last, c.N, err)
		}
		cosigs, err := Submit(ctx, hc, witnessURL, last, proof, signedCheckpoint)
		ce, ok := err.(*ConflictError)
		if !ok || try > 0 || ce.Fork() || ce.Known > c.N {
			return cosigs, err
		}
		last = ce.Known
	}
}

func proofFrom(prove ProveFunc, old, n int64) (tlog.TreeProof, error) {
	if old == 0 || old == n {
		return nil, nil
	}
	return prove(old)
}

// AppendCosignatures returns signedNote with the signature lines of
// cosignatures added after its own (a line it already has is not added
// twice). Any reader ignores signatures by keys it does not know, so the
// note stays valid for every reader it was valid for.
func AppendCosignatures(signedNote, cosignatures []byte) ([]byte, error) {
	i := bytes.LastIndex(signedNote, []byte("\n\n"))
	if i < 0 || !bytes.HasSuffix(signedNote, []byte("\n")) {
		return nil, fmt.Errorf("adding cosignatures: not a signed note (no blank line before its signatures)")
	}
	if err := checkSignatureLines(cosignatures); err != nil {
		return nil, fmt.Errorf("adding cosignatures: %w", err)
	}
	have := map[string]bool{}
	for _, line := range strings.SplitAfter(string(signedNote[i+2:]), "\n") {
		have[line] = true
	}
	out := bytes.Clone(signedNote)
	for _, line := range strings.SplitAfter(string(cosignatures), "\n") {
		if line != "" && !have[line] {
			have[line] = true
			out = append(out, line...)
		}
	}
	return out, nil
}

// checkSignatureLines checks that b is one or more note signature lines:
// "— NAME BASE64\n" each.
func checkSignatureLines(b []byte) error {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return fmt.Errorf("want note signature lines (\"— name base64\"), each ending with a newline: got %q", excerpt(b))
	}
	for _, line := range strings.Split(string(b[:len(b)-1]), "\n") {
		rest, ok := strings.CutPrefix(line, "— ")
		name, b64, ok2 := strings.Cut(rest, " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if !ok || !ok2 || !validName(name) || err != nil || len(sig) < 5 {
			return fmt.Errorf("not a note signature line: %q", line)
		}
	}
	return nil
}

// excerpt returns the start of b, for an error.
func excerpt(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// Endpoint is a witness a log's checkpoints are submitted to: its
// submission URL and its verifier key (as `cairn witness vkey` prints it).
type Endpoint struct {
	URL  string
	VKey string
}

// ParseEndpoint parses a witness as the command line names one:
// URL=VKEY, split at the first '=' (a vkey may end with base64 padding).
func ParseEndpoint(s string) (Endpoint, error) {
	url, vkey, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return Endpoint{}, fmt.Errorf("witness %q: want URL=VKEY, the witness's submission URL (http:// or https://) and its verifier key", s)
	}
	if _, err := ParseWitness(vkey); err != nil {
		return Endpoint{}, fmt.Errorf("witness %s: %w", url, err)
	}
	return Endpoint{URL: strings.TrimSuffix(url, "/"), VKey: vkey}, nil
}

// OwnLine returns the first line of a witness's answer (cos) that is a
// valid cosignature of note by the witness whose policy (its key alone,
// quorum 1) is given, for origin; and the other lines, dropped. A
// witness speaks only for itself: a line it added under another
// witness's name and key hash that does not verify would make every
// client trusting that other witness refuse the note.
func OwnLine(p Policy, origin string, note, cos []byte) (own []byte, dropped []string) {
	for _, line := range strings.SplitAfter(string(cos), "\n") {
		if line == "" {
			continue
		}
		if own == nil {
			if with, err := AppendCosignatures(note, []byte(line)); err == nil {
				if n, err := p.Check(with, origin); err == nil && n == 1 {
					own = []byte(line)
					continue
				}
			}
		}
		dropped = append(dropped, strings.TrimSuffix(line, "\n"))
	}
	return own, dropped
}
