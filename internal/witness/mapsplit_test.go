package witness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

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
	if _, err := w.AddCheckpoint(append([]byte("old 0\n\n"), first...)); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{
		"cairn-map BBBB\ncairn-head h1\ncairn-time 1700000000\n",
		"cairn-map AAAA\ncairn-head h2\ncairn-time 1700000001\n",
		"cairn-map AAAA\ncairn-time 1700000000\n",
	} {
		other := signExt(t, l, five, ext)
		cos, err := w.AddCheckpoint(append([]byte("old 5\n\n"), other...))
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
	if _, err := w.AddCheckpoint(append([]byte("old 5\n\n"), later...)); err != nil {
		t.Fatalf("the same tree and map, later: %v", err)
	}
	eight := tr.root(t, 8)
	bigger := signExt(t, l, eight, "cairn-map CCCC\ncairn-head h3\ncairn-time 1700001000\n")
	if _, err := Submit(context.Background(), nil, w.url, 5, tr.proof(t, 8, 5), bigger); err != nil {
		t.Fatalf("a larger tree: %v", err)
	}
}
