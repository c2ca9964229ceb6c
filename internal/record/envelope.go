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
	payload, sigs, ok := readByHand(data)
	if !ok {
		return env, false
	}
	env = dsse.Envelope{PayloadType: PayloadType, Payload: string(payload)}
	for _, s := range sigs {
		env.Signatures = append(env.Signatures, dsse.Signature{KeyID: s.keyID, Sig: string(s.sig)})
	}
	return env, true
}

// rawSignature is an envelope's signature as Parse reads it: its key id,
// and its sig still in base64.
type rawSignature struct {
	keyID string
	sig   []byte
}

// readByHand reads an envelope as envelopeByHand does, and returns its
// payload and signatures' sigs still in base64, as slices of data, not
// copies.
func readByHand(data []byte) (payload []byte, sigs []rawSignature, ok bool) {
	rest, ok := bytes.CutPrefix(bytes.TrimSuffix(data, []byte("\n")), []byte(`{"payloadType":"`+PayloadType+`","payload":"`))
	if !ok {
		return nil, nil, false
	}
	str := func(prefix string) ([]byte, bool) {
		if rest, ok = bytes.CutPrefix(rest, []byte(prefix)); !ok {
			return nil, false
		}
		for i, c := range rest {
			if c == '"' {
				s := rest[:i:i]
				rest = rest[i+1:]
				return s, true
			}
			if c < 0x20 || c > 0x7e || c == '\\' {
				return nil, false
			}
		}
		return nil, false
	}
	if payload, ok = str(""); !ok {
		return nil, nil, false
	}
	next := `,"signatures":[{"keyid":"`
	for {
		keyid, ok := str(next)
		if !ok {
			return nil, nil, false
		}
		sig, ok := str(`,"sig":"`)
		if !ok {
			return nil, nil, false
		}
		sigs = append(sigs, rawSignature{keyID: string(keyid), sig: sig})
		if string(rest) == "}]}" {
			return payload, sigs, true
		}
		next = `},{"keyid":"`
	}
}
