package translog

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

// A proof decoded by go-json-experiment/json (UnmarshalJSONFrom, in a
// light read's document) is the one encoding/json decodes, and what
// UnmarshalJSON refuses it refuses.
func TestMapProofJSONv2(t *testing.T) {
	m, _, present, absent := built(t, 100)
	for _, s := range append(append([]string{}, present[:20]...), absent[:40]...) {
		p := m.Prove(s)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Subject string   `json:"subject"`
			Proof   MapProof `json:"proof"`
		}
		if err := jsonv2.Unmarshal([]byte(`{"subject":"x","proof":`+string(b)+`}`), &doc); err != nil {
			t.Fatalf("decoding %s: %v", b, err)
		}
		if !reflect.DeepEqual(p, doc.Proof) {
			t.Fatalf("decoded in a document, the proof changed:\n%+v\n%+v", p, doc.Proof)
		}
	}
	h := func(n int) string { x, _ := json.Marshal(bytes.Repeat([]byte{1}, n)); return string(x) }
	for name, text := range map[string]string{
		"depth 257":         `{"depth":257,"bitmap":"","siblings":[]}`,
		"depth -1":          `{"depth":-1,"bitmap":"","siblings":[]}`,
		"short sibling":     `{"depth":1,"bitmap":"gA==","siblings":[` + h(31) + `]}`,
		"long sibling":      `{"depth":1,"bitmap":"gA==","siblings":[` + h(33) + `]}`,
		"short other key":   `{"depth":0,"bitmap":"","siblings":[],"other":{"key":` + h(31) + `,"count":1,"chain":` + h(32) + `}}`,
		"short other chain": `{"depth":0,"bitmap":"","siblings":[],"other":{"key":` + h(32) + `,"count":1,"chain":` + h(2) + `}}`,
		"bad base64":        `{"depth":1,"bitmap":"!!","siblings":[]}`,
		"not an object":     `[1,2]`,
	} {
		var doc struct {
			Proof MapProof `json:"proof"`
		}
		if err := jsonv2.Unmarshal([]byte(`{"proof":`+text+`}`), &doc); err == nil {
			t.Errorf("%s: decoded %+v", name, doc.Proof)
		}
	}
}
