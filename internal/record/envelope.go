package record

import (
	"bytes"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// envelopeByHand reads an envelope written as cairn writes one
// (encoding/json of a dsse.Envelope: members payloadType, payload and
// signatures, each signature's keyid and sig, in that order, no space,
// strings that need no escape, at most a final newline), the spelling
// of nearly every record, without the JSON decoder. ok false: read it
// with the decoder (decodeStrict), which says what is wrong. What it
// reads is what the decoder reads of the same bytes
// (FuzzEnvelopeByHand).
func envelopeByHand(data []byte) (env dsse.Envelope, ok bool) {
	rest, ok := bytes.CutPrefix(bytes.TrimSuffix(data, []byte("\n")), []byte(`{"payloadType":"`+PayloadType+`","payload":"`))
	if !ok {
		return env, false
	}
	str := func(prefix string) (string, bool) {
		if rest, ok = bytes.CutPrefix(rest, []byte(prefix)); !ok {
			return "", false
		}
		for i, c := range rest {
			if c == '"' {
				s := string(rest[:i])
				rest = rest[i+1:]
				return s, true
			}
			if c < 0x20 || c > 0x7e || c == '\\' {
				return "", false
			}
		}
		return "", false
	}
	payload, ok := str("")
	if !ok {
		return env, false
	}
	env = dsse.Envelope{PayloadType: PayloadType, Payload: payload}
	next := `,"signatures":[{"keyid":"`
	for {
		keyid, ok := str(next)
		if !ok {
			return env, false
		}
		sig, ok := str(`,"sig":"`)
		if !ok {
			return env, false
		}
		env.Signatures = append(env.Signatures, dsse.Signature{KeyID: keyid, Sig: sig})
		if string(rest) == "}]}" {
			return env, true
		}
		next = `},{"keyid":"`
	}
}
