package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"

	"cairn.dev/cairn/internal/translog"
)

// asVersion2 returns a version 3 bundle as version 2 keeps the same
// reads: each subject's document as the JSON a server answers it
// (….json), the manifest saying version 2.
func asVersion2(t *testing.T, data []byte) []byte {
	t.Helper()
	return rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		if m.Version != 3 {
			t.Fatalf("a bundle of version %d, not 3", m.Version)
		}
		m.Version = 2
		var names []string
		for _, mem := range m.Members {
			name := mem.Path
			if base, ok := strings.CutSuffix(name, compactExt); ok && isRepoMember(name) {
				doc, err := jsonDocument(files[name])
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				delete(files, name)
				name = base + ".json"
				files[name] = doc
			}
			names = append(names, name)
		}
		return names
	})
}

// bothVersions returns a version 3 bundle as it is and as version 2
// keeps it, by version.
func bothVersions(t *testing.T, data []byte) map[int][]byte {
	t.Helper()
	return map[int][]byte{3: data, 2: asVersion2(t, data)}
}

// editDoc returns a subject's member, in its encoding (compact or JSON),
// its document changed by edit.
func editDoc(t *testing.T, member []byte, edit func(d *translog.SubjectDoc)) []byte {
	t.Helper()
	if docs, _, err := translog.ParseSubjects(member); err == nil {
		if len(docs) != 1 {
			t.Fatalf("a member of %d documents", len(docs))
		}
		edit(&docs[0])
		return translog.AppendSubject(translog.AppendSubjectsHeader(nil, docs[0].Size, 1), &docs[0])
	}
	compact, err := compactDocument(member)
	if err != nil {
		t.Fatal(err)
	}
	edited := editDoc(t, compact, edit)
	doc, err := jsonDocument(edited)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// A bundle keeps its subjects' documents in the compact encoding
// (version 3), in fewer bytes than as JSON; the same reads kept as
// version 2 kept them (JSON) verify too, to the same report.
func TestVersions(t *testing.T) {
	w := newWorld(t)
	data, made, err := w.bundle(Options{MadeBy: "cairn test"})
	if err != nil {
		t.Fatal(err)
	}
	if made.Manifest.Version != Version {
		t.Fatalf("made version %d, want %d", made.Manifest.Version, Version)
	}
	b := mustRead(t, data)
	if b.Manifest.Version != 3 {
		t.Fatalf("a bundle of version %d, want 3", b.Manifest.Version)
	}
	compact, jsonDocs := 0, 0
	for name, member := range b.Files {
		if !strings.Contains(name, "/api/v1/log/subject/") {
			continue
		}
		if !strings.HasSuffix(name, compactExt) {
			t.Fatalf("member %s: not a compact document", name)
		}
		docs, _, err := translog.ParseSubjects(member)
		if err != nil || len(docs) != 1 {
			t.Fatalf("member %s: %d documents, %v", name, len(docs), err)
		}
		doc, err := jsonDocument(member)
		if err != nil {
			t.Fatal(err)
		}
		// What the server answered, the member holds (in its encoding).
		again, err := compactDocument(doc)
		if err != nil || !bytes.Equal(again, member) {
			t.Fatalf("member %s: its JSON is not the same document again (%v)", name, err)
		}
		compact, jsonDocs = compact+len(member), jsonDocs+len(doc)
	}
	if compact == 0 || compact*4 > jsonDocs*3 {
		t.Fatalf("the documents take %d bytes compact, %d as JSON: want a quarter fewer at least", compact, jsonDocs)
	}
	old := asVersion2(t, data)
	if len(old) <= len(data) {
		t.Errorf("version 2 of the bundle: %d bytes, version 3 %d", len(old), len(data))
	}
	w.stop()
	o := VerifyOptions{Introductions: []string{w.Intro}}
	rep3, err := Verify(context.Background(), bytes.NewReader(data), o)
	if err != nil {
		t.Fatalf("version 3: %v", err)
	}
	rep2, err := Verify(context.Background(), bytes.NewReader(old), o)
	if err != nil {
		t.Fatalf("version 2: %v", err)
	}
	j3, _ := json.Marshal(rep3)
	j2, _ := json.Marshal(rep2)
	if !bytes.Equal(j2, j3) || !rep3.Allowed || len(rep3.Packages) != 2 {
		t.Fatalf("the reports differ:\nversion 3 %s\nversion 2 %s", j3, j2)
	}
	// A version 3 bundle whose documents are JSON is refused: the reads
	// it answers are of compact members (the JSON ones are nothing the
	// verification reads).
	mixed := rewrite(t, old, func(m *Manifest, files map[string][]byte) []string {
		m.Version = 3
		return nil
	})
	if _, err := Verify(context.Background(), bytes.NewReader(mixed), o); err == nil {
		t.Fatal("a version 3 bundle of JSON documents verified")
	}
}

// A version 3 bundle's replay answers a batched read in the compact
// encoding, a batch of the members' documents, when the client asks for
// it (and 405 when it does not, or when a member is not one document at
// the batch's size); a subject read alone is answered in JSON, as a
// server answers it.
func TestReplayBatchCompact(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, data)
	app, root := subjectMember(t, b.Files, "package acme/app"), subjectMember(t, b.Files, "root")
	size := strings.Split(app, "/")[6] // repos/0/api/v1/log/subject/N/…
	base := strings.TrimSuffix(b.Manifest.Repositories[0].URL, "/")
	do := func(files map[string][]byte, accept string, subjects ...string) (*http.Response, []byte, *replay) {
		t.Helper()
		rp := &replay{rs: newResources([]string{base}, 3), files: files}
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/log/subjects?size="+size, strings.NewReader(strings.Join(subjects, "\n")+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := rp.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		return resp, body.Bytes(), rp
	}
	resp, body, rp := do(b.Files, translog.SubjectsMedia+", application/json;q=0.5", "package acme/app", "root")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != translog.SubjectsMedia {
		t.Fatalf("a batch of two subjects the bundle holds: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	got, _, err := translog.ParseSubjects(body)
	if err != nil || len(got) != 2 || got[0].Subject != "package acme/app" || got[1].Subject != "root" {
		t.Fatalf("the batch's answer: %v, %d documents", err, len(got))
	}
	for i, name := range []string{app, root} {
		want, _, _ := translog.ParseSubjects(b.Files[name])
		a, _ := jsonv2.Marshal(got[i])
		c, _ := jsonv2.Marshal(want[0])
		if !bytes.Equal(a, c) {
			t.Errorf("document %d of the answer is not member %s's", i, name)
		}
		if !rp.served[name] {
			t.Errorf("member %s answered, not marked read", name)
		}
	}
	if resp, _, _ := do(b.Files, "application/json", "package acme/app", "root"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("a batch asked in JSON: %s, want 405", resp.Status)
	}
	if resp, _, _ := do(b.Files, translog.SubjectsMedia+";q=0", "package acme/app"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("a batch that refuses the compact encoding: %s, want 405", resp.Status)
	}
	if resp, _, _ := do(b.Files, translog.SubjectsMedia, "package acme/app", "package acme/none"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("a batch with a subject the bundle lacks: %s, want 405", resp.Status)
	}
	edited := func(name string, member []byte) map[string][]byte {
		files := map[string][]byte{}
		for k, v := range b.Files {
			files[k] = v
		}
		files[name] = member
		return files
	}
	appDocs, _, _ := translog.ParseSubjects(b.Files[app])
	other := translog.AppendSubject(translog.AppendSubjectsHeader(nil, appDocs[0].Size+1, 1), &appDocs[0])
	for what, files := range map[string]map[string][]byte{
		"two documents":   edit2(b.Files[app], b.Files[root], edited, app),
		"no document":     edited(app, translog.AppendSubjectsHeader(nil, appDocs[0].Size, 0)),
		"another size":    edited(app, other),
		"a byte past one": edited(app, append(bytes.Clone(b.Files[app]), 0)),
	} {
		if resp, _, rp := do(files, translog.SubjectsMedia, "package acme/app", "root"); resp.StatusCode != http.StatusMethodNotAllowed || len(rp.served) != 0 {
			t.Errorf("a member of %s: %s, %d marked read; want 405, none", what, resp.Status, len(rp.served))
		}
	}

	// Alone, in JSON.
	rp = &replay{rs: newResources([]string{base}, 3), files: b.Files}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/log/subject?s=root&size="+size, nil)
	resp, err = rp.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("root read alone: %v %v", resp.Status, err)
	}
	var one bytes.Buffer
	one.ReadFrom(resp.Body)
	var doc subjectJSON
	if err := jsonv2.Unmarshal(one.Bytes(), &doc); err != nil || doc.Subject != "root" || len(doc.Files) == 0 || !rp.served[root] {
		t.Fatalf("root read alone: %v %+v", err, doc)
	}
}

// edit2 is the files with the member name holding two documents, a and
// then b (two batches one after the other).
func edit2(a, b []byte, edited func(string, []byte) map[string][]byte, name string) map[string][]byte {
	return edited(name, append(bytes.Clone(a), b...))
}

// Verify lets the collector run less often while it replays
// (index.ReplayGC), and puts its setting back as it was.
func TestVerifyPutsGCBack(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	prev := debug.SetGCPercent(77)
	defer debug.SetGCPercent(prev)
	if _, err := verify(data); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(77); got != 77 {
		t.Fatalf("the collector's percent after Verify: %d, want 77 as before", got)
	}
}
