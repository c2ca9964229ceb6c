package record

import (
	"testing"

	"filippo.io/edwards25519"
)

// ZIP 215's edge cases agree between
// batchVerify and each check alone: a small-order key and R (the
// identity), encoded canonically and not (y = p+1), two keys of the same
// point by different bytes gathered apart, s = 0 valid and s = 1 not.
func TestBatchZIP215Edges(t *testing.T) {
	canon := make([]byte, 32)
	canon[0] = 1 // the identity, y = 1
	// y = p + 1 = 2^255 - 18: the identity, not canonically.
	noncanon := make([]byte, 32)
	for i := range noncanon {
		noncanon[i] = 0xff
	}
	noncanon[0] = 0xee
	noncanon[31] = 0x7f
	if _, err := new(edwards25519.Point).SetBytes(noncanon); err != nil {
		t.Fatal("p+1 not decoded:", err)
	}
	base := batchOf(t, 6, signer(t))
	mk := func(i int, pub, r []byte, s byte) Check {
		c := base[i]
		c.Rec = c.Rec.Clone()
		sig := make([]byte, 64)
		copy(sig, r)
		sig[32] = s
		c.Rec.Signatures[0].Sig = sig
		c.Pub = pub
		return c
	}
	good := []Check{mk(0, canon, canon, 0), mk(1, noncanon, canon, 0), mk(2, canon, noncanon, 0), mk(3, noncanon, noncanon, 0), base[4], base[5]}
	if !each(good) {
		t.Fatal("ZIP 215 refuses an identity key and R with s = 0 alone")
	}
	for range 10 {
		if !batchVerify(good) {
			t.Fatal("a batch refuses what each check accepts")
		}
	}
	bad := append([]Check{}, good...)
	bad[1] = mk(1, noncanon, canon, 1)
	if each(bad) || batchVerify(bad) {
		t.Fatal("s = 1 with an identity key and R accepted")
	}
}
