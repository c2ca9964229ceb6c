package light

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/translog"
)

// mapWorld is a log's files and the map over them, as a server computes
// them (translog.Map), to check subject documents against.
type mapWorld struct {
	files []wireFile
	m     *translog.Map
	cp    checkpoint.Checkpoint
}

func newMapWorld(t *testing.T) *mapWorld {
	w := &mapWorld{m: translog.NewMap()}
	pkg := func(name, file string) string { return packagePath(name) + "/1.0.0/" + file }
	paths := []string{"root/00000001.json", "keys/ab/" + strings.Repeat("ab", 32) + "/" + strings.Repeat("01", 32) + ".json",
		pkg("acme/a", "descriptor.json"), pkg("acme/a", strings.Repeat("02", 32)+".json"),
		pkg("acme/b", "descriptor.json"), pkg("acme/a", strings.Repeat("03", 32)+".json")}
	for i, p := range paths {
		data := []byte(fmt.Sprintf("file %d", i))
		e := translog.NewEntry(strings.Repeat("c", 40), int64(1000+i), p, data)
		w.files = append(w.files, wireFile{Index: int64(i), Entry: string(e.Text()), Content: data})
		if s, ok := index.SubjectOf(p); ok {
			w.m.Add(s, int64(i), translog.LeafHash(e.Text()))
		}
	}
	w.cp = checkpoint.Checkpoint{Size: int64(len(paths)), Map: w.m.Root()}
	return w
}

// packagePath is a package's directory, found by asking the index which
// shard is the name's (the layout is the index's to know).
func packagePath(name string) string {
	for a := 0; a < 16; a++ {
		for b := 0; b < 16; b++ {
			for c := 0; c < 16; c++ {
				for d := 0; d < 16; d++ {
					p := fmt.Sprintf("packages/%x/%x/%x/%x/%s", a, b, c, d, name)
					if s, ok := index.SubjectOf(p); ok && s == "package "+name {
						return p
					}
				}
			}
		}
	}
	panic("no shard for " + name)
}

// doc is the honest answer for subject.
func (w *mapWorld) doc(subject string) *wireSubject {
	d := &wireSubject{Subject: subject, Size: w.cp.Size, Proof: w.m.Prove(subject)}
	for _, f := range w.files {
		e, _ := translog.ParseEntry([]byte(f.Entry))
		if s, _ := index.SubjectOf(e.Path); s == subject {
			d.Files = append(d.Files, f)
		}
	}
	d.Count = uint64(len(d.Files))
	return d
}

// A subject document proves its files complete against the map root: a
// server that leaves a file out, adds one, changes one, reorders them or
// denies a subject is refused, naming the subject.
func TestCheckSubject(t *testing.T) {
	w := newMapWorld(t)
	const subject = "package acme/a"
	refuse := func(err error) error { return fmt.Errorf("refused: %w", err) }
	files, err := checkSubject(w.cp, subject, w.doc(subject), refuse)
	if err != nil || len(files) != 3 || files[0].Index != 2 || files[2].Index != 5 || string(files[1].Data) != "file 3" || files[0].Time.Unix() != 1002 {
		t.Fatalf("the honest answer: %+v, %v", files, err)
	}
	if files, err := checkSubject(w.cp, "package acme/none", w.doc("package acme/none"), refuse); err != nil || len(files) != 0 {
		t.Fatalf("a subject the index does not hold: %+v, %v", files, err)
	}
	for _, c := range []struct {
		name   string
		tamper func(d *wireSubject)
		want   string
	}{
		{"a file left out", func(d *wireSubject) { d.Files = d.Files[:2]; d.Count = 2 }, `map proof refused: subject "package acme/a"`},
		{"the count says so too", func(d *wireSubject) { d.Files = d.Files[1:] }, "counts 3 files and holds 2"},
		{"every file left out", func(d *wireSubject) { d.Files, d.Count = nil, 0 }, `map proof refused: subject "package acme/a"`},
		{"a file of another subject added", func(d *wireSubject) {
			d.Files = append(d.Files, w.files[4])
			d.Count++
		}, "out of order"},
		{"a file changed", func(d *wireSubject) { d.Files[1].Content = []byte("file X") }, "not the ones its entry names"},
		{"an entry changed with its file", func(d *wireSubject) {
			e := translog.NewEntry(strings.Repeat("c", 40), 1003, mustEntry(d.Files[1].Entry).Path, []byte("other"))
			d.Files[1].Entry, d.Files[1].Content = string(e.Text()), []byte("other")
		}, "map proof refused"},
		{"files reordered", func(d *wireSubject) { d.Files[0], d.Files[1] = d.Files[1], d.Files[0] }, "out of order"},
		{"another subject's answer", func(d *wireSubject) { *d = *w.doc("package acme/b") }, `about subject "package acme/b"`},
		{"another subject's file under this one", func(d *wireSubject) {
			d.Files[2] = wireFile{Index: 6, Entry: w.files[4].Entry, Content: w.files[4].Content}
		}, "past the tree"},
		{"a malformed entry", func(d *wireSubject) { d.Files[0].Entry = "x\n" }, "malformed log entry"},
		{"the proof of another subject", func(d *wireSubject) { d.Proof = w.m.Prove("package acme/b") }, "map proof refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := w.doc(subject)
			c.tamper(d)
			_, err := checkSubject(w.cp, subject, d, refuse)
			if err == nil || !strings.HasPrefix(err.Error(), "refused: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want a refusal saying %q", err, c.want)
			}
		})
	}
	// A server that denies the subject exists.
	d := w.doc("package acme/none")
	d.Subject = subject
	if _, err := checkSubject(w.cp, subject, d, refuse); err == nil || !errors.Is(err, translog.ErrMapProof) {
		t.Fatalf("a subject denied: %v", err)
	}
}

func mustEntry(s string) translog.Entry {
	e, err := translog.ParseEntry([]byte(s))
	if err != nil {
		panic(err)
	}
	return e
}

// A subject document is the server's word: whatever bytes it sends, the
// check neither panics nor accepts files other than the honest ones.
func FuzzCheckSubject(f *testing.F) {
	w := newMapWorld(&testing.T{})
	for _, s := range []string{"package acme/a", "package acme/b", "root", "package acme/none"} {
		b, _ := json.Marshal(w.doc(s))
		f.Add(s, b)
	}
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		var d wireSubject
		if json.Unmarshal(body, &d) != nil {
			return
		}
		files, err := checkSubject(w.cp, subject, &d, func(err error) error { return err })
		if err != nil {
			return
		}
		honest := w.doc(subject)
		if len(files) != len(honest.Files) {
			t.Fatalf("accepted %d files of %q, the honest answer has %d", len(files), subject, len(honest.Files))
		}
		for i, file := range files {
			if file.Index != honest.Files[i].Index || string(file.Data) != string(honest.Files[i].Content) {
				t.Fatalf("accepted leaf %d with other bytes", file.Index)
			}
		}
	})
}

// Attack, in the compact encoding: a file whose bytes are not those its
// entry names is sent with its entry whole (the encoder says an entry by
// its file's bytes only when they make it), and the check hashes them
// and refuses; the entries made from their bytes prove the honest
// answer.
func TestCheckSubjectCompact(t *testing.T) {
	w := newMapWorld(t)
	const subject = "package acme/a"
	compact := func(d *wireSubject) *wireSubject {
		t.Helper()
		sd := translog.SubjectDoc{Subject: d.Subject, Size: d.Size, Count: d.Count, Proof: d.Proof}
		for _, f := range d.Files {
			sd.Files = append(sd.Files, translog.SubjectFile{Index: f.Index, Entry: []byte(f.Entry), Content: f.Content})
		}
		body := translog.AppendSubject(translog.AppendSubjectsHeader(nil, d.Size, 1), &sd)
		docs, _, err := translog.ParseSubjects(body)
		if err != nil || len(docs) != 1 {
			t.Fatalf("the compact batch: %v", err)
		}
		out := wireFromCompact(&docs[0])
		return &out
	}
	refuse := func(err error) error { return fmt.Errorf("refused: %w", err) }
	honest := compact(w.doc(subject))
	for _, f := range honest.Files {
		if !f.derived {
			t.Fatalf("leaf %d: the honest entry was sent whole", f.Index)
		}
	}
	if files, err := checkSubject(w.cp, subject, honest, refuse); err != nil || len(files) != 3 || string(files[1].Data) != "file 3" {
		t.Fatalf("the honest answer, compact: %+v, %v", files, err)
	}
	d := w.doc(subject)
	d.Files[1].Content = []byte("file X") // as long as "file 3"
	changed := compact(d)
	if changed.Files[1].derived || string(changed.Files[1].text()) != d.Files[1].Entry {
		t.Fatalf("a file changed under its entry: sent derived %v, entry %q", changed.Files[1].derived, changed.Files[1].text())
	}
	if _, err := checkSubject(w.cp, subject, changed, refuse); err == nil || !strings.Contains(err.Error(), "not the ones its entry names") {
		t.Fatalf("a file changed under its entry, compact: %v, want it refused", err)
	}
}
