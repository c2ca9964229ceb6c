package witness

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// signExt signs a checkpoint of tr by l with the extension lines ext.
func signExt(t *testing.T, l testLog, tr tlog.Tree, ext string) []byte {
	t.Helper()
	text := fmt.Sprintf("%s\n%d\n%s\n%s", l.origin, tr.N, tr.Hash, ext)
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestSameTreeOtherMap: the log's key holder signs the tree the witness
// cosigned again with another cairn-map (one that omits a record) or
// another cairn-head. The tree's consistency does not cover the map, so
// the witness holds the log to the extension lines it cosigned first: the
// other map is refused with 409, with both checkpoints as evidence, over
// HTTP too; the same map at a later cairn-time is cosigned; a larger tree
// with another map is cosigned (the witness cannot check a map).
func TestSameTreeOtherMap(t *testing.T) {
	l := newTestLog(t, origin)
	w := newTestWitness(t, "witness.example.com/w1", l)
	tr := newTree(t, 8, 8, "")
	five := tr.root(t, 5)
	first := signExt(t, l, five, "cairn-map AAAA\ncairn-head h1\ncairn-time 1700000000\n")
	if _, err := w.AddCheckpoint(context.Background(), append([]byte("old 0\n\n"), first...)); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{
		"cairn-map BBBB\ncairn-head h1\ncairn-time 1700000000\n",
		"cairn-map AAAA\ncairn-head h2\ncairn-time 1700000001\n",
		"cairn-map AAAA\ncairn-time 1700000000\n",
	} {
		other := signExt(t, l, five, ext)
		cos, err := w.AddCheckpoint(context.Background(), append([]byte("old 5\n\n"), other...))
		var ce *ConflictError
		if !errors.As(err, &ce) || !ce.Fork() {
			t.Fatalf("tree of size 5 with %q: cosigned %q, err %v; want a 409 at size 5 (split view)", ext, cos, err)
		}
		if ce.Known != 5 || !strings.Contains(ce.Cosigned, "cairn-map AAAA\ncairn-head h1\n") || !strings.Contains(ce.Submitted, ext) {
			t.Errorf("conflict evidence: %+v", ce)
		}
		if code, body := post(t, w.url, append([]byte("old 5\n\n"), other...)); code != http.StatusConflict || body != "5\n" {
			t.Errorf("over HTTP: %d %q, want 409 \"5\\n\"", code, body)
		}
	}
	if got := w.logState(t, origin).Checkpoint; !strings.Contains(got, "cairn-map AAAA\n") {
		t.Errorf("state's checkpoint %q: want the first one cosigned", got)
	}
	later := signExt(t, l, five, "cairn-map AAAA\ncairn-head h1\ncairn-time 1700000999\n")
	if _, err := w.AddCheckpoint(context.Background(), append([]byte("old 5\n\n"), later...)); err != nil {
		t.Fatalf("the same tree and map, later: %v", err)
	}
	eight := tr.root(t, 8)
	bigger := signExt(t, l, eight, "cairn-map CCCC\ncairn-head h3\ncairn-time 1700001000\n")
	if _, err := Submit(context.Background(), nil, w.url, 5, tr.proof(t, 8, 5), bigger); err != nil {
		t.Fatalf("a larger tree: %v", err)
	}
}

// TestSameTreeOtherExtensionElsewhere: the one-map-per-tree rule is
// cairn's, for cairn indexes' logs: a log of another origin that signs
// the tree cosigned again with other extension lines is cosigned, as
// tlog-witness requires of the same tree (same size and root).
func TestSameTreeOtherExtensionElsewhere(t *testing.T) {
	const other = "example.com/some-other-log"
	l := newTestLog(t, other)
	w := newTestWitness(t, "witness.example.com/w1", l)
	five := newTree(t, 5, 5, "").root(t, 5)
	first := signExt(t, l, five, "cairn-map AAAA\nextra one\n")
	if _, err := w.AddCheckpoint(context.Background(), append([]byte("old 0\n\n"), first...)); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"cairn-map BBBB\nextra one\n", "extra two\n", ""} {
		again := signExt(t, l, five, ext)
		if code, body := post(t, w.url, append([]byte("old 5\n\n"), again...)); code != http.StatusOK || !strings.HasPrefix(body, "— witness.example.com/w1 ") {
			t.Errorf("%s: the tree cosigned, signed again with extension lines %q: %d %q; want it cosigned", other, ext, code, body)
		}
	}
	if got := w.logState(t, other); got.Size != 5 || got.Checkpoint != fmt.Sprintf("%s\n5\n%s\ncairn-map AAAA\nextra one\n", other, five.Hash) {
		t.Errorf("state after the same tree again: size %d, checkpoint %q; want size 5 and the first one kept", got.Size, got.Checkpoint)
	}
}

// TestRootNotCanonical: a checkpoint whose root hash is base64 that is
// not canonical (the same 32 bytes spelled with other padding bits) is
// malformed (400), and not cosigned: two spellings of one tree would be
// two checkpoint texts, two cosignatures.
func TestRootNotCanonical(t *testing.T) {
	l := newTestLog(t, origin)
	w := newTestWitness(t, "witness.example.com/w1", l)
	five := newTree(t, 5, 5, "").root(t, 5)
	b64 := five.Hash.String() // 43 characters and "=": the last one holds 4 bits and 2 zero bits
	last := strings.IndexByte(alphabet, b64[42])
	spelled := b64[:42] + string(alphabet[last|1]) + "="
	if spelled == b64 {
		t.Fatal("no other spelling")
	}
	text := fmt.Sprintf("%s\n5\n%s\ncairn-time 1700000000\n", origin, spelled)
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	code, body := post(t, w.url, append([]byte("old 0\n\n"), signed...))
	if code != http.StatusBadRequest || !strings.Contains(body, "canonical base64") {
		t.Fatalf("a root in non-canonical base64: %d %q, want 400 naming it", code, body)
	}
	if got := w.logState(t, origin); got.Size != 0 {
		t.Errorf("state moved to size %d", got.Size)
	}
	// The canonical spelling of the same tree is cosigned.
	if code, body := post(t, w.url, append([]byte("old 0\n\n"), signExt(t, l, five, "cairn-time 1700000000\n")...)); code != http.StatusOK {
		t.Fatalf("the canonical spelling: %d %q", code, body)
	}
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// TestCairnTime: a cairn index's checkpoint is dated, once, in Unix
// seconds, not before the checkpoint cosigned last and not past the
// witness's clock by more than the clocks of two machines: it cosigned
// one dated 1970, one in the year 5138, and one not dated at all.
func TestCairnTime(t *testing.T) {
	l := newTestLog(t, origin)
	w := newTestWitness(t, "witness.example.com/w1", l)
	tr := newTree(t, 8, 8, "")
	now := time.Now().Unix()
	first := signExt(t, l, tr.root(t, 5), fmt.Sprintf("cairn-map AAAA\ncairn-head h1\ncairn-time %d\n", now))
	if _, err := w.AddCheckpoint(context.Background(), append([]byte("old 0\n\n"), first...)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ext, want string }{
		{"cairn-map CCCC\ncairn-head h3\n", "0 cairn-time lines, want one"},
		{fmt.Sprintf("cairn-map CCCC\ncairn-head h3\ncairn-time %d\ncairn-time %d\n", now, now), "2 cairn-time lines, want one"},
		{"cairn-map CCCC\ncairn-head h3\ncairn-time 01700000000\n", `cairn-time "01700000000" is not Unix seconds`},
		{"cairn-map CCCC\ncairn-head h3\ncairn-time 1\n", "is before the time of the checkpoint cosigned last"},
		{"cairn-map CCCC\ncairn-head h3\ncairn-time 99999999999\n", "is past this witness's clock"},
	} {
		next := signExt(t, l, tr.root(t, 8), c.ext)
		cos, err := w.AddCheckpoint(context.Background(), append(fmt.Appendf(nil, "old 5\n%s\n", proofLines(tr.proof(t, 8, 5))), next...))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: cosigned %q, err %v; want a refusal saying %q", c.ext, cos, err, c.want)
		}
	}
	if got := w.logState(t, origin); got.Size != 5 {
		t.Fatalf("the witness moved to %d", got.Size)
	}
	later := signExt(t, l, tr.root(t, 8), fmt.Sprintf("cairn-map CCCC\ncairn-head h3\ncairn-time %d\n", now+60))
	if _, err := Submit(context.Background(), nil, w.url, 5, tr.proof(t, 8, 5), later); err != nil {
		t.Fatalf("a later checkpoint a minute ahead: %v", err)
	}
}

// proofLines writes a consistency proof as an add-checkpoint request's
// lines (base64 hashes, one a line).
func proofLines(p tlog.TreeProof) string {
	var b strings.Builder
	for _, h := range p {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	return b.String()
}
