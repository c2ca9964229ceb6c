package record

import (
	"slices"
	"testing"
)

// The copies of a parsed record the index hands out (r := *rec;
// r.Signatures = slices.Clone(...)) share its signatures' memo: a copy
// given another payload or another signature must be checked again, not
// answered by the original's "valid".
func TestMemoOnlyForTheBytesChecked(t *testing.T) {
	s := signer(t)
	payload, _ := Build(Audited, []Subject{desc}, CertificationPredicate{Note: "a"})
	other, _ := Build(Audited, []Subject{desc}, CertificationPredicate{Note: "forged"})
	signed, err := Sign(payload, s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(signed.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if !r.VerifySignature(0, s.Public()) {
		t.Fatal("a good signature refused")
	}
	// A copy as the index makes them, its payload replaced.
	c := *r
	c.Signatures = slices.Clone(r.Signatures)
	c.Payload, c.pae = other, nil
	if c.VerifySignature(0, s.Public()) {
		t.Error("a copy with another payload verifies: the memo answered for bytes it never checked")
	}
	// A copy whose signature is replaced by garbage.
	d := *r
	d.Signatures = slices.Clone(r.Signatures)
	d.Signatures[0].Sig = make([]byte, 64)
	if d.VerifySignature(0, s.Public()) {
		t.Error("a copy with a zero signature verifies")
	}
}
