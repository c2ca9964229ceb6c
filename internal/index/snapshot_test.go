package index_test

import (
	"errors"
	"io/fs"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/snapshot"
)

// snapFile is a snapshot of entries as an index file, and its reference.
func snapFile(t *testing.T, name string, entries ...snapshot.Entry) (*index.File, blob.Ref) {
	t.Helper()
	s := &snapshot.Snapshot{Schema: snapshot.Schema, Name: name, Packages: entries}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := blob.DigestBytes(data)
	return &index.File{Path: layout.SnapshotDir(r.SHA256) + "/" + layout.SnapshotFile, Data: data}, r
}

// snapRecord is the snapshot record of ref, signed by s, as an index file.
func (f *fixture) snapRecord(ref blob.Ref, name string, s keys.Signer) *index.File {
	rc := f.sign(record.Snapshot, []record.Subject{{Name: name, Digest: map[string]string{"sha256": ref.SHA256}}},
		record.SnapshotPredicate{Snapshot: ref, Name: name, Issued: time.Now()}, s)
	return at(layout.SnapshotDir(ref.SHA256), rc)
}

// labelMove is a move of label to ref after previous, signed by s.
func (f *fixture) labelMove(label string, ref blob.Ref, previous string, s keys.Signer) *index.File {
	rc := f.sign(record.Label, []record.Subject{{Name: label, Digest: map[string]string{"sha256": ref.SHA256}}},
		record.LabelPredicate{Label: label, Snapshot: ref, Previous: previous, Issued: time.Now()}, s)
	return at(layout.LabelDir(label), rc)
}

func TestSnapshotAndLabelRules(t *testing.T) {
	f := newFixture(t)
	curator, nightly := newSigner(), newSigner()
	f.grant(curator, "curators", "snapshot", "label:lts-*")
	f.grant(nightly, "release-bot", "label:nightly")
	p1 := f.publish(f.alice, "acme/fastjson", "1.2.3")
	p2 := f.publish(f.alice, "acme/log", "2.0.0")
	fj := snapshot.Entry{Name: "acme/fastjson", Version: "1.2.3", Descriptor: p1.Ref}
	lg := snapshot.Entry{Name: "acme/log", Version: "2.0.0", Descriptor: p2.Ref}

	added, lts, err := author.CreateSnapshot(f.ctx, f.repo, &snapshot.Snapshot{Schema: snapshot.Schema, Name: "lts-1.0", Packages: []snapshot.Entry{lg, fj}}, curator)
	if err != nil {
		t.Fatal(err)
	}
	if len(added.Records) != 1 {
		t.Fatalf("snapshot added %+v", added)
	}
	if ok, _ := f.repo.Blobs.Stat(f.ctx, lts); !ok {
		t.Fatal("the snapshot is not in the blob store")
	}
	first, _, err := author.SetLabel(f.ctx, f.repo, "lts-1.0", lts.SHA256[:10], curator)
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	mixed, mixedRef := snapFile(t, "mixed", snapshot.Entry{Name: "acme/fastjson", Version: "1.2.3", Descriptor: p2.Ref})
	ghost, ghostRef := snapFile(t, "ghost", snapshot.Entry{Name: "acme/fastjson", Version: "9.9.9", Descriptor: p1.Ref})
	small, smallRef := snapFile(t, "small", lg)
	misplaced := *small
	misplaced.Path = layout.SnapshotDir(lts.SHA256) + "/" + layout.SnapshotFile
	otherSize := blob.Ref{SHA256: lts.SHA256, Size: lts.Size + 1}
	for _, tc := range []struct {
		name  string
		files []*index.File
		rule  string
		want  string
	}{
		{"a snapshot and its curator's record", []*index.File{small, f.snapRecord(smallRef, "small", curator)}, "", ""},
		{"an entry with another version's descriptor (mix-and-match)", []*index.File{mixed, f.snapRecord(mixedRef, "mixed", curator)}, index.RuleSnapshot, "names descriptor"},
		{"an entry that is not published", []*index.File{ghost, f.snapRecord(ghostRef, "ghost", curator)}, index.RuleSnapshot, "not published"},
		{"a snapshot without its record", []*index.File{small}, index.RuleSnapshot, "without its curator's snapshot record"},
		{"a snapshot by a publisher", []*index.File{small, f.snapRecord(smallRef, "small", f.alice)}, index.RuleScope, "need snapshot"},
		{"a snapshot at another digest's path", []*index.File{&misplaced, f.snapRecord(smallRef, "small", curator)}, index.RuleWellFormed, "not the"},
		{"a label move to the next snapshot", []*index.File{small, f.snapRecord(smallRef, "small", curator), f.labelMove("lts-1.0", smallRef, first.Records[0], curator)}, "", ""},
		{"a label move that forgets the move before", []*index.File{f.labelMove("lts-1.0", lts, "", curator)}, index.RuleLabel, "latest move is"},
		{"a label move to a snapshot not in the index", []*index.File{f.labelMove("lts-2.0", smallRef, "", curator)}, index.RuleLabel, "create it first"},
		{"a label move with the wrong size", []*index.File{f.labelMove("lts-2.0", otherSize, "", curator)}, index.RuleLabel, "not in this index"},
		{"a label outside the key's pattern", []*index.File{f.labelMove("lts-2.0", lts, "", nightly)}, index.RuleScope, "need label:lts-2.0"},
		{"a label within the key's pattern", []*index.File{f.labelMove("nightly", lts, "", nightly)}, "", ""},
		{"a first move that claims a previous", []*index.File{f.labelMove("nightly", lts, first.Records[0], nightly)}, index.RuleLabel, "never been set"},
		{"a label move by a publisher", []*index.File{f.labelMove("lts-2.0", lts, "", f.alice)}, index.RuleScope, "need label:lts-2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOutcome(t, f.try(1, now, tc.files...), tc.rule, tc.want)
		})
	}

	// Moves through the operations: history is one chain, oldest first.
	_, lts11, err := author.CreateSnapshot(f.ctx, f.repo, &snapshot.Snapshot{Schema: snapshot.Schema, Name: "lts-1.1", Packages: []snapshot.Entry{lg}}, curator)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := author.SetLabel(f.ctx, f.repo, "lts-1.0", smallRef.SHA256, curator); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("moving to a snapshot the index lacks: %v", err)
	}
	_, second, err := author.SetLabel(f.ctx, f.repo, "lts-1.0", lts11.SHA256, curator)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := f.repo.LabelHistory(f.ctx, "lts-1.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Snapshot != lts || hist[1].Snapshot != second || second != lts11 || hist[1].Previous != hist[0].Record ||
		hist[0].Holder != "curators" || hist[1].Name != "lts-1.1" {
		t.Fatalf("history = %+v", hist)
	}
	c, _ := f.repo.Catalog(f.ctx, index.MainRef)
	cur, err := c.Label("lts-1.0")
	if err != nil || cur.Snapshot != second {
		t.Fatalf("label now = %+v, %v; want %v", cur, err, second)
	}
	if _, err := c.Label("lts-9"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an unset label: %v", err)
	}
	if err := f.verifyFull(); err != nil {
		t.Fatal(err)
	}
}
