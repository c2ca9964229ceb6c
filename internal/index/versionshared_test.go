package index_test

import (
	"errors"
	"io/fs"
	"reflect"
	"testing"

	"cairn.dev/cairn/internal/index"
)

// VersionShared reads what Version reads; from a light catalog it is the
// one kept read, not a copy, that no reader of Version can change, and
// an append to its views copies them.
func TestVersionShared(t *testing.T) {
	w := newCatalogWorld(t)
	head, files := w.history()
	var mf index.MemFiles
	if err := mf.Add(files...); err != nil {
		t.Fatal(err)
	}
	index.ParseFiles(files)
	mem, err := index.NewCatalog(&mf, w.repo.Dir, head)
	if err != nil {
		t.Fatal(err)
	}
	git, err := w.repo.Catalog(w.ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*index.Catalog{git, mem} {
		d, ref, recs, err := c.Version("acme/fastjson", "1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		sd, sref, srecs, err := c.VersionShared("acme/fastjson", "1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, sd) || ref != sref || !reflect.DeepEqual(recs, srecs) || len(recs) < 2 {
			t.Fatalf("VersionShared reads other than Version:\n%+v %v %+v\n%+v %v %+v", d, ref, recs, sd, sref, srecs)
		}
		if _, _, _, err := c.VersionShared("acme/fastjson", "9.9.9"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("an unpublished version: %v, want fs.ErrNotExist", err)
		}
	}

	d1, _, recs1, _ := mem.VersionShared("acme/fastjson", "1.2.3")
	d2, _, recs2, _ := mem.VersionShared("acme/fastjson", "1.2.3")
	if d1 != d2 || &recs1[0] != &recs2[0] || recs1[0].Record != recs2[0].Record {
		t.Fatal("a light catalog's VersionShared copied its kept read")
	}
	if cap(recs1) != len(recs1) {
		t.Fatalf("VersionShared's views have room for %d more: an append would write into every reader's", cap(recs1)-len(recs1))
	}
	want, _, wantRecs, _ := mem.Version("acme/fastjson", "1.2.3")
	wantD, wantRecs := *want, append([]index.RecordView(nil), wantRecs...)

	// What a reader of Version changes, and an append to the shared
	// views, change nothing another reader reads.
	d, _, recs, _ := mem.Version("acme/fastjson", "1.2.3")
	d.Name, d.Artifacts[0].File = "changed", "changed"
	recs[0].Holder, recs[0].Record.Signatures[0].KeyID = "changed", "changed"
	recs[0].Artifacts = append(recs[0].Artifacts, "changed")
	_ = append(recs1, index.RecordView{ID: "appended"})
	sd, _, srecs, _ := mem.VersionShared("acme/fastjson", "1.2.3")
	if !reflect.DeepEqual(*sd, wantD) || len(srecs) != len(wantRecs) || srecs[0].Holder != wantRecs[0].Holder ||
		srecs[0].Record.Signatures[0].KeyID != wantRecs[0].Record.Signatures[0].KeyID || len(srecs[0].Artifacts) != len(wantRecs[0].Artifacts) {
		t.Fatal("a change to Version's copy reached VersionShared's read")
	}
	// And a full replica's catalog reads afresh each time.
	g1, _, _, _ := git.VersionShared("acme/fastjson", "1.2.3")
	g2, _, _, _ := git.VersionShared("acme/fastjson", "1.2.3")
	if g1 == g2 {
		t.Fatal("a full replica's catalog shared a read")
	}
}
