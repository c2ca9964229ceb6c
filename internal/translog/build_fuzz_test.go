package translog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// fuzzSubjects are the subjects FuzzBuilderMatchesMap draws from: the
// empty subject, keys that share their first 16 and 20 bits (long runs
// with one empty side, and inner nodes inserted above others deep in
// the tree), and ordinary ones.
var fuzzSubjects = func() []string {
	out := []string{"", "root", "anchor"}
	out = append(out, prefixed(20, 2)...)
	out = append(out, prefixed(16, 3)...)
	out = append(out, prefixed(8, 3)...)
	for _, s := range []string{"a", "b", "package ns/p1", "package ns/p2", "key SHA256:x", "keys"} {
		out = append(out, s)
	}
	return out
}()

// FuzzBuilderMatchesMap drives a builder and a Map with the same Adds,
// chosen by the input: which subject (one of fuzzSubjects), whether the
// next file is at a new leaf index or another subject of the same file,
// and when the root is asked for (after any Add, so that a path left
// clean by one Root and dirtied by the next Add is compared). The roots
// must be the same at every Root, and the snapshots the same bytes,
// read back a few files at a time.
func FuzzBuilderMatchesMap(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{3, 131, 4, 132, 5, 133, 3, 64, 4, 64, 0, 192, 0, 192})
	f.Add(bytes.Repeat([]byte{7, 200}, 40))
	// Two keys that share 20 bits under a root, hashed (clean); then a
	// key that leaves their path earlier: a node is put above the clean
	// one, whose hash must be taken again at its new depth.
	f.Add([]byte{3, 64 | 4, 64 | 128 | 11, 64 | 128 | 8, 64 | 128 | 9, 64 | 128 | 10, 64 | 128 | 5})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 4000 {
			return
		}
		defer func(n uint64) { passFiles = n }(passFiles)
		passFiles = 3
		b, m := newBuilder(t.TempDir()), NewMap()
		defer b.close()
		index := int64(0)
		var at []string // the subjects of the file at index
		for k, op := range ops {
			s := fuzzSubjects[int(op&63)%len(fuzzSubjects)]
			if op&64 != 0 || len(at) == 0 {
				if len(at) > 0 {
					index++
				}
				at = at[:0]
			}
			dup := false
			for _, a := range at {
				dup = dup || a == s
			}
			if dup {
				continue
			}
			at = append(at, s)
			b.Add(s, index, leafOf(index))
			m.Add(s, index, leafOf(index))
			if op&128 != 0 || k == len(ops)-1 {
				if got, want := b.Root(), m.Root(); got != want {
					t.Fatalf("after op %d (%q at %d): builder's root %x, Map's %x", k, s, index, got, want)
				}
			}
		}
		if b.Len() != m.Len() {
			t.Fatalf("builder holds %d subjects, the Map %d", b.Len(), m.Len())
		}
		sameSnapshot(t, b, m, t.TempDir(), t.TempDir())
	})
}

// sameSnapshot writes the snapshots of b and m, of the same Adds, in
// dirB and dirM, and fails unless they are the same bytes.
func sameSnapshot(t *testing.T, b *builder, m *Map, dirB, dirM string) {
	t.Helper()
	root := tlog.Hash{1, 2, 3}
	if err := b.writeSnapshot(dirB, 12345, root); err != nil {
		t.Fatal(err)
	}
	if err := (&Store{Log: &Log{dir: dirM}}).saveSnapshot(m, 12345, root); err != nil {
		t.Fatal(err)
	}
	gotB, err := os.ReadFile(filepath.Join(dirB, snapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	gotM, err := os.ReadFile(filepath.Join(dirM, snapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotB, gotM) {
		t.Fatalf("the builder's snapshot (%d bytes) differs from the Map's (%d bytes)", len(gotB), len(gotM))
	}
}
