package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/translog"
)

// POST /api/v1/log/subjects answers in the compact encoding a client
// that asks for it (Accept), with the same documents, files and proofs
// as the JSON answer; any other client, JSON.
func TestLogSubjectsCompact(t *testing.T) {
	s, _, c := logServed(t)
	asked := []string{"package acme/none", "root", "package acme/x"}
	post := func(accept string) (*http.Response, []byte) {
		var h map[string]string
		if accept != "" {
			h = map[string]string{"Accept": accept}
		}
		return s.do("POST", "/api/v1/log/subjects", strings.NewReader(strings.Join(asked, "\n")+"\n"), h)
	}
	resp, body := post("")
	var want struct{ Subjects []SubjectDoc }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &want) != nil || len(want.Subjects) != len(asked) {
		t.Fatalf("JSON: %s %s", resp.Status, body)
	}
	for _, accept := range []string{"application/json", translog.SubjectsMedia + ";q=0", "text/html, " + translog.SubjectsMedia + "; q=0.0"} {
		if resp, _ := post(accept); resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("Accept: %s: answered %s, want JSON", accept, resp.Header.Get("Content-Type"))
		}
	}

	resp, body = post(translog.SubjectsMedia + ", application/json;q=0.5")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != translog.SubjectsMedia {
		t.Fatalf("compact: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	docs, _, err := translog.ParseSubjects(body)
	if err != nil || len(docs) != len(asked) {
		t.Fatalf("compact: %d documents, %v", len(docs), err)
	}
	for i, d := range docs {
		w := want.Subjects[i]
		if d.Subject != w.Subject || d.Size != c.N || d.Size != w.Size || d.Count != w.Count || len(d.Files) != len(w.Files) {
			t.Fatalf("document %d: %q size %d count %d files %d, want %q size %d count %d files %d", i, d.Subject, d.Size, d.Count, len(d.Files), w.Subject, w.Size, w.Count, len(w.Files))
		}
		for k, f := range d.Files {
			if wf := w.Files[k]; f.Index != wf.Index || string(f.Entry) != wf.Entry || !bytes.Equal(f.Content, wf.Content) {
				t.Errorf("document %d, file %d: not the JSON answer's", i, k)
			}
		}
		got, _ := json.Marshal(d.Proof)
		exp, _ := json.Marshal(w.Proof)
		if !bytes.Equal(got, exp) {
			t.Errorf("document %d: proof %s, want %s", i, got, exp)
		}
	}
	if len(body)*4 > len(mustJSON(t, want))*3 {
		t.Errorf("compact answer of %d bytes, JSON of %d: want a quarter fewer at least", len(body), len(mustJSON(t, want)))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
