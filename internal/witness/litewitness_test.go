package witness

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"cairn.dev/cairn/internal/witness/witnesstest"
)

// TestLitewitness: litewitness, a witness written elsewhere, cosigns a
// cairn log's checkpoints submitted with Submit and Cosign; cairn's
// Policy verifies its cosignatures beside cairn's own witness's; and a
// second tree of the log, inconsistent with the first, is refused by
// both witnesses, so that a reader requiring them refuses it: the split
// view is caught.
func TestLitewitness(t *testing.T) {
	ctx := context.Background()
	hc := &http.Client{Timeout: 10 * time.Second}
	l := newTestLog(t, origin)
	lw := witnesstest.Start(t, "witness.example.org/lite")
	lw.AddLog(t, l.origin, l.vkey)
	own := newTestWitness(t, "witness.example.com/cairn", l)

	lite, err := VerifierKey(lw.Name, lw.Key)
	if err != nil {
		t.Fatal(err)
	}
	// litewitness prints its vkey when it starts: cairn computes the same.
	if lw.VKey != lite {
		t.Errorf("litewitness's vkey %s, cairn computes %s", lw.VKey, lite)
	}
	policy, err := NewPolicy([]string{lite, own.VerifierKey()}, 2)
	if err != nil {
		t.Fatal(err)
	}

	honest := newTree(t, 40, 40, "")
	first := l.checkpoint(t, honest.root(t, 5))
	cosigs, err := Submit(ctx, hc, lw.URL, 0, nil, first)
	if err != nil {
		t.Fatalf("litewitness refused the first checkpoint: %v\n%s", err, lw.Logs)
	}
	cosigned, err := AppendCosignatures(first, cosigs)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := policy.Check(cosigned, origin); n != 1 || err == nil {
		t.Errorf("litewitness's cosignature alone, of a quorum of 2: %d, %v", n, err)
	}
	if n, err := (Policy{Witnesses: policy.Witnesses, Quorum: 1}).Check(cosigned, origin); n != 1 || err != nil {
		t.Fatalf("cairn does not verify litewitness's cosignature: %d, %v\n%s", n, err, cosigned)
	}

	// The log grows; the server does not know where litewitness is
	// (last 0): Cosign learns it from the 409 and proves from size 5.
	grown := l.checkpoint(t, honest.root(t, 17))
	signed := grown
	for _, url := range []string{lw.URL, own.url} {
		cosigs, err := Cosign(ctx, hc, url, 0, grown, honest.prover(17))
		if err != nil {
			t.Fatalf("witness %s refused a consistent checkpoint: %v\n%s", url, err, lw.Logs)
		}
		if signed, err = AppendCosignatures(signed, cosigs); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := policy.Check(signed, origin); n != 2 || err != nil {
		t.Fatalf("both witnesses' cosignatures: %d, %v\n%s", n, err, signed)
	}
	if got := lw.Size(t, origin); got != 17 {
		t.Errorf("litewitness holds size %d, want 17", got)
	}

	// Split view: the log shows someone else a tree that forks at leaf
	// 10. Neither witness cosigns it, at a larger size or at the same one.
	forked := newTree(t, 40, 10, "hidden")
	for _, w := range []struct{ name, url string }{{"litewitness", lw.URL}, {"cairn", own.url}} {
		_, err := Submit(ctx, hc, w.url, 17, forked.proof(t, 20, 17), l.checkpoint(t, forked.root(t, 20)))
		if !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: a forked tree of size 20: %v, want a 422", w.name, err)
		}
		_, err = Submit(ctx, hc, w.url, 17, nil, l.checkpoint(t, forked.root(t, 17)))
		var ce *ConflictError
		if !errors.Is(err, ErrBadProof) && !(errors.As(err, &ce) && ce.Fork()) {
			t.Errorf("%s: a forked tree of size 17: %v, want a 409 or 422", w.name, err)
		}
		// Nor an old size it did not cosign (a rollback to 5).
		if _, err = Cosign(ctx, hc, w.url, 5, l.checkpoint(t, honest.root(t, 5)), honest.prover(5)); err == nil {
			t.Errorf("%s cosigned a rollback to size 5", w.name)
		}
	}
	if got := lw.Size(t, origin); got != 17 {
		t.Errorf("litewitness holds size %d after the refusals, want 17", got)
	}
	var qe *QuorumError
	if n, err := policy.Check(l.checkpoint(t, forked.root(t, 20)), origin); n != 0 || !errors.As(err, &qe) {
		t.Errorf("a reader shown the forked tree: %d, %v; want refused for want of cosignatures", n, err)
	}

	// litewitness's refusals of a log it does not witness, and of a key
	// it does not trust (it answers 403 to both), reach the caller typed.
	stranger := newTestLog(t, origin)
	_, err = Submit(ctx, hc, lw.URL, 17, honest.proof(t, 20, 17), stranger.checkpoint(t, honest.root(t, 20)))
	var re *ResponseError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a checkpoint signed by a key litewitness does not trust: %v", err)
	}
}
