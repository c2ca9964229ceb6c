package record

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/internal/keys"
)

// batchOf signs n records with keys in turn (a few keys, many records
// each, as a light client's or a replay's batch holds them).
func batchOf(t testing.TB, n int, signers ...keys.Signer) []Check {
	t.Helper()
	checks := make([]Check, n)
	for i := range checks {
		s := signers[i%len(signers)]
		payload, err := Build(Audited, []Subject{desc}, CertificationPredicate{Note: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := Sign(payload, s)
		if err != nil {
			t.Fatal(err)
		}
		checks[i] = Check{Rec: r, Sig: 0, Pub: s.Public()}
	}
	return checks
}

// each reports whether every check verifies alone (ed25519consensus, ZIP
// 215: the answer a batch must agree with).
func each(checks []Check) bool {
	for _, c := range checks {
		if !ed25519consensus.Verify(c.Pub, c.Rec.signingInput(), c.Rec.Signatures[c.Sig].Sig) {
			return false
		}
	}
	return true
}

// addToS returns sig with d added to its s (mod the group order).
func addToS(t testing.TB, sig []byte, d *edwards25519.Scalar) []byte {
	t.Helper()
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		t.Fatal(err)
	}
	s.Add(s, d)
	return append(append([]byte(nil), sig[:32]...), s.Bytes()...)
}

// A batch says yes exactly when every signature verifies alone, whatever
// is wrong with one of them: a bit of it, of its record, its key, an s
// not reduced, an R that is not a point, or a key of another length.
func TestBatchVerifyAgreesWithEachAlone(t *testing.T) {
	a, b, other := signer(t), signer(t), signer(t)
	order := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 31: 0x10}
	breaks := map[string]func(ch *Check){
		"a bit of the signature": func(ch *Check) { ch.Rec.Signatures[0].Sig[40] ^= 1 },
		"a bit of R":             func(ch *Check) { ch.Rec.Signatures[0].Sig[5] ^= 4 },
		"the record signed": func(ch *Check) {
			ch.Rec.Payload = append([]byte(nil), ch.Rec.Payload...)
			ch.Rec.Payload[10] ^= 1
			ch.Rec.pae = nil
		},
		"another key": func(ch *Check) {
			ch.Pub = other.Public()
		},
		"s plus the group order (not reduced)": func(ch *Check) {
			// s + L < 2^256 for the s of a real signature (< 2^253).
			sig := ch.Rec.Signatures[0].Sig
			var carry int
			for i := 0; i < 32; i++ {
				v := int(sig[32+i]) + int(order[i]) + carry
				sig[32+i], carry = byte(v), v>>8
			}
		},
		"R not a point": func(ch *Check) {
			// y = 2 is not the y of a point of the curve.
			sig := ch.Rec.Signatures[0].Sig
			for i := range 32 {
				sig[i] = 0
			}
			sig[0] = 2
		},
		"a key of 31 bytes": func(ch *Check) { ch.Pub = ch.Pub[:31] },
	}
	good := batchOf(t, 24, a, b)
	if !each(good) || !batchVerify(good) {
		t.Fatal("a batch of good signatures by two keys is refused")
	}
	for name, brk := range breaks {
		t.Run(name, func(t *testing.T) {
			checks := batchOf(t, 24, a, b)
			brk(&checks[rand.IntN(len(checks))])
			if each(checks) {
				t.Fatal("the broken signature verifies alone: the case tests nothing")
			}
			if batchVerify(checks) {
				t.Fatal("the batch verifies with a signature that does not")
			}
			VerifyBatch(checks)
			bad := 0
			for _, ch := range checks {
				if valid, ok := ch.Rec.known(ch.Sig, ch.Pub); !ok {
					t.Fatal("VerifyBatch left an answer unknown")
				} else if !valid {
					bad++
				}
			}
			if bad != 1 {
				t.Fatalf("VerifyBatch refused %d signatures, want the 1 broken", bad)
			}
		})
	}
}

// Two forged signatures by one key whose errors cancel out (s_1 + d and
// s_2 - d) are refused: gathering a key's terms ([Σ z_i k_i]A) keeps a
// random coefficient for each signature, so that no choice of errors
// cancels in the sum. With one coefficient for all they would.
func TestBatchVerifyRefusesCancellingForgeries(t *testing.T) {
	a, b := signer(t), signer(t)
	checks := batchOf(t, 8, a, b)
	var d, minus edwards25519.Scalar
	d.SetUniformBytes(make64(7))
	minus.Negate(&d)
	s0, s2 := checks[0].Rec.Signatures[0].Sig, checks[2].Rec.Signatures[0].Sig // both a's
	checks[0].Rec.Signatures[0].Sig = addToS(t, s0, &d)
	checks[2].Rec.Signatures[0].Sig = addToS(t, s2, &minus)
	if each(checks[0:1]) || each(checks[2:3]) {
		t.Fatal("a forged signature verifies alone")
	}
	for range 20 {
		if batchVerify(checks) {
			t.Fatal("two forged signatures by one key, whose errors cancel, pass as a batch")
		}
	}
}

func make64(seed byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = seed * byte(i+1)
	}
	return b
}

// BenchmarkVerifyBatch: 600 records by 3 keys (a light lock of 200
// packages verifies about as many), against ed25519consensus's batch
// verifier on the same signatures.
func BenchmarkVerifyBatch(b *testing.B) {
	checks := batchOf(b, 600, signer(b), signer(b), signer(b))
	b.Run("gathered", func(b *testing.B) {
		for b.Loop() {
			if !batchVerify(checks) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("ed25519consensus", func(b *testing.B) {
		for b.Loop() {
			bv := ed25519consensus.NewPreallocatedBatchVerifier(len(checks))
			for _, c := range checks {
				bv.Add(c.Pub, c.Rec.signingInput(), c.Rec.Signatures[c.Sig].Sig)
			}
			if !bv.Verify() {
				b.Fatal("refused")
			}
		}
	})
}

// A batch hashes each record's signing input without joining it: the
// bytes it writes are dsse.PAE's, the bytes a signature signs.
func TestWriteSigningInput(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 4096} {
		r := &Record{Payload: bytes.Repeat([]byte("x"), n)}
		want := dsse.PAE(PayloadType, r.Payload)
		for _, memo := range []bool{false, true} {
			if memo {
				r.signingInput()
			}
			h := sha512.New()
			r.writeSigningInput(h)
			if got := sha512.Sum512(want); !bytes.Equal(h.Sum(nil), got[:]) {
				t.Fatalf("payload of %d bytes (memo %v): the input hashed is not dsse.PAE's", n, memo)
			}
		}
	}
}
