package light

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/translog"
)

// A map whose value for a subject holds a file of another subject (a
// map the log's key signed, which no honest map is): every leaf proves,
// but the file is not the subject's, and the document is refused.
func TestCheckSubjectFileOfAnotherSubject(t *testing.T) {
	w := newMapWorld(t)
	const subject = "package acme/a"
	m := translog.NewMap()
	for _, f := range w.files {
		e := mustEntry(f.Entry)
		s, _ := index.SubjectOf(e.Path)
		m.Add(s, f.Index, translog.LeafHash([]byte(f.Entry)))
		if s == "package acme/b" {
			m.Add(subject, f.Index, translog.LeafHash([]byte(f.Entry))) // acme/b's descriptor, under acme/a too
		}
	}
	cp := checkpoint.Checkpoint{Size: w.cp.Size, Map: m.Root()}
	d := &wireSubject{Subject: subject, Size: cp.Size, Proof: m.Prove(subject)}
	_, leaves, _ := m.Get(subject)
	for _, i := range leaves {
		d.Files = append(d.Files, w.files[i])
	}
	d.Count = uint64(len(d.Files))
	if len(d.Files) != 4 {
		t.Fatalf("the forged value holds %d files, want 4", len(d.Files))
	}
	_, err := checkSubject(cp, subject, d, func(err error) error { return err })
	if err == nil || !strings.Contains(err.Error(), "a file of subjects") {
		t.Fatalf("a file of package acme/b served as package acme/a's, proved by a forged map: %v, want a refusal", err)
	}
}

// A checkpoint's last leaf that is a map leaf of the checkpoint's map
// root but of another commit than its cairn-head is refused: the head
// the checkpoint names is not the one its tree binds.
func TestCheckMapLeafOtherHead(t *testing.T) {
	var hashes []tlog.Hash
	hr := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = hashes[x]
		}
		return out, nil
	})
	mapRoot := tlog.Hash{1, 2, 3}
	head, other := strings.Repeat("a", 40), strings.Repeat("b", 40)
	leaves := [][]byte{
		translog.NewEntry(other, 1000, "root/00000001.json", []byte("root")).Text(),
		translog.MapEntry{Commit: other, Time: 1000, Root: mapRoot}.Text(),
	}
	for i, text := range leaves {
		hs, err := tlog.StoredHashes(int64(i), text, hr)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	size := int64(len(leaves))
	root, err := tlog.TreeHash(size, hr)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := tlog.ProveRecord(size, size-1, hr)
	if err != nil {
		t.Fatal(err)
	}
	cp := checkpoint.Checkpoint{Size: size, Root: root, Map: mapRoot, Head: other}
	if _, err := CheckMapLeaf(cp, leaves[size-1], proof); err != nil {
		t.Fatalf("the honest checkpoint: %v", err)
	}
	cp.Head = head
	_, err = CheckMapLeaf(cp, leaves[size-1], proof)
	var mle *MapLeafError
	if !errors.As(err, &mle) || !strings.Contains(err.Error(), "commit "+other) {
		t.Fatalf("a map leaf of commit %.8s under a checkpoint of head %.8s: %v, want a *MapLeafError", other, head, err)
	}
}
