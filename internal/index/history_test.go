package index_test

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
)

// The history reads by meaning: what was published, added, or can be
// replayed between two heads, and a version's files at a head.
func TestHistoryReads(t *testing.T) {
	f := newFixture(t)
	before, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	p1 := f.publish(f.alice, "acme/one", "1.0.0")
	p2 := f.publish(f.alice, "acme/two", "2.0.0")
	head := p2.Commit

	pub, err := f.repo.PublishedBetween(f.ctx, before, head)
	if err != nil {
		t.Fatal(err)
	}
	want := []index.PublishedVersion{{Name: "acme/one", Version: "1.0.0", Commit: p1.Commit}, {Name: "acme/two", Version: "2.0.0", Commit: p2.Commit}}
	if !slices.Equal(pub, want) {
		t.Fatalf("PublishedBetween = %+v, want %+v", pub, want)
	}
	if pub, err := f.repo.PublishedBetween(f.ctx, p1.Commit, head); err != nil || len(pub) != 1 || pub[0].Name != "acme/two" {
		t.Fatalf("PublishedBetween(p1, head) = %+v, %v; want acme/two alone", pub, err)
	}
	if pub, err := f.repo.PublishedBetween(f.ctx, "", before); err != nil || len(pub) != 0 {
		t.Fatalf("grants alone published %+v, %v", pub, err)
	}

	var commits []string
	var paths []string
	err = f.repo.AddedBetween(f.ctx, before, head, func(commit string, added []index.Entry) error {
		commits = append(commits, commit)
		for _, a := range added {
			if len(a.Data) == 0 {
				t.Errorf("%s added with no content", a.Path())
			}
			paths = append(paths, a.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(commits, []string{p1.Commit, p2.Commit}) {
		t.Fatalf("AddedBetween commits = %v, want [%s %s], oldest first", commits, p1.Commit, p2.Commit)
	}
	wantPaths := append(slices.Clone(p1.Paths), p2.Paths...)
	slices.Sort(wantPaths)
	slices.Sort(paths)
	if !slices.Equal(paths, wantPaths) {
		t.Fatalf("AddedBetween paths = %v, want those of the two publishes %v %v", paths, p1.Paths, p2.Paths)
	}
	stop := errors.New("stop")
	if err := f.repo.AddedBetween(f.ctx, before, head, func(string, []index.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("AddedBetween kept fn's error as %v", err)
	}

	replays, err := f.repo.Replays(f.ctx, before, head)
	if err != nil {
		t.Fatal(err)
	}
	if len(replays) != 2 || replays[0].ID != p1.Commit || replays[1].ID != p2.Commit {
		t.Fatalf("Replays = %+v", replays)
	}
	if !strings.Contains(replays[0].Ident, "alice") || replays[0].Header == "" || len(replays[0].Files) != len(p1.Paths) {
		t.Fatalf("replay of the first publish = %+v", replays[0])
	}

	files, err := f.repo.VersionEntries(f.ctx, head, "acme/one", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	dir := layout.VersionDir("acme/one", "1.0.0")
	var gotDesc bool
	for _, file := range files {
		if !strings.HasPrefix(file.Path(), dir+"/") || file.Name != "acme/one" || file.Version != "1.0.0" || file.About() != "acme/one@1.0.0" {
			t.Errorf("VersionEntries gave %s (%+v), outside %s", file.Path(), file, dir)
		}
		data, ok, err := f.repo.EntryAt(f.ctx, head, file)
		if err != nil || !ok || string(data) != string(file.Data) {
			t.Errorf("EntryAt(%s) = %d bytes, %v, %v; want VersionEntries' content", file.Path(), len(data), ok, err)
		}
		if file.Descriptor != (file.Path() == dir+"/"+layout.DescriptorFile) || file.Descriptor == (file.ID != "") {
			t.Errorf("entry %s: Descriptor %v, ID %q", file.Path(), file.Descriptor, file.ID)
		}
		gotDesc = gotDesc || file.Descriptor
	}
	if !gotDesc {
		t.Fatalf("VersionEntries lacks the descriptor: %v", files)
	}
	if _, ok, err := f.repo.EntryAt(f.ctx, before, index.DescriptorEntry("acme/one", "1.0.0")); ok || err != nil {
		t.Fatalf("EntryAt before the publish: ok %v, %v; want absent, no error", ok, err)
	}
	if _, ok, err := f.repo.FileAt(f.ctx, head, dir); ok || err != nil {
		t.Fatalf("FileAt of a directory: ok %v, %v; want not a file", ok, err)
	}
}

// FindPackage finds the repository's own package by its tree, asks for
// the upstreams only when main lacks the name, and says fs.ErrNotExist
// for a name found nowhere; PackageVersions reads a version's
// descriptor and records.
func TestFindPackage(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/one", "1.0.0")
	asked := 0
	none := func() ([]*index.Upstream, error) { asked++; return nil, nil }
	p, err := f.repo.FindPackage(f.ctx, "acme/one", none)
	if err != nil || p.Tree == "" || p.Upstream != nil || p.Key() != p.Tree {
		t.Fatalf("FindPackage(acme/one) = %+v, %v", p, err)
	}
	if asked != 0 {
		t.Fatal("the upstreams were asked for a package main holds")
	}
	if _, err := f.repo.FindPackage(f.ctx, "acme/none", none); !errors.Is(err, fs.ErrNotExist) || asked != 1 {
		t.Fatalf("FindPackage(acme/none) = %v after %d asks; want fs.ErrNotExist after one", err, asked)
	}
	var versions []index.PackageVersion
	if err := f.repo.PackageVersions(f.ctx, p, func(v index.PackageVersion) error { versions = append(versions, v); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(versions) != 1 || versions[0].Version != "1.0.0" || len(versions[0].Descriptor) == 0 || len(versions[0].Records) != 1 {
		t.Fatalf("PackageVersions = %+v", versions)
	}
	before := p.Key()
	f.publish(f.alice, "acme/one", "1.1.0")
	if p, err = f.repo.FindPackage(f.ctx, "acme/one", none); err != nil || p.Key() == before {
		t.Fatalf("after a new version the key is %q (was %q), %v: want it changed", p.Key(), before, err)
	}
}

// A package's key names where it comes from as well as its trees: the
// same trees followed under another upstream's name, or another
// introduction, are another document (its source is another).
func TestPackageTreeKeyNamesTheUpstream(t *testing.T) {
	up := func(name, intro string) *index.Upstream { return &index.Upstream{Name: name, Introduction: intro} }
	intro := strings.Repeat("a", 64)
	keys := map[string]index.PackageTree{}
	for _, p := range []index.PackageTree{
		{Tree: "t1"},
		{Tree: "t1", Local: "l1"},
		{Tree: "t1", Upstream: up("public", intro)},
		{Tree: "t1", Upstream: up("mirror", intro)},
		{Tree: "t1", Upstream: up("public", strings.Repeat("b", 64))},
		{Tree: "t1", Local: "l1", Upstream: up("public", intro)},
	} {
		k := p.Key()
		if other, ok := keys[k]; ok {
			t.Fatalf("%+v and %+v have one key, %q", p, other, k)
		}
		keys[k] = p
	}
}

// FindPackage keeps the package tree's bytes it read, and
// PackageVersions uses them rather than asking git again: a package
// tree whose id git does not have still lists its versions from them,
// and one without its bytes is read from git.
func TestPackageVersionsFromTheTreeFound(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/one", "1.0.0")
	f.publish(f.alice, "acme/one", "1.1.0")
	none := func() ([]*index.Upstream, error) { return nil, nil }
	p, err := f.repo.FindPackage(f.ctx, "acme/one", none)
	if err != nil || !p.HoldsTree() {
		t.Fatalf("FindPackage(acme/one) = %+v (holds its tree: %v), %v", p, p.HoldsTree(), err)
	}
	versions := func(p index.PackageTree) ([]string, error) {
		var vs []string
		err := f.repo.PackageVersions(f.ctx, p, func(v index.PackageVersion) error { vs = append(vs, v.Version); return nil })
		return vs, err
	}
	absent := strings.Repeat("0", len(p.Tree))
	if vs, err := versions(p.WithTreeID(absent)); err != nil || !slices.Equal(vs, []string{"1.0.0", "1.1.0"}) {
		t.Fatalf("versions from the tree found: %v, %v", vs, err)
	}
	if vs, err := versions(index.PackageTree{Tree: p.Tree}); err != nil || !slices.Equal(vs, []string{"1.0.0", "1.1.0"}) {
		t.Fatalf("versions read from git: %v, %v", vs, err)
	}
	if _, err := versions(index.PackageTree{Tree: absent}); err == nil {
		t.Fatal("a tree git does not have, without its bytes, listed versions")
	}
}
