package record

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	ita1 "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"cairn.dev/cairn/internal/keys"
)

// The test vector of the DSSE protocol specification: PAE bytes, and the
// spec's ECDSA P-256 signature verifying over them.
func TestDSSESpecVector(t *testing.T) {
	pae := dsse.PAE("http://example.com/HelloWorld", []byte("hello world"))
	if string(pae) != "DSSEv1 29 http://example.com/HelloWorld 11 hello world" {
		t.Fatalf("PAE = %q", pae)
	}
	x, _ := new(big.Int).SetString("46950820868899156662930047687818585632848591499744589407958293238635476079160", 10)
	y, _ := new(big.Int).SetString("5640078356564379163099075877009565129882514886557779369047442380624545832820", 10)
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
	sig, _ := base64.StdEncoding.DecodeString("A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==")
	h := sha256.Sum256(pae)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, h[:], r, s) {
		t.Fatal("the spec's signature does not verify over our PAE")
	}
	// And one byte off does not.
	h2 := sha256.Sum256(dsse.PAE("http://example.com/HelloWorld", []byte("hello world!")))
	if ecdsa.Verify(pub, h2[:], r, s) {
		t.Fatal("signature verified over the wrong PAE")
	}
}

func signer(t testing.TB) keys.Signer {
	_, priv, _ := ed25519.GenerateKey(nil)
	return keys.NewSigner(priv)
}

var desc = Subject{Name: "acme/fastjson@1.2.3", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}

func samples(t testing.TB) map[Kind]any {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	s := signer(t)
	return map[Kind]any{
		Authored:   AuthoredPredicate{Descriptor: Ref{SHA256: desc.SHA256(), Size: 10}, Issued: now},
		Audited:    CertificationPredicate{Issued: now, Note: "ok"},
		Tested:     TestResultPredicate{Result: "PASSED", Configuration: []ResourceDescriptor{{Name: "ci/test.sh"}}},
		Vulnerable: VulnsPredicate{Scanner: VulnScanner{URI: "https://cairn.dev/certify", Result: []VulnResult{{ID: "GHSA-1", Severity: []VulnSeverity{{Method: "cairn", Score: "high"}}}}}, Metadata: VulnMetadata{now, now}},
		Revoke:     EndPredicate{Reason: "false positive", Issued: now},
		Grant:      GrantPredicate{Key: keys.FormatPublic(s.Public()), Holder: "alice", Scopes: []string{"publish:acme/*"}, Issued: now},
		Root:       RootPredicate{Version: 1, Keys: []RootKey{{Key: keys.FormatPublic(s.Public())}}, Threshold: 1, Issued: now},
	}
}

// Every record cairn writes is an in-toto Statement v1 that the official
// in-toto Go bindings accept, and signs and parses back to the same id.
func TestRoundTripAndInTotoInterop(t *testing.T) {
	s := signer(t)
	for kind, pred := range samples(t) {
		payload, err := Build(kind, []Subject{desc}, pred)
		if err != nil {
			t.Fatal(err)
		}
		var st ita1.Statement
		if err := protojson.Unmarshal(payload, &st); err != nil {
			t.Fatalf("%s: in-toto bindings reject the statement: %v", kind, err)
		}
		if err := st.Validate(); err != nil {
			t.Fatalf("%s: in-toto Validate: %v", kind, err)
		}
		r, err := Sign(payload, s)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if r.Kind != kind || r.ID != ID(payload) {
			t.Fatalf("%s: parsed kind %s id %s", kind, r.Kind, r.ID)
		}
		if !r.VerifySignature(0, s.Public()) {
			t.Fatalf("%s: own signature does not verify", kind)
		}
		if r.VerifySignature(0, signer(t).Public()) {
			t.Fatalf("%s: signature verified under another key", kind)
		}
		again, err := Parse(r.Raw)
		if err != nil || again.ID != r.ID {
			t.Fatalf("%s: reparse: %v", kind, err)
		}
	}
}

// A threshold counts distinct keys: the same key twice counts once.
func TestSignedByCountsDistinctKeys(t *testing.T) {
	a, b := signer(t), signer(t)
	payload, _ := Build(Root, []Subject{desc}, samples(t)[Root])
	r, err := Sign(payload, a, a, a)
	if err != nil {
		t.Fatal(err)
	}
	cands := map[string]ed25519.PublicKey{keys.ID(a.Public()): a.Public(), keys.ID(b.Public()): b.Public()}
	if got := r.SignedBy(cands); len(got) != 1 {
		t.Fatalf("three signatures by one key counted as %d keys", len(got))
	}
	// A signature that names b's key id but was made by a counts for nobody.
	r.Signatures[1].KeyID = keys.ID(b.Public())
	if got := r.SignedBy(cands); len(got) != 1 || got[0] != keys.ID(a.Public()) {
		t.Fatalf("mislabelled signature counted: %v", got)
	}
}

// A key id has one spelling: an envelope that names its signer's key
// another way (the same digest with a line break inside, or with the
// unused bits of its last character set) is refused as it is read, so
// that no count of issuers or match of an issuer sees two strings for
// one key.
func TestKeyIDOtherSpellingsRefused(t *testing.T) {
	a := signer(t)
	payload, _ := Build(Audited, []Subject{desc}, samples(t)[Audited])
	r, err := Sign(payload, a)
	if err != nil {
		t.Fatal(err)
	}
	id := keys.ID(a.Public())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, id[len(id)-1])
	for _, other := range []string{
		id[:30] + `\n` + id[30:],                   // a JSON escape: the string holds a line break
		id[:len(id)-1] + alphabet[last|1:last|1+1], // the same 32 bytes to a lenient decoder
		id[:len(id)-1] + alphabet[last|3:last|3+1],
	} {
		raw := strings.Replace(string(r.Raw), `"keyid":"`+id+`"`, `"keyid":"`+other+`"`, 1)
		if raw == string(r.Raw) {
			t.Fatal("the envelope does not name its key as the test expects")
		}
		if _, err := Parse([]byte(raw)); err == nil || !strings.Contains(err.Error(), "not a SHA256 fingerprint") {
			t.Errorf("key id %q for %s: Parse = %v, want it refused", other, id, err)
		}
	}
}

func envelope(payloadType string, payload []byte, sigs int) []byte {
	env := dsse.Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload)}
	for i := 0; i < sigs; i++ {
		env.Signatures = append(env.Signatures, dsse.Signature{KeyID: "SHA256:" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), Sig: base64.StdEncoding.EncodeToString(make([]byte, 64))})
	}
	b, _ := json.Marshal(env)
	return b
}

func TestParseRejects(t *testing.T) {
	good, _ := Build(Audited, []Subject{desc}, samples(t)[Audited])
	stmt := func(mut func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		mut(m)
		b, _ := json.Marshal(m)
		return envelope(PayloadType, b, 1)
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"not json":             {[]byte("{"), "not JSON"},
		"truncated":            {envelope(PayloadType, good, 1)[:40], "not JSON"},
		"oversized":            {make([]byte, MaxSize+1), "over the"},
		"wrong payload type":   {envelope("application/json", good, 1), "payload type"},
		"no signature":         {envelope(PayloadType, good, 0), "no signature"},
		"two signatures":       {envelope(PayloadType, good, 2), "exactly one"},
		"unknown predicate":    {stmt(func(m map[string]any) { m["predicateType"] = "https://evil.example/x" }), "unknown predicate type"},
		"wrong statement type": {stmt(func(m map[string]any) { m["_type"] = "https://in-toto.io/Statement/v0.1" }), "_type"},
		"no subject":           {stmt(func(m map[string]any) { m["subject"] = []any{} }), "subjects"},
		"bad digest": {stmt(func(m map[string]any) {
			m["subject"] = []any{map[string]any{"name": "x", "digest": map[string]any{"sha256": "XYZ"}}}
		}), "digest"},
		"predicate not object":  {stmt(func(m map[string]any) { m["predicate"] = "audited" }), "JSON object"},
		"predicate wrong shape": {stmt(func(m map[string]any) { m["predicate"] = map[string]any{"issued": 5} }), "audited record"},
		// Two members of one name: parsers disagree on which wins, so a
		// statement could mean one thing to cairn and another to a verifier.
		"duplicate predicateType": {envelope(PayloadType, []byte(strings.Replace(string(good), `"predicateType":`, `"predicateType":"https://evil.example/x","predicateType":`, 1)), 1), "duplicate"},
		"duplicate payload":       {[]byte(strings.Replace(string(envelope(PayloadType, good, 1)), `"payload":`, `"payload":"e30=","payload":`, 1)), "duplicate"},
	}
	for name, c := range cases {
		_, err := Parse(c.data)
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrMalformed containing %q", name, err, c.want)
		}
	}
}

func TestScopes(t *testing.T) {
	cases := []struct {
		scope string
		kind  Kind
		name  string
		want  bool
	}{
		{"publish:acme/*", Authored, "acme/fastjson", true},
		{"publish:acme/*", Authored, "other/pkg", false},
		{"publish:acme", Authored, "acme/x", true},
		{"publish:acme/*", Audited, "acme/fastjson", false},
		{"publish:acme/*", Deprecated, "acme/fastjson", true},
		{"certify:audited", Audited, "any/thing", true},
		{"certify:audited", Vulnerable, "any/thing", false},
		{"certify:vulnerable:acme/*", Vulnerable, "other/x", false},
		{"checkpoint", Authored, "acme/x", false},
		{"checkpoint", Audited, "acme/x", false},
		// Go module paths: many elements, uppercase, names beneath.
		{"publish:example.com/*", Authored, "example.com/greet", true},
		{"publish:example.com/*", Authored, "example.com/greet/v2", true},
		{"publish:example.com/greet", Authored, "example.com/greet/v2", true},
		{"publish:example.com/greet", Authored, "example.com/greeter", false},
		{"publish:example.com/greet/v2", Authored, "example.com/greet", false},
		{"publish:example.com", Authored, "example.com/a/b/c", true},
		{"publish:example.com/*", Authored, "example.org/greet", false},
		{"publish:github.com/BurntSushi/*", Authored, "github.com/BurntSushi/toml", true},
		{"publish:github.com/BurntSushi/*", Authored, "github.com/burntsushi/toml", true},
		{"publish:corp.example/*", Authored, "Corp.example/greet", true},
		{"publish:corp.example/*", Authored, "CORP.EXAMPLE/Greet/v2", true},
		{"publish:*", Authored, "example.com/greet/v2", true},
		{"publish:*/*", Authored, "github.com/a/b", true},
		{"certify:audited:golang.org/x/*", Audited, "golang.org/x/mod", true},
		{"certify:audited:golang.org/x/*", Audited, "golang.org/y/mod", false},
		{"publish:a/b/c", Authored, "a/b", false},
	}
	for _, c := range cases {
		s, err := ParseScope(c.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Allows(c.kind, c.name); got != c.want {
			t.Errorf("%s allows %s on %s = %v, want %v", c.scope, c.kind, c.name, got, c.want)
		}
	}
	for _, bad := range []string{"root", "publish:", "certify:authored", "certify:nope", "publish:[", "publish:a b/*", "publish:a//b", "publish:a/", "publish:" + strings.Repeat("a", 256), "publish:a@b/*", "checkpoint:*", "label:" + strings.Repeat("l", 64)} {
		if _, err := ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) accepted", bad)
		}
	}
	if _, err := ParseScope("label:" + strings.Repeat("l", 63)); err != nil {
		t.Errorf("a label pattern of 63: %v", err)
	}
}

func TestMatchName(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"acme/*", "acme/x", true},
		{"acme/*", "acme", false},
		{"acme/x", "acme/x", true},
		{"acme/x", "acme/xy", false},
		{"acme/x", "acme/x/v2", true},
		{"example.com/*/v2", "example.com/greet/v2", true},
		{"example.com/*/v2", "example.com/greet/v3", false},
		{"example.com/*/v2", "example.com/greet/v2/sub", true},
		{"Example.COM/G*", "example.com/greet", true},
		{"example.com/greet", "EXAMPLE.com/GREET", true},
		{"*/*", "a.b/c/d/e/f", true},
		{"a/*/c", "a/b", false},
	}
	for _, c := range cases {
		if got := MatchName(c.pattern, c.name); got != c.want {
			t.Errorf("MatchName(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

// A path name (an upstream's) is at most 63 bytes.
func TestUpstreamNameLength(t *testing.T) {
	if err := CheckUpstreamName(strings.Repeat("u", 63)); err != nil {
		t.Errorf("63 bytes: %v", err)
	}
	if err := CheckUpstreamName(strings.Repeat("u", 64)); err == nil {
		t.Error("64 bytes accepted")
	}
}

func FuzzParse(f *testing.F) {
	s := signer(f)
	for kind, pred := range samples(f) {
		payload, _ := Build(kind, []Subject{desc}, pred)
		r, _ := Sign(payload, s)
		f.Add(r.Raw)
	}
	f.Add([]byte(`{"payloadType":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside ErrMalformed: %v", err)
			}
			return
		}
		if r.ID != ID(r.Payload) || len(r.Signatures) == 0 || r.Predicate == nil {
			t.Fatalf("accepted record is incomplete: %+v", r)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	s := signer(b)
	payload, _ := Build(Audited, []Subject{desc}, samples(b)[Audited])
	r, _ := Sign(payload, s)
	b.SetBytes(int64(len(r.Raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(r.Raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	s := signer(b)
	payload, _ := Build(Audited, []Subject{desc}, samples(b)[Audited])
	r, _ := Sign(payload, s)
	pae := dsse.PAE(PayloadType, payload)
	for b.Loop() {
		if !ed25519.Verify(s.Public(), pae, r.Signatures[0].Sig) {
			b.Fatal("bad")
		}
	}
}

// A batch with one bad signature still gives every signature its own,
// exact answer; one under the wrong key is refused like a bad one.
func TestVerifyBatch(t *testing.T) {
	s, other := signer(t), signer(t)
	var recs []*Record
	var checks []Check
	for i := 0; i < 40; i++ {
		payload, _ := Build(Audited, []Subject{desc}, CertificationPredicate{Note: fmt.Sprint(i)})
		r, err := Sign(payload, s)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		checks = append(checks, Check{Rec: r, Sig: 0, Pub: s.Public()})
	}
	recs[7].Signatures[0].Sig[3] ^= 1 // tampered
	checks[23].Pub = other.Public()   // the wrong key
	VerifyBatch(checks)
	for i, r := range recs {
		want := i != 7 && i != 23
		if got := r.VerifySignature(0, checks[i].Pub); got != want {
			t.Errorf("record %d: verified %v, want %v", i, got, want)
		}
	}
	// All good: the batch alone decides, and says yes.
	good := append(append([]Check(nil), checks[:7]...), checks[8:23]...)
	for _, c := range good {
		c.Rec.Signatures[0].memo = nil
	}
	VerifyBatch(good)
	for _, c := range good {
		if valid, ok := c.Rec.known(0, c.Pub); !ok || !valid {
			t.Fatal("a good batch did not record its answers")
		}
	}
}
