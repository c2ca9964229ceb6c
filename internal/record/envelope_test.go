package record

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// The hand reading of an envelope accepts nothing the JSON decoder
// refuses and reads what it accepts as the decoder does: checked on
// envelopes as cairn writes them (one signature, two), on spellings
// around them (escapes, space, members out of order, unknown or twice,
// bytes that are not UTF-8, a second newline) and on whatever the fuzzer
// makes of them.
func FuzzEnvelopeByHand(f *testing.F) {
	payload := base64.StdEncoding.EncodeToString([]byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	sig := base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
	for _, sigs := range [][]dsse.Signature{
		{{KeyID: "SHA256:abc", Sig: sig}},
		{{KeyID: "SHA256:abc", Sig: sig}, {KeyID: "SHA256:def", Sig: sig}},
	} {
		data, err := json.Marshal(dsse.Envelope{PayloadType: PayloadType, Payload: payload, Signatures: sigs})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(append(data, '\n'))
	}
	for _, s := range []string{
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA=="}]}` + "\n\n",
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA=="}]} `,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA=="}],"x":1}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA==","x":1}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","keyid":"k","sig":"AA=="}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA=="}],"payload":"eyJ9"}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ\u0039","signatures":[{"keyid":"k","sig":"AA=="}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k\"","sig":"AA=="}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k` + "\xff" + `","sig":"AA=="}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"sig":"AA==","keyid":"k"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA=="},]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA=="}]}]`,
		`{"payloadType":"application/vnd.in-toto+json", "payload":"eyJ9","signatures":[{"keyid":"k","sig":"AA=="}]}`,
		`{"payload":"eyJ9","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"k","sig":"AA=="}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, ok := envelopeByHand(data)
		if !ok {
			return
		}
		var want dsse.Envelope
		if err := decodeStrict(data, &want, "envelope"); err != nil {
			t.Fatalf("%q: read by hand as %+v, refused by the decoder: %v", data, env, err)
		}
		if !reflect.DeepEqual(env, want) {
			t.Fatalf("%q: read by hand as %+v, by the decoder as %+v", data, env, want)
		}
	})
}

// An envelope as cairn writes it is read by hand: the decoder is only
// for the others.
func TestEnvelopeByHand(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
	data, err := json.Marshal(dsse.Envelope{PayloadType: PayloadType, Payload: "eyJ9", Signatures: []dsse.Signature{{KeyID: "SHA256:a", Sig: sig}, {KeyID: "SHA256:b", Sig: sig}}})
	if err != nil {
		t.Fatal(err)
	}
	env, ok := envelopeByHand(append(data, '\n'))
	if !ok || env.Payload != "eyJ9" || len(env.Signatures) != 2 || env.Signatures[1].KeyID != "SHA256:b" || env.Signatures[1].Sig != sig {
		t.Fatalf("read by hand: %v, %+v", ok, env)
	}
}
