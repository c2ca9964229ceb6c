package author

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// fuzzSigner is a fixed key, so that seeds are the same each run.
func fuzzSigner() keys.Signer {
	return keys.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
}

// actSeed is a prepared act's file, made without a repository.
func actSeed(f *testing.F, s keys.Signer) []byte {
	// The window ends a week after now: the act is issued now
	// (grantStatement), and an apply_by before its issue is malformed (a
	// fixed date here made the seed itself malformed once the day came).
	by := time.Now().UTC().Add(7 * 24 * time.Hour).Truncate(time.Second)
	payload, err := grantStatement(KeyGrant{Key: s.Public(), Holder: "alice", Scopes: []string{"publish:acme/*"}}, &by, strings.Repeat("ab", 32))
	if err != nil {
		f.Fatal(err)
	}
	rec, err := record.ParseStatement(payload)
	if err != nil {
		f.Fatal(err)
	}
	data, err := (&Act{rec: rec}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// ParseAct reads a file someone sent: it never panics, and an act it
// accepts is a root act with a window, unsigned, whose file parses back
// to the same act.
func FuzzParseAct(f *testing.F) {
	s := fuzzSigner()
	f.Add(actSeed(f, s))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[]}`))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"x","sig":"eA=="}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAct(data)
		if err != nil {
			return
		}
		if !a.rec.Kind.IsRootSigned() || a.rec.ApplyBy() == nil || len(a.rec.Signatures) != 0 {
			t.Fatalf("accepted %s act with apply_by %v and %d signatures", a.rec.Kind, a.rec.ApplyBy(), len(a.rec.Signatures))
		}
		out, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseAct(out)
		if err != nil {
			t.Fatalf("an accepted act's file does not parse back: %v\n%s", err, out)
		}
		if b.ID() != a.ID() || !bytes.Equal(b.rec.Payload, a.rec.Payload) {
			t.Fatalf("act %s parses back as %s", a.ID(), b.ID())
		}
		_ = a.Describe()
		_ = a.Summary()
	})
}

// ParseSignature reads a detached signature someone sent: it never
// panics, and a signature it accepts names a key id and carries a 64-byte
// signature, and encodes back to a signature it accepts.
func FuzzParseSignature(f *testing.F) {
	s := fuzzSigner()
	sig, err := record.SignDetached([]byte("{}"), s)
	if err != nil {
		f.Fatal(err)
	}
	seed, err := json.Marshal(sig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"keyid":"SHA256:x","sig":""}`))
	f.Add([]byte(`{"keyid":"","sig":"AAAA","extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseSignature(data)
		if err != nil {
			return
		}
		if _, err := keys.HexFromID(got.KeyID); err != nil {
			t.Fatalf("accepted key id %q: %v", got.KeyID, err)
		}
		if raw, err := base64.StdEncoding.DecodeString(got.Sig); err != nil || len(raw) != 64 {
			t.Fatalf("accepted signature %q: not 64 base64 bytes", got.Sig)
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseSignature(again)
		if err != nil || back != got {
			t.Fatalf("accepted signature %+v encodes to %s, which parses as %+v, %v", got, again, back, err)
		}
	})
}
