package witness

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/keys"
)

const origin = "cairn.dev/index/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestCosignatureVerifiesElsewhere: cairn's witness cosigns a checkpoint
// of a real tree, and torchwood's cosignature verifier (written
// elsewhere) verifies the cosignature through x/mod's note.Open; the
// vkey cairn prints is the one torchwood computes.
func TestCosignatureVerifiesElsewhere(t *testing.T) {
	l := newTestLog(t, origin)
	w := newTestWitness(t, "witness.example.com/w1", l)
	tr := newTree(t, 13, 13, "")
	signed := l.checkpoint(t, tr.root(t, 13))
	cosigs, err := Submit(context.Background(), nil, w.url, 0, nil, signed)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := AppendCosignatures(signed, cosigs)
	if err != nil {
		t.Fatal(err)
	}

	ts, err := torchwood.NewCosignatureSigner(w.name, w.key)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.VerifierKey(), ts.Verifier().String(); got != want {
		t.Errorf("vkey %s, torchwood computes %s", got, want)
	}
	if got, _ := VerifierKey(w.name, w.key.Public().(ed25519.PublicKey)); got != w.VerifierKey() {
		t.Errorf("VerifierKey = %s, the server's is %s", got, w.VerifierKey())
	}
	n, err := note.Open(cosigned, note.VerifierList(ts.Verifier()))
	if err != nil {
		t.Fatalf("torchwood does not verify cairn's cosignature: %v\n%s", err, cosigned)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 1 {
		t.Fatalf("signatures %v, unverified %v: want the witness's verified and the log's ignored", n.Sigs, n.UnverifiedSigs)
	}
	when, err := torchwood.CosignatureTimestamp(n.Sigs[0])
	if err != nil || time.Since(time.Unix(when, 0)).Abs() > time.Minute {
		t.Errorf("cosignature timestamp %d (%v): want now", when, err)
	}
	// And cairn's own reader agrees.
	if got, err := (Policy{Witnesses: []Witness{w.witness()}, Quorum: 1}).Check(cosigned, origin); got != 1 || err != nil {
		t.Errorf("Policy.Check = %d, %v", got, err)
	}
	// The log's own key still verifies the note the cosignature was added to.
	lv, _ := note.NewVerifier(l.vkey)
	if _, err := note.Open(cosigned, note.VerifierList(lv)); err != nil {
		t.Errorf("the log's signature no longer verifies: %v", err)
	}
	if st := w.logState(t, origin); st.Size != 13 || st.Hash != tr.root(t, 13).Hash {
		t.Errorf("state after cosigning: size %d, hash %s", st.Size, st.Hash)
	}
}

// TestAdvance: a log grows, a proof each time; Cosign learns the
// witness's size from a 409 and retries with a proof from it; the same
// checkpoint again is cosigned again.
func TestAdvance(t *testing.T) {
	ctx := context.Background()
	l := newTestLog(t, origin)
	w := newTestWitness(t, "witness.example.com/w1", l)
	tr := newTree(t, 40, 40, "")
	if _, err := Submit(ctx, nil, w.url, 0, nil, l.checkpoint(t, tr.root(t, 5))); err != nil {
		t.Fatal(err)
	}
	if _, err := Submit(ctx, nil, w.url, 5, tr.proof(t, 17, 5), l.checkpoint(t, tr.root(t, 17))); err != nil {
		t.Fatal(err)
	}
	// The caller does not know where the witness is: a 409 tells it.
	_, err := Submit(ctx, nil, w.url, 0, nil, l.checkpoint(t, tr.root(t, 30)))
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Known != 17 || ce.Sent != 0 || ce.Fork() || ce.URL != w.url {
		t.Fatalf("submit from 0 when the witness holds 17: %v, want a 409 with size 17", err)
	}
	if _, err := Cosign(ctx, nil, w.url, 0, l.checkpoint(t, tr.root(t, 30)), tr.prover(30)); err != nil {
		t.Fatalf("Cosign from a stale size: %v", err)
	}
	if _, err := Cosign(ctx, nil, w.url, 30, l.checkpoint(t, tr.root(t, 30)), tr.prover(30)); err != nil {
		t.Fatalf("the same checkpoint again: %v", err)
	}
	if st := w.logState(t, origin); st.Size != 30 || st.Hash != tr.root(t, 30).Hash || !strings.HasPrefix(st.Checkpoint, origin+"\n30\n") {
		t.Errorf("state: %+v", st)
	}
}

// TestRefusals: every refusal of tlog-witness, with its status and
// Submit's error, and the state unchanged by each.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	l := newTestLog(t, origin)
	w := newTestWitness(t, "witness.example.com/w1", l)
	tr := newTree(t, 20, 20, "")
	if _, err := Submit(ctx, nil, w.url, 0, nil, l.checkpoint(t, tr.root(t, 8))); err != nil {
		t.Fatal(err)
	}
	before := w.logState(t, origin)
	other := newTree(t, 20, 6, "forged") // agrees with tr on its first 6 leaves only
	stranger := newTestLog(t, origin)    // same origin, a key the witness does not trust
	unknown := newTestLog(t, "example.com/another-log")

	for _, c := range []struct {
		name   string
		old    int64
		signed []byte
		status int
		is     error
		known  int64 // for a 409
	}{
		{name: "inconsistent tree", old: 8, signed: l.checkpoint(t, other.root(t, 12)), status: 422, is: ErrBadProof},
		{name: "same size, another tree", old: 8, signed: l.checkpoint(t, other.root(t, 8)), status: 409, known: 8},
		{name: "rollback below the old size", old: 8, signed: l.checkpoint(t, tr.root(t, 5)), status: 400, is: ErrMalformed},
		{name: "rollback from a smaller old size", old: 5, signed: l.checkpoint(t, tr.root(t, 5)), status: 409, known: 8},
		{name: "stale old size", old: 3, signed: l.checkpoint(t, tr.root(t, 12)), status: 409, known: 8},
		{name: "unknown origin", old: 0, signed: unknown.checkpoint(t, tr.root(t, 12)), status: 404, is: ErrUnknownLog},
		{name: "wrong log key", old: 8, signed: stranger.checkpoint(t, tr.root(t, 12)), status: 403, is: ErrUnknownKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := tr
			if c.name == "inconsistent tree" {
				src = other
			}
			n := mustSize(t, c.signed)
			proof := proofOf(t, src, n, c.old)
			var lines strings.Builder
			for _, h := range proof {
				lines.WriteString(h.String() + "\n")
			}
			body := fmt.Appendf(nil, "old %d\n%s\n%s", c.old, lines.String(), c.signed)
			status, answer := post(t, w.url, body)
			if status != c.status {
				t.Errorf("status %d (%s), want %d", status, answer, c.status)
			}
			// Submit reports the same, typed.
			_, err := Submit(ctx, nil, w.url, c.old, proof, c.signed)
			var ce *ConflictError
			var re *ResponseError
			switch {
			case c.status == 409:
				if !errors.As(err, &ce) || ce.Known != c.known {
					t.Errorf("Submit: %v, want a *ConflictError with size %d", err, c.known)
				}
			case !errors.Is(err, c.is) || !errors.As(err, &re) || re.Status != c.status:
				t.Errorf("Submit: %v, want a *ResponseError %d wrapping %v", err, c.status, c.is)
			}
			if after := w.logState(t, origin); after.Size != before.Size || after.Hash != before.Hash || after.Checkpoint != before.Checkpoint {
				t.Errorf("state changed by a refused checkpoint: %+v, was %+v", after, before)
			}
		})
	}
}

// proofOf returns tr's proof from old to n, empty when there is none.
func proofOf(t *testing.T, tr *tree, n, old int64) tlog.TreeProof {
	if old == 0 || old >= n {
		return nil
	}
	return tr.proof(t, n, old)
}

// mustSize returns the size of a signed checkpoint.
func mustSize(t *testing.T, signed []byte) int64 {
	t.Helper()
	text, _, _ := strings.Cut(string(signed), "\n\n")
	c, err := torchwood.ParseCheckpoint(text + "\n")
	if err != nil {
		t.Fatal(err)
	}
	return c.N
}

// post sends an add-checkpoint body as is.
func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusConflict && resp.Header.Get("Content-Type") != "text/x.tlog.size" {
		t.Errorf("409 with Content-Type %q, want text/x.tlog.size", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}

// TestMalformed: bodies that are not add-checkpoint requests are 400.
func TestMalformed(t *testing.T) {
	l := newTestLog(t, origin)
	w := newTestWitness(t, "witness.example.com/w1", l)
	tr := newTree(t, 4, 4, "")
	signed := string(l.checkpoint(t, tr.root(t, 4)))
	h := tr.root(t, 1).Hash.String()
	notCheckpoint, err := note.Sign(&note.Note{Text: origin + "\nfour\n" + h + "\n"}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by the log's key: past it, x/mod's proof arithmetic spun
	// a core for good.
	huge, err := note.Sign(&note.Note{Text: origin + "\n9223372036854775807\n" + h + "\n"}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"no blank line":      "old 0\n" + strings.Replace(signed, "\n\n", "\n", 1),
		"no old line":        "\n" + signed,
		"old not decimal":    "old x\n\n" + signed,
		"old leading zero":   "old 00\n\n" + signed,
		"old negative":       "old -1\n\n" + signed,
		"proof not a hash":   "old 0\nnot-base64\n\n" + signed,
		"64 proof lines":     "old 0\n" + strings.Repeat(h+"\n", 64) + "\n" + signed,
		"not a checkpoint":   "old 0\n\n" + string(notCheckpoint),
		"unsigned":           "old 0\n\n" + signed[:strings.Index(signed, "\n\n")+1],
		"old over the size":  "old 5\n\n" + signed,
		"empty":              "",
		"control characters": "old 0\n\n" + strings.Replace(signed, "cairn-time", "cairn\x01time", 1),
		"CRLF line ends":     "old 0\n\n" + strings.ReplaceAll(signed, "\n", "\r\n"),
		"a tree of 2^63-1":   "old 0\n\n" + string(huge),
	} {
		status, answer := post(t, w.url, []byte(body))
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d (%s), want 400", name, status, answer)
		}
	}
	if st := w.logState(t, origin); st.Size != 0 {
		t.Errorf("state moved to %d by malformed requests", st.Size)
	}
	// A note with a signature by the log's key that does not verify
	// beside one that does is cosigned: tlog-witness refuses (403) only
	// when none of them verifies.
	text, sig, _ := strings.Cut(signed, "\n\n")
	b64 := strings.Fields(sig)[2]
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	raw[10] ^= 1 // in the signature, after the key's 4-byte hash
	twice := text + "\n\n" + strings.Replace(sig, b64, base64.StdEncoding.EncodeToString(raw), 1) + sig
	if status, answer := post(t, w.url, []byte("old 0\n\n"+twice)); status != http.StatusOK {
		t.Errorf("a bad and a good signature by the log's key: status %d (%s), want 200", status, answer)
	} else if st := w.logState(t, origin); st.Size != 4 {
		t.Errorf("a bad and a good signature by the log's key: cosigned, and the state is at %d, want 4", st.Size)
	}
	resp, err := http.Get(w.url + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /add-checkpoint: %d, want 405", resp.StatusCode)
	}
}

// TestConcurrentForks: requests for different trees of one size, all
// consistent with the tree the witness holds, race past their checks;
// exactly one is cosigned, whether they reach one Server or two (two
// processes sharing a state directory), and the state is that one's.
func TestConcurrentForks(t *testing.T) {
	for _, servers := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d servers", servers), func(t *testing.T) {
			ctx := context.Background()
			l := newTestLog(t, origin)
			w := newTestWitness(t, "witness.example.com/w1", l)
			base := newTree(t, 5, 5, "")
			if _, err := Submit(ctx, nil, w.url, 0, nil, l.checkpoint(t, base.root(t, 5))); err != nil {
				t.Fatal(err)
			}
			urls := []string{w.url}
			all := []*Server{w.Server}
			if servers == 2 {
				st, err := OpenState(w.state.Dir())
				if err != nil {
					t.Fatal(err)
				}
				s2, err := NewServer(w.name, keys.NewSigner(w.key), st, nil)
				if err != nil {
					t.Fatal(err)
				}
				hs := httptest.NewServer(s2)
				t.Cleanup(hs.Close)
				urls = append(urls, hs.URL)
				all = append(all, s2)
			}
			const racers = 6
			// Every request waits, checks passed, until all have passed theirs.
			var arrived sync.WaitGroup
			arrived.Add(racers)
			for _, s := range all {
				s.beforeAdvance = func() {
					arrived.Done()
					arrived.Wait()
				}
			}
			type result struct {
				tr     *tree
				cosigs []byte
				err    error
			}
			results := make(chan result, racers)
			for i := range racers {
				fork := newTree(t, 9, 5, fmt.Sprintf("fork%d", i))
				go func() {
					cosigs, err := Submit(ctx, nil, urls[i%len(urls)], 5, fork.proof(t, 9, 5), l.checkpoint(t, fork.root(t, 9)))
					results <- result{fork, cosigs, err}
				}()
			}
			var won []result
			for range racers {
				r := <-results
				var ce *ConflictError
				switch {
				case r.err == nil:
					won = append(won, r)
				case errors.As(r.err, &ce) && ce.Known == 9:
				default:
					t.Errorf("a losing request: %v, want a 409 with size 9", r.err)
				}
			}
			if len(won) != 1 {
				t.Fatalf("%d of %d different trees of size 9 cosigned: want exactly 1", len(won), racers)
			}
			st := w.logState(t, origin)
			if st.Size != 9 || st.Hash != won[0].tr.root(t, 9).Hash {
				t.Errorf("state %d %s, the tree cosigned is %s", st.Size, st.Hash, won[0].tr.root(t, 9).Hash)
			}
		})
	}
}

// TestState: the state is durable across opens, add-log keeps a log's
// tree and merges its keys, bad input and a damaged file are refused.
func TestState(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := newTestLog(t, origin)
	if _, err := st.AddLog(origin, l.vkey); err != nil {
		t.Fatal(err)
	}
	tr := newTree(t, 3, 3, "")
	empty, _ := st.Log(origin)
	if err := st.Advance(origin, empty.Tree(), tr.root(t, 3), "text"); err != nil {
		t.Fatal(err)
	}
	l2 := newTestLog(t, origin)
	got, err := st.AddLog(origin, l2.vkey, l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 3 || len(got.Keys) != 2 {
		t.Errorf("add-log of a known log: %+v, want size 3 kept and 2 keys", got)
	}
	// Another open (another process) sees it all.
	st2, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if logs, err := st2.Logs(); err != nil || len(logs) != 1 || logs[0].Size != 3 || logs[0].Hash != tr.root(t, 3).Hash || logs[0].Checkpoint != "text" {
		t.Errorf("reopened: %+v, %v", logs, err)
	}
	// A stale compare-and-swap changes nothing.
	if err := st2.Advance(origin, empty.Tree(), newTree(t, 4, 0, "x").root(t, 4), "other"); err == nil {
		t.Error("Advance from a tree the log is no longer at succeeded")
	}
	for _, bad := range [][]string{{"bad origin", l.vkey}, {origin}, {origin, "not-a-vkey"}} {
		if _, err := st.AddLog(bad[0], bad[1:]...); err == nil {
			t.Errorf("AddLog%q succeeded", bad)
		}
	}
	if _, err := st.Log("example.com/none"); !errors.Is(err, ErrUnknownLog) {
		t.Errorf("Log of an unknown origin: %v", err)
	}
	path := filepath.Join(dir, stateName)
	if err := os.WriteFile(path, []byte(`{"version":1,"logs":[{"origin":"a","size":-1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Logs(); err == nil || !strings.Contains(err.Error(), "negative size") {
		t.Errorf("a damaged state file: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
