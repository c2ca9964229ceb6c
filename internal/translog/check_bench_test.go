package translog

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// checkWorld is a log of a million testEntry leaves in memory, with its
// map: subject "package acme/pN" holds leaves 7N … 7N+6 (testEntry's
// paths), as a light client reads them.
type checkWorld struct {
	tree    memTree
	size    int64
	root    tlog.Hash
	m       *Map
	mapRoot tlog.Hash
}

var benchCheckWorld = sync.OnceValue(func() *checkWorld {
	const size = 1_000_000
	w := &checkWorld{size: size, m: NewMap()}
	for i := int64(0); i < size; i++ {
		text := testEntry(i).Text()
		w.tree.add(i, text)
		w.m.Add(fmt.Sprintf("package acme/p%d", i/7), i, LeafHash(text))
	}
	var err error
	if w.root, err = tlog.TreeHash(size, w.tree); err != nil {
		panic(err)
	}
	w.mapRoot = w.m.Root()
	return w
})

// checkInput is what a light client received for one record: its
// package's files (entries and bytes), the map proof in JSON, and the
// record's inclusion path.
type checkInput struct {
	subject  string
	indexes  []int64
	entries  [][]byte
	contents [][]byte
	mapProof []byte
	record   int
	path     tlog.RecordProof
}

func (w *checkWorld) input(b *testing.B, pkg int64) *checkInput {
	subject := fmt.Sprintf("package acme/p%d", pkg)
	_, leaves, ok := w.m.Get(subject)
	if !ok {
		b.Fatalf("no subject %s", subject)
	}
	in := &checkInput{subject: subject, indexes: leaves, record: len(leaves) / 2}
	for _, i := range leaves {
		in.entries = append(in.entries, testEntry(i).Text())
		in.contents = append(in.contents, []byte(fmt.Sprint("file ", i)))
	}
	var err error
	if in.mapProof, err = json.Marshal(w.m.Prove(subject)); err != nil {
		b.Fatal(err)
	}
	if in.path, err = tlog.ProveRecord(w.size, leaves[in.record], w.tree); err != nil {
		b.Fatal(err)
	}
	return in
}

// check is a light client's check of one record and of its package's
// completeness: each entry parsed and its file's bytes checked against
// it, the leaf hashes chained into the value the map proof must prove,
// and the record's inclusion path.
func (in *checkInput) check(w *checkWorld) error {
	var v Value
	for k, text := range in.entries {
		e, err := ParseEntry(text)
		if err != nil {
			return err
		}
		if int64(len(in.contents[k])) != e.Size || sha256.Sum256(in.contents[k]) != e.SHA256 {
			return fmt.Errorf("leaf %d: the file does not match its entry", in.indexes[k])
		}
		leaf := LeafHash(text)
		v = v.Extend(in.indexes[k], leaf)
		if k == in.record {
			if err := tlog.CheckRecord(in.path, w.size, w.root, in.indexes[k], leaf); err != nil {
				return err
			}
		}
	}
	var p MapProof
	if err := json.Unmarshal(in.mapProof, &p); err != nil {
		return err
	}
	return VerifyMap(w.mapRoot, in.subject, &v, p)
}

// BenchmarkRecordCheck is one record's inclusion check and its package's
// completeness check (7 files) at a million leaves, the light client's CPU
// per record; Floor is raw SHA-256 of the same bytes, in the same run.
func BenchmarkRecordCheck(b *testing.B) {
	w := benchCheckWorld()
	var ins []*checkInput
	for p := int64(0); p < 64; p++ {
		in := w.input(b, p*2221%(w.size/7))
		if err := in.check(w); err != nil {
			b.Fatal(err)
		}
		ins = append(ins, in)
	}
	bad := *ins[0]
	bad.contents = append([][]byte{[]byte("changed")}, bad.contents[1:]...)
	if bad.check(w) == nil {
		b.Fatal("a changed file passed the check")
	}
	b.Run("Check", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := ins[i%len(ins)].check(w); err != nil {
				b.Fatal(err)
			}
		}
		in := ins[0]
		b.ReportMetric(float64(45*len(in.path)+len(in.mapProof)), "proof-bytes")
	})
	b.Run("Floor", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			in := ins[i%len(ins)]
			for k := range in.entries {
				sha256.Sum256(in.contents[k])
				sha256.Sum256(in.entries[k])
			}
		}
	})
}
