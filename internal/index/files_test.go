package index_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/snapshot"
)

// catalogWorld is an index with what the catalog judges: revoked and
// superseded records, a record whose key was revoked after it signed, a
// snapshot and a label moved twice.
type catalogWorld struct {
	*fixture
	curator  keys.Signer
	lts      string // the label's snapshot digest now
	ltsFirst string // the one it pointed at first
}

func newCatalogWorld(t *testing.T) *catalogWorld {
	f := newFixture(t)
	w := &catalogWorld{fixture: f, curator: newSigner()}
	f.grant(w.curator, "curators", "snapshot", "label:*")
	p1 := f.publish(f.alice, "acme/fastjson", "1.2.3")
	f.publish(f.alice, "acme/fastjson", "1.2.4")
	f.publish(f.bob, "bob/tool", "1.0.0")
	aud, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited, Note: "first look"}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := author.Revoke(f.ctx, f.repo, aud.Records[0], "wrong build", f.audit); err != nil {
		t.Fatal(err)
	}
	vuln, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "high"}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Vulnerable, VulnID: "GHSA-1", Severity: "critical", Supersedes: vuln.Records[0]}, f.audit); err != nil {
		t.Fatal(err)
	}
	if _, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.4", Kind: record.Audited}, f.bob); err != nil {
		t.Fatal(err)
	}
	if _, err := author.RevokeKey(f.ctx, f.repo, keys.ID(f.bob.Public()), "laptop lost", f.root); err != nil {
		t.Fatal(err)
	}
	_, one, err := author.CreateSnapshot(f.ctx, f.repo, &snapshot.Snapshot{Schema: snapshot.Schema, Name: "lts-1", Packages: []snapshot.Entry{{Name: "acme/fastjson", Version: "1.2.3", Descriptor: p1.Ref}}}, w.curator)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := author.SetLabel(f.ctx, f.repo, "lts", one.SHA256, w.curator); err != nil {
		t.Fatal(err)
	}
	_, two, err := author.CreateSnapshot(f.ctx, f.repo, &snapshot.Snapshot{Schema: snapshot.Schema, Name: "lts-2", Packages: []snapshot.Entry{{Name: "bob/tool", Version: "1.0.0", Descriptor: f.descriptorRef("bob/tool", "1.0.0")}}}, w.curator)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := author.SetLabel(f.ctx, f.repo, "lts", two.SHA256, w.curator); err != nil {
		t.Fatal(err)
	}
	w.lts, w.ltsFirst = two.SHA256, one.SHA256
	return w
}

func (f *fixture) descriptorRef(name, version string) (ref blob.Ref) {
	f.t.Helper()
	c, err := f.repo.Catalog(f.ctx, index.MainRef)
	if err != nil {
		f.t.Fatal(err)
	}
	_, ref, err = c.Descriptor(name, version)
	if err != nil {
		f.t.Fatal(err)
	}
	return ref
}

// memCatalog is the catalog of the files the history added, held in
// memory: what a light client builds of what it proved.
// bySubject returns the files of the history grouped by the map's
// subjects they belong to (a file may belong to several).
func (w *catalogWorld) bySubject(files []index.MemFile) map[string][]index.MemFile {
	w.t.Helper()
	m := map[string][]index.MemFile{}
	for _, f := range files {
		ss := index.SubjectsOf(f.Path)
		if len(ss) == 0 {
			w.t.Fatalf("%s has no subject", f.Path)
		}
		for _, s := range ss {
			m[s] = append(m[s], f)
		}
	}
	return m
}

// countedFiles returns a MemFiles whose Load answers from bySubject, and
// how many times each subject was loaded (read it once the loads ended).
func countedFiles(bySubject map[string][]index.MemFile) (*index.MemFiles, map[string]int) {
	var mu sync.Mutex
	loads := map[string]int{}
	return &index.MemFiles{Load: func(subject string) ([]index.MemFile, error) {
		mu.Lock()
		loads[subject]++
		mu.Unlock()
		return bySubject[subject], nil
	}}, loads
}

// memAndGit returns a catalog over mf at head, and what the catalog of
// the git repository shows of name there (what mf's must show too).
func (w *catalogWorld) memAndGit(mf *index.MemFiles, head, name string) (*index.Catalog, []index.VersionView) {
	w.t.Helper()
	mem, err := index.NewCatalog(mf, "https://example.org", head)
	if err != nil {
		w.t.Fatal(err)
	}
	git, err := w.repo.Catalog(w.ctx, head)
	if err != nil {
		w.t.Fatal(err)
	}
	want, err := git.Show(w.ctx, name, "")
	if err != nil {
		w.t.Fatal(err)
	}
	return mem, want
}

// history returns main's head and every file of its history, as a
// light client holds them.
func (f *fixture) history() (string, []index.MemFile) {
	f.t.Helper()
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		f.t.Fatal(err)
	}
	files, err := f.repo.HistoryFiles(f.ctx, head)
	if err != nil {
		f.t.Fatal(err)
	}
	return head, files
}

// The catalog judges the files a light client holds in memory exactly as
// it judges the git tree they came from: versions, records and their
// status (revoked, superseded, issuer key revoked), append times and
// order, keys, snapshots, labels and their history, internal names.
func TestMemFilesReadAsGit(t *testing.T) {
	w := newCatalogWorld(t)
	head, files := w.history()
	git, err := w.repo.Catalog(w.ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	var mf index.MemFiles
	if err := mf.Add(files...); err != nil {
		t.Fatal(err)
	}
	mem, err := index.NewCatalog(&mf, w.repo.Dir, head)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, read func(c *index.Catalog) (any, error)) {
		t.Helper()
		a, errA := read(git)
		b, errB := read(mem)
		if (errA == nil) != (errB == nil) || errA != nil && errA.Error() != errB.Error() {
			t.Fatalf("%s: git says error %v, memory says %v", what, errA, errB)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s:\ngit    %+v\nmemory %+v", what, a, b)
		}
	}
	for _, name := range []string{"acme/fastjson", "bob/tool", "acme/none"} {
		same("versions of "+name, func(c *index.Catalog) (any, error) { return c.Versions(name) })
		same("show "+name, func(c *index.Catalog) (any, error) { return c.Show(w.ctx, name, "") })
		same("show "+name+"@1.2.3", func(c *index.Catalog) (any, error) { return c.Show(w.ctx, name, "1.2.3") })
	}
	for _, s := range []keys.Signer{w.alice, w.audit, w.bob, w.curator, w.root} {
		id := keys.ID(s.Public())
		same("key "+id, func(c *index.Catalog) (any, error) { return c.Key(id) })
	}
	same("labels", func(c *index.Catalog) (any, error) { return c.Labels() })
	same("snapshots", func(c *index.Catalog) (any, error) { return c.Snapshots() })
	same("label history", func(c *index.Catalog) (any, error) { return c.LabelHistory(w.ctx, "lts") })
	same("show snapshot lts", func(c *index.Catalog) (any, error) { return c.ShowSnapshot("lts") })
	same("find snapshot", func(c *index.Catalog) (any, error) { return c.FindSnapshot(w.lts[:10]) })
	for _, name := range []string{"acme/new", "bob/tool", "carol/x"} {
		same("internal "+name, func(c *index.Catalog) (any, error) { return c.Internal(name) })
	}

	// The judgments are the ones the index makes, not merely equal.
	views, err := mem.Show(w.ctx, "acme/fastjson", "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range views {
		for _, r := range v.Records {
			got = append(got, v.Version+" "+r.Kind+" "+r.Status.String())
		}
	}
	want := []string{"1.2.3 authored active", "1.2.3 audited revoked", "1.2.3 revoke active", "1.2.3 vulnerable superseded", "1.2.3 vulnerable active", "1.2.3 supersede active",
		"1.2.4 authored active", "1.2.4 audited issuer key revoked"}
	sort.Strings(got) // the order, equal to git's above, depends on record ids inside a commit
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A MemFiles with Load fetches each subject once, on the first read that
// touches it, and refuses to list a directory that spans subjects.
func TestMemFilesLoad(t *testing.T) {
	w := newCatalogWorld(t)
	head, files := w.history()
	bySubject := w.bySubject(files)
	mf, loads := countedFiles(bySubject)
	mem, want := w.memAndGit(mf, head, "acme/fastjson")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := mem.Show(w.ctx, "acme/fastjson", "")
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("show through loads: %v\n%+v\nwant %+v", err, got, want)
			}
		}()
	}
	wg.Wait()
	bobHex := keys.IDHex(w.bob.Public())
	for _, s := range []string{"root", "package acme/fastjson", "key " + keys.IDHex(w.audit.Public()), "key " + bobHex} {
		if loads[s] != 1 {
			t.Errorf("subject %q loaded %d times, want once (loads: %v)", s, loads[s], loads)
		}
	}
	if loads["package bob/tool"] != 0 || loads["key "+keys.IDHex(w.curator.Public())] != 0 {
		t.Errorf("subjects nobody read were loaded: %v", loads)
	}
	if vs, err := mem.Versions("acme/none"); err != nil || vs != nil {
		t.Errorf("a package the map proves absent: %v, %v", vs, err)
	}
	if _, err := mem.Labels(); !errors.Is(err, index.ErrUnlisted) {
		t.Errorf("listing every label: %v, want ErrUnlisted", err)
	}
	// Internal names read every key, through the subject "keys".
	for name, want := range map[string]bool{"acme/new": true, "bob/tool": true, "carol/x": false} {
		if in, err := mem.Internal(name); err != nil || in != want {
			t.Errorf("internal %s: %v, %v; want %v", name, in, err, want)
		}
	}
	if loads["keys"] != 1 {
		t.Errorf("every key was loaded %d times, want once", loads["keys"])
	}
	if m, err := mem.Label("lts"); err != nil || m.Snapshot.SHA256 != w.lts {
		t.Errorf("label lts through its subject: %+v, %v", m, err)
	}
	// A load that fails is not an absence, even when its error says
	// fs.ErrNotExist (a file of a cache, say).
	gone := &index.MemFiles{Load: func(subject string) ([]index.MemFile, error) {
		if subject == "package acme/fastjson" {
			return nil, fmt.Errorf("cache: %w", fs.ErrNotExist)
		}
		return bySubject[subject], nil
	}}
	goneCat, err := index.NewCatalog(gone, "x", head)
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := goneCat.Versions("acme/fastjson"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed load read as no package: %v, %v", vs, err)
	}
	// A failed load is not remembered.
	fail := true
	mf2 := &index.MemFiles{Load: func(subject string) ([]index.MemFile, error) {
		if fail {
			return nil, errors.New("network down")
		}
		return bySubject[subject], nil
	}}
	if _, err := index.NewCatalog(mf2, "x", head); err == nil || !strings.Contains(err.Error(), "network down") {
		t.Fatalf("a catalog over a failing load: %v", err)
	}
	fail = false
	if _, err := index.NewCatalog(mf2, "x", head); err != nil {
		t.Fatalf("after the network came back: %v", err)
	}
}

// Subjects a caller read ahead and handed over (Loaded) are read as
// loaded: Load is never asked for them, and the catalog shows what it
// shows through Load.
func TestMemFilesLoaded(t *testing.T) {
	w := newCatalogWorld(t)
	head, files := w.history()
	bySubject := w.bySubject(files)
	mf, loads := countedFiles(bySubject)
	ahead := []string{"root", "package acme/fastjson", "key " + keys.IDHex(w.audit.Public()), "key " + keys.IDHex(w.bob.Public())}
	for _, s := range ahead {
		if err := mf.Loaded(s, bySubject[s]); err != nil {
			t.Fatal(err)
		}
		if err := mf.Loaded(s, nil); err != nil {
			t.Fatalf("a subject handed over twice: %v", err)
		}
	}
	mem, want := w.memAndGit(mf, head, "acme/fastjson")
	if got, err := mem.Show(w.ctx, "acme/fastjson", ""); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("show through subjects handed over: %v\n%+v\nwant %+v", err, got, want)
	}
	for _, s := range ahead {
		if loads[s] != 0 {
			t.Errorf("subject %q, handed over, was loaded %d times (loads: %v)", s, loads[s], loads)
		}
	}
	// Files that break the in-memory tree are refused, and the subject
	// left to Load.
	bad := &index.MemFiles{Load: mf.Load}
	if err := bad.Loaded("package acme/fastjson", []index.MemFile{{Path: "root/00000001.json"}, {Path: "root/00000001.json/x"}}); err == nil {
		t.Fatal("a file under a file was handed over")
	}
	f := bySubject["package acme/fastjson"][0]
	if data, err := bad.Read(f.Path); err != nil || !bytes.Equal(data, f.Data) {
		t.Fatalf("reading %s after a refused hand-over: %q, %v", f.Path, data, err)
	}
	if loads["package acme/fastjson"] != 1 {
		t.Errorf("a subject whose hand-over was refused was loaded %d times, want once", loads["package acme/fastjson"])
	}
}

func TestMemFilesAdd(t *testing.T) {
	var mf index.MemFiles
	if err := mf.Add(index.MemFile{Path: "root/00000001.json", Data: []byte("a"), Index: 0}); err != nil {
		t.Fatal(err)
	}
	if err := mf.Add(index.MemFile{Path: "root/00000001.json", Data: []byte("a"), Index: 0}); err != nil {
		t.Fatalf("the same file again: %v", err)
	}
	if err := mf.Add(index.MemFile{Path: "root/00000001.json", Data: []byte("b"), Index: 0}); err == nil {
		t.Fatal("a path with other bytes was accepted")
	}
	if err := mf.Add(index.MemFile{Path: "root/00000001.json/x", Data: []byte("b"), Index: 3}); err == nil {
		t.Fatal("a file under a file was accepted")
	}
	for _, p := range []string{"", "/root/x", "root/", "root//x"} {
		if err := mf.Add(index.MemFile{Path: p}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	if _, err := mf.List("keys"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("listing a missing directory: %v", err)
	}
	if _, err := mf.Read("root/00000002.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reading a missing file: %v", err)
	}
	if e, err := mf.List(""); err != nil || len(e) != 1 || e[0] != (index.DirEntry{Name: "root", Dir: true}) {
		t.Errorf("the top: %+v, %v", e, err)
	}
}

func TestSubjectOf(t *testing.T) {
	key := strings.Repeat("ab", 32)
	snap := strings.Repeat("0f", 32)
	pkg := layout.PackageDir("acme/fastjson")
	type subjectCase struct{ path, subject string }
	var cases []subjectCase
	for _, c := range []subjectCase{
		{"root", "root"},
		{"root/00000001.json", "root"},
		{"keys/ab/" + key, "key " + key},
		{"keys/ab/" + key + "/" + snap + ".json", "key " + key},
		{pkg, "package acme/fastjson"},
		{pkg + "/1.2.3", "package acme/fastjson"},
		{pkg + "/1.2.3/descriptor.json", "package acme/fastjson"},
		{pkg + "/1.2.3/" + snap + ".json", "package acme/fastjson"},
		{pkg + "/1.2.3/x/1.0.0/y", "package acme/fastjson"},
		{pkg + "/1.2.3.json", ""},
		{pkg + "/1.2.4/descriptor.json", "package acme/fastjson"},
		{"upstreams/pub", "upstream pub"},
		{"upstreams/pub/" + snap + ".json", "upstream pub"},
		{"upstreams/pub/" + pkg + "/1.0.0/" + snap + ".json", "upstream pub package acme/fastjson"},
		{"upstreams/pub/" + pkg, "upstream pub package acme/fastjson"},
		{"snapshots/0f/" + snap, "snapshot " + snap},
		{"snapshots/0f/" + snap + "/snapshot.json", "snapshot " + snap},
		{"labels/lts", "label lts"},
		{"labels/lts/" + snap + ".json", "label lts"},
		// Go module paths: every element between the shard and the version.
		{layout.PackageDir("example.com/greet/v2"), "package example.com/greet/v2"},
		{layout.VersionDir("example.com/greet/v2", "2.0.0") + "/descriptor.json", "package example.com/greet/v2"},
		{layout.RecordPath(layout.VersionDir("github.com/BurntSushi/toml", "1.0.0+incompatible"), snap), ""}, // not a version: +incompatible below v2
		{layout.RecordPath(layout.VersionDir("github.com/BurntSushi/toml", "2.0.0+incompatible"), snap), "package github.com/BurntSushi/toml"},
		{"upstreams/pub/" + layout.VersionDir("example.com/a/b/c", "1.0.0") + "/" + snap + ".json", "upstream pub package example.com/a/b/c"},
		{layout.ShardDir("example.com/greet/v2") + "/example.com/greet", ""}, // an element of the name, in another name's shard
		// Directories that span subjects, and paths outside the layout.
		{"keys", "keys"}, {"keys/ab", "keys"}, {"upstreams", "upstreams"},
		{"", ""}, {"keys/cd/" + key, ""}, {"keys/abc", ""}, {"keys/AB", ""}, {"packages", ""}, {"packages/8/9", ""},
		{strings.Replace(pkg, "packages/", "packages/f/", 1), ""}, {"packages/0/0/0/0/acme/fastjson", ""},
		{"upstreams/pub/packages", ""}, {"upstreams/Pub", ""}, {"snapshots/0f", ""}, {"labels", ""}, {"other/x", ""},
	} {
		got, ok := index.SubjectOf(c.path)
		if got != c.subject || ok != (c.subject != "") {
			t.Errorf("SubjectOf(%q) = %q, %v; want %q", c.path, got, ok, c.subject)
		}
		cases = append(cases, c)
	}
	// The answer does not depend on the path asked about before, for
	// SubjectOf, nor for the memo a replay's worker keeps (the last
	// version directory it saw).
	for _, before := range cases {
		memo := index.SubjectsMemo()
		for _, c := range cases {
			index.SubjectOf(before.path)
			if got, ok := index.SubjectOf(c.path); got != c.subject || ok != (c.subject != "") {
				t.Errorf("SubjectOf(%q) after SubjectOf(%q) = %q, %v; want %q", c.path, before.path, got, ok, c.subject)
			}
			memo(before.path)
			if got, want := memo(c.path), index.SubjectsOf(c.path); !slices.Equal(got, want) {
				t.Errorf("a memo asked %q after %q gives %q, SubjectsOf %q", c.path, before.path, got, want)
			}
		}
	}
	// The four shard digits are the name's: each other digit, or a
	// directory of two digits, is outside the layout.
	for i := 0; i < 4; i++ {
		parts := strings.Split(pkg, "/")
		for _, d := range []string{"0", "7", "f", "F", "00", parts[1+i] + parts[1+i]} {
			if d == parts[1+i] {
				continue
			}
			parts[1+i] = d
			if got, ok := index.SubjectOf(strings.Join(parts, "/") + "/1.2.3/descriptor.json"); ok {
				t.Errorf("SubjectOf(%s) = %q, but shard digit %d is not the name's", strings.Join(parts, "/"), got, i+1)
			}
			parts = strings.Split(pkg, "/")
		}
	}
	// A declaration is also in "upstreams", which lists every upstream;
	// an upstream's package records are not.
	if got := index.SubjectsOf("upstreams/pub/" + snap + ".json"); strings.Join(got, ",") != "upstream pub,upstreams" {
		t.Errorf("SubjectsOf(a declaration) = %q", got)
	}
	if got := index.SubjectsOf("upstreams/pub/" + pkg + "/1.0.0/" + snap + ".json"); strings.Join(got, ",") != "upstream pub package acme/fastjson" {
		t.Errorf("SubjectsOf(an upstream's package record) = %q", got)
	}
}

// Every file path of the layout has a subject, and its directories up to
// the subject's have the same one.
func FuzzSubjectOf(f *testing.F) {
	f.Add("packages/8/9/e/6/acme/fastjson/1.2.3/descriptor.json")
	f.Add("labels/lts/" + strings.Repeat("ab", 32) + ".json")
	f.Add(layout.VersionDir("example.com/greet/v2", "2.0.0+incompatible") + "/descriptor.json")
	f.Fuzz(func(t *testing.T, p string) {
		loc, err := layout.ParsePath(p)
		s, ok := index.SubjectOf(p)
		if err != nil {
			return
		}
		if !ok {
			t.Fatalf("%s (%v) has no subject", p, loc.Place)
		}
		if ds, ok := index.SubjectOf(loc.Dir); !ok || ds != s {
			t.Fatalf("%s has subject %q, its directory %s has %q", p, s, loc.Dir, ds)
		}
		if loc.Place == layout.PlaceDescriptor || loc.Place == layout.PlaceRecord {
			if s != "package "+loc.Name {
				t.Fatalf("%s is a file of %s, in subject %q", p, loc.Name, s)
			}
		}
	})
}

// A directory of many entries lists them all, in git's order, and still
// refuses a name that is a file and a directory, however many there are.
func TestMemFilesManyEntries(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 40} {
		var mf index.MemFiles
		var want []index.DirEntry
		for i := range n {
			name := fmt.Sprintf("f%02d", i)
			path := "d/" + name
			if i%3 == 0 {
				path += "/x"
			}
			if err := mf.Add(index.MemFile{Path: path, Data: []byte(name), Index: int64(i)}); err != nil {
				t.Fatal(err)
			}
			// Added again: the same entry, not a second one.
			if err := mf.Add(index.MemFile{Path: path, Data: []byte(name), Index: int64(i)}); err != nil {
				t.Fatal(err)
			}
			want = append(want, index.DirEntry{Name: name, Dir: i%3 == 0})
		}
		got, err := mf.List("d")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%d entries: List = %v, %v; want %v", n, got, err, want)
		}
		if err := mf.Add(index.MemFile{Path: "d/f00", Index: 100}); err == nil {
			t.Fatalf("%d entries: d/f00 added as a file beside the directory d/f00", n)
		}
		if n > 1 {
			if err := mf.Add(index.MemFile{Path: "d/f01/y", Index: 101}); err == nil {
				t.Fatalf("%d entries: d/f01/y added under the file d/f01", n)
			}
		}
	}
}
