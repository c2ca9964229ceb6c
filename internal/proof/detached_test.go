package proof

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/translog"
)

// A detached proof proves what its offline proof proves, given the
// record's bytes: the record named, those bytes and no others; alone,
// or as an offline proof, it is refused.
func TestDetached(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	made, err := FromRepo(ctx, f.w.Repo, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Detach(made.Proof)
	if err != nil {
		t.Fatal(err)
	}
	data := d.Marshal()
	if len(data) >= len(made.Proof.Marshal()) {
		t.Fatalf("the detached proof is %d bytes, the offline one %d", len(data), len(made.Proof.Marshal()))
	}
	raw, _, err := f.w.Repo.Record(ctx, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := record.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Trust: Trust{LogKeys: []LogKey{f.logKey(t)}, Introduction: f.w.Intro}}
	pp, err := ParseDetached(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.VerifyDetached(pp, rec)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Verify(made.Proof.Marshal(), v.Trust)
	if err != nil {
		t.Fatal(err)
	}
	if p.Index != whole.Index || p.Entry != whole.Entry || !bytes.Equal(p.Content, whole.Content) || p.Record.ID != f.audit || p.Checkpoint != whole.Checkpoint || p.MapLeaf != whole.MapLeaf || p.Subject != whole.Subject {
		t.Fatalf("detached proved %+v, the offline proof %+v", p, whole)
	}
	// Alone, as an offline proof: refused; an offline proof is not a
	// detached one.
	if _, err := Verify(data, v.Trust); !errors.Is(err, ErrRefused) {
		t.Fatalf("a detached proof verified as an offline one: %v", err)
	}
	if _, err := v.VerifyParsed(pp); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "detached") {
		t.Fatalf("VerifyParsed of a detached proof: %v", err)
	}
	if _, err := ParseDetached(made.Proof.Marshal()); !errors.Is(err, ErrRefused) {
		t.Fatalf("an offline proof parsed as a detached one: %v", err)
	}
	// Another record of the index: refused, whatever its bytes.
	other := f.w.Audit("acme/other", "2.0.0")
	oraw, _, err := f.w.Repo.Record(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	orec, err := record.Parse(oraw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyDetached(pp, orec); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not the record "+other) {
		t.Fatalf("the proof of %s given record %s: %v", f.audit, other, err)
	}
	// The record's bytes other than those logged (the same record,
	// spelled otherwise): refused.
	respelled := *rec
	respelled.Raw = append(bytes.Clone(raw), '\n')
	if _, err := v.VerifyDetached(pp, &respelled); !errors.Is(err, ErrRefused) || !errors.As(err, new(*translog.InclusionError)) {
		t.Fatalf("the record's bytes respelled: %v", err)
	}
	// A hash of the path changed: the leaf is not in the tree.
	bad, _ := translog.ParseProof(data)
	bad.Path[0][0] ^= 1
	if _, err := ParseDetached(bad.Marshal()); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "does not lead to the root") {
		t.Fatalf("a path changed: %v", err)
	}
	// The extra data spelled otherwise (a space): refused.
	sp, _ := translog.ParseProof(data)
	sp.Extra = bytes.Replace(sp.Extra, []byte(`,"map_time"`), []byte(`, "map_time"`), 1)
	if _, err := ParseDetached(sp.Marshal()); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not written as cairn writes") {
		t.Fatalf("the extra data respelled: %v", err)
	}
}
