package record

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"

	"filippo.io/edwards25519"
)

// batchVerify reports whether every signature of checks verifies under
// ZIP 215 (see Signatures, above), checked at once: true only if all do
// (but for a chance of 2^-125 per call), false if one does not or cannot
// be read — then which is not known, and each must be checked alone.
//
// It checks the cofactored batch equation of ed25519consensus's
// BatchVerifier,
//
//	[8]([-Σ z_i s_i]B + Σ [z_i]R_i + Σ [z_i k_i]A_i) = 0
//
// with a random 128-bit z_i per signature, k_i = SHA-512(R_i ‖ A_i ‖ M_i)
// and s canonical, but with the terms of one key gathered: Σ over the
// signatures of key A of [z_i k_i]A is [Σ z_i k_i]A, the same point, so
// that a key is decoded once and is one point of the multiscalar
// multiplication however many signatures it made. A batch of n
// signatures by m keys multiplies n+m+1 points, not 2n+1, and decodes
// n+m, not 2n: a light client's or a replay's batch holds hundreds of
// records signed by a few keys. Keys are gathered by their bytes, the
// bytes k_i hashes.
func batchVerify(checks []Check) bool {
	n := len(checks)
	if n == 0 {
		return false
	}
	z := make([]byte, 16*n)
	if _, err := rand.Read(z); err != nil {
		return false
	}
	var (
		bcoeff   edwards25519.Scalar   // -Σ z_i s_i, negated last
		rs       []edwards25519.Point  // each R_i
		zs       []edwards25519.Scalar // each z_i
		as       []edwards25519.Point  // each key, once
		acoeffs  []edwards25519.Scalar // Σ z_i k_i over its signatures
		keyAt    = make(map[[ed25519.PublicKeySize]byte]int, 4)
		zb       [32]byte
		digest   [64]byte
		s, k, zk edwards25519.Scalar
		h        = sha512.New()
	)
	rs, zs = make([]edwards25519.Point, n), make([]edwards25519.Scalar, n)
	for i, c := range checks {
		sig := c.Rec.Signatures[c.Sig].Sig
		if len(c.Pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
			return false
		}
		if _, err := s.SetCanonicalBytes(sig[32:]); err != nil {
			return false
		}
		if _, err := rs[i].SetBytes(sig[:32]); err != nil {
			return false
		}
		copy(zb[:16], z[16*i:])
		if _, err := zs[i].SetCanonicalBytes(zb[:]); err != nil {
			return false
		}
		bcoeff.MultiplyAdd(&zs[i], &s, &bcoeff)

		h.Reset()
		h.Write(sig[:32])
		h.Write(c.Pub)
		c.Rec.writeSigningInput(h)
		h.Sum(digest[:0])
		if _, err := k.SetUniformBytes(digest[:]); err != nil {
			return false
		}
		zk.Multiply(&zs[i], &k)

		key := [ed25519.PublicKeySize]byte(c.Pub)
		j, ok := keyAt[key]
		if !ok {
			var a edwards25519.Point
			if _, err := a.SetBytes(c.Pub); err != nil {
				return false
			}
			j = len(as)
			keyAt[key] = j
			as, acoeffs = append(as, a), append(acoeffs, edwards25519.Scalar{})
		}
		acoeffs[j].Add(&acoeffs[j], &zk)
	}
	bcoeff.Negate(&bcoeff)

	scalars := make([]*edwards25519.Scalar, 0, 1+n+len(as))
	points := make([]*edwards25519.Point, 0, 1+n+len(as))
	scalars, points = append(scalars, &bcoeff), append(points, edwards25519.NewGeneratorPoint())
	for i := range rs {
		scalars, points = append(scalars, &zs[i]), append(points, &rs[i])
	}
	for j := range as {
		scalars, points = append(scalars, &acoeffs[j]), append(points, &as[j])
	}
	check := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	check.MultByCofactor(check)
	return check.Equal(edwards25519.NewIdentityPoint()) == 1
}
