package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func compactBatch(t testing.TB) ([]byte, []SubjectDoc) {
	m := NewMap()
	m.Add("package acme/x", 7, tlog.Hash{1})
	m.Add("package acme/y", 8, tlog.Hash{2})
	m.Add("package acme/x", 300, tlog.Hash{3})
	// Entries as an index makes them (said by their files' bytes, two of
	// one commit), and two that are not (sent whole).
	file := func(index int64, commit string, path, content string) SubjectFile {
		return SubjectFile{Index: index, Entry: NewEntry(commit, 1700000000, path, []byte(content)).Text(), Content: []byte(content)}
	}
	c1, c2 := strings.Repeat("a", 40), strings.Repeat("b", 40)
	docs := []SubjectDoc{
		{Subject: "package acme/x", Size: 1234, Count: 2, Proof: m.Prove("package acme/x"), Files: []SubjectFile{
			file(3, c1, "packages/1/2/3/4/acme/x/1.0.0/descriptor.json", `{"name":"acme/x"}`),
			file(4, c1, "packages/1/2/3/4/acme/x/1.0.0/ab12.json", `{"payload":"…"}`),
			{Index: 7, Entry: []byte("entry seven"), Content: []byte(`{"payload":"…"}`)},
			file(9, c2, "packages/1/2/3/4/acme/x/1.0.0/cd34.json", ``),
			{Index: 300, Entry: []byte("entry three hundred"), Content: []byte{}},
		}},
		{Subject: "package acme/none", Size: 1234, Proof: m.Prove("package acme/none"), Files: []SubjectFile{}},
	}
	b := AppendSubjectsHeader(nil, 1234, len(docs))
	for i := range docs {
		b = AppendSubject(b, &docs[i])
	}
	return b, docs
}

// A compact batch reads back as written, its proofs as their JSON says
// them; two batches one after the other read as one list, and the spans
// make a batch of some of them again.
func TestSubjectsRoundTrip(t *testing.T) {
	b, docs := compactBatch(t)
	got, spans, err := ParseSubjects(append(bytes.Clone(b), b...))
	if err != nil || len(got) != 2*len(docs) || len(spans) != len(got) {
		t.Fatalf("%d documents, %d spans, %v", len(got), len(spans), err)
	}
	sizes, spans2, err := SubjectSpans(append(bytes.Clone(b), b...))
	if err != nil || !reflect.DeepEqual(spans2, spans) || len(sizes) != len(spans) || sizes[0] != 1234 {
		t.Fatalf("SubjectSpans: %v %v %v, want the spans %v at 1234", sizes, spans2, err, spans)
	}
	for i, d := range got {
		w := docs[i%len(docs)]
		gp, _ := json.Marshal(d.Proof)
		wp, _ := json.Marshal(w.Proof)
		d.Proof, w.Proof = MapProof{}, MapProof{}
		// An entry said by its file's bytes is made from them (and says
		// so); one sent whole is not.
		for k := range d.Files {
			if _, _, derived := derivedEntry(w.Files[k].Entry, w.Files[k].Content); d.Files[k].Derived != derived {
				t.Fatalf("document %d, file %d: Derived %v, want %v", i, k, d.Files[k].Derived, derived)
			}
			d.Files[k].Derived = false
		}
		if !reflect.DeepEqual(d, w) || !bytes.Equal(gp, wp) {
			t.Fatalf("document %d:\n%+v %s\nwant\n%+v %s", i, d, gp, w, wp)
		}
	}
	// An entry said by its file's bytes is not sent: the three such
	// save their sha256 (64 hex digits) at least.
	full := 0
	for _, f := range docs[0].Files {
		full += len(f.Entry) + len(f.Content)
	}
	if n := len(AppendSubject(nil, &docs[0])); n > full-3*64 {
		t.Fatalf("a document of %d bytes of entries and files encodes to %d", full, n)
	}
	one := AppendSubjectsHeader(nil, 1234, 1)
	one = append(one, b[spans[1][0]:spans[1][1]]...)
	if again, _, err := ParseSubjects(one); err != nil || len(again) != 1 || again[0].Subject != "package acme/none" {
		t.Fatalf("a batch of the second span: %+v %v", again, err)
	}
}

// Truncated anywhere, or with a length past its end, a batch does not
// parse, and says so (ErrSubjects).
func TestSubjectsTruncated(t *testing.T) {
	b, _ := compactBatch(t)
	for n := 1; n < len(b); n++ {
		if _, _, err := ParseSubjects(b[:n]); !errors.Is(err, ErrSubjects) {
			t.Fatalf("the first %d of %d bytes: %v, want ErrSubjects", n, len(b), err)
		}
		if _, _, err := SubjectSpans(b[:n]); !errors.Is(err, ErrSubjects) {
			t.Fatalf("SubjectSpans of the first %d of %d bytes: %v, want ErrSubjects", n, len(b), err)
		}
	}
	if _, _, err := ParseSubjects([]byte(`{"size":1,"subjects":[]}`)); !errors.Is(err, ErrSubjects) {
		t.Fatalf("JSON: %v, want ErrSubjects", err)
	}
}

func FuzzParseSubjects(f *testing.F) {
	b, _ := compactBatch(f)
	f.Add(b)
	f.Add([]byte(subjectsMagic + "\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, spans, err := ParseSubjects(data)
		// SubjectSpans reads the same documents, lengths only.
		sizes, spans2, err2 := SubjectSpans(data)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(spans, spans2) {
			t.Fatalf("ParseSubjects: %v %v; SubjectSpans: %v %v", spans, err, spans2, err2)
		}
		if err != nil {
			return
		}
		for i, d := range docs {
			if sizes[i] != d.Size {
				t.Fatalf("document %d: SubjectSpans says size %d, ParseSubjects %d", i, sizes[i], d.Size)
			}
		}
		// What parses encodes to what parses the same.
		for i, d := range docs {
			if spans[i][0] > spans[i][1] || spans[i][1] > len(data) {
				t.Fatalf("span %v outside %d bytes", spans[i], len(data))
			}
			again, _, err := ParseSubjects(AppendSubject(AppendSubjectsHeader(nil, d.Size, 1), &d))
			if err != nil || len(again) != 1 {
				t.Fatalf("document %d encoded again: %v", i, err)
			}
			a, b := again[0], d
			a.Proof, b.Proof = MapProof{}, MapProof{}
			// An entry sent whole that its file's bytes make is encoded
			// again by them (Derived); a derived entry names their
			// sha256 and size.
			a.Files, b.Files = slices.Clone(a.Files), slices.Clone(b.Files)
			for _, files := range [][]SubjectFile{a.Files, b.Files} {
				for k := range files {
					sum := sha256.Sum256(files[k].Content)
					said := fmt.Sprintf(" %x %d ", sum, len(files[k].Content))
					if files[k].Derived && !bytes.Contains(files[k].Entry, []byte(said)) {
						t.Fatalf("document %d, file %d: Derived, but its entry %q does not name its bytes", i, k, files[k].Entry)
					}
					files[k].Derived = false
				}
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("document %d encoded again reads\n%+v\nnot\n%+v", i, a, b)
			}
		}
	})
}

// A batch read is answered compact when its Accept header names the
// media type with a q other than 0, in any of its values.
func TestAcceptsSubjects(t *testing.T) {
	for _, c := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"application/json"}, false},
		{[]string{SubjectsMedia}, true},
		{[]string{SubjectsMedia + ", application/json;q=0.5"}, true},
		{[]string{"application/json", " " + SubjectsMedia + " ; q=0.1"}, true},
		{[]string{SubjectsMedia + ";q=0"}, false},
		{[]string{"text/html, " + SubjectsMedia + "; Q=0.0"}, false},
		{[]string{SubjectsMedia + "2"}, false},
		{[]string{"application/vnd.cairn.subjects"}, false},
	} {
		if got := AcceptsSubjects(c.accept); got != c.want {
			t.Errorf("Accept %q: %v, want %v", c.accept, got, c.want)
		}
	}
}
