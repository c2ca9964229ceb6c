package record

import "testing"

// A copy of a checked record given another payload is checked again, on
// the new payload's signing input (a shallow copy keeps the original's
// cached one: found by the review).
func TestCopyWithAnotherPayload(t *testing.T) {
	s := signer(t)
	c := batchOf(t, 1, s)[0]
	if !c.Rec.VerifySignature(0, c.Pub) {
		t.Fatal("a good signature refused")
	}
	cp := *c.Rec
	cp.Payload = append([]byte(nil), cp.Payload...)
	cp.Payload[10] ^= 1
	if cp.VerifySignature(0, c.Pub) {
		t.Fatal("a copy given another payload verifies under the original's signature (pae cached from the original payload)")
	}
}
