package light

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"cairn.dev/cairn/internal/checkpoint"
)

// The same subjects read again at the same tree, their batches back in
// another order (as parallel reads come back), are kept in the file
// kept already: not written again, and no second file beside it that
// every offline read would parse (a lock run every minute against a
// quiet server filled the cache with a copy a run).
func TestKeepBatchOncePerSubjects(t *testing.T) {
	c := &Client{StateDir: t.TempDir(), Introduction: "intro"}
	cp := checkpoint.Checkpoint{Size: 7}
	first := [][]byte{[]byte("batch of a and b\n"), []byte("batch of c\n")}
	for _, compact := range []bool{false, true} {
		c.keepBatchBody(cp, []string{"package a", "package b", "package c"}, first, compact)
		c.keepBatchBody(cp, []string{"package c", "package a", "package b"}, [][]byte{first[1], first[0]}, compact)
	}
	entries, err := os.ReadDir(c.subjectsDir(cp))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("kept %d files %q, want one per encoding", len(entries), names)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(c.subjectsDir(cp), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, first[0]) {
			t.Errorf("%s holds %q, want the first read's batches, kept once", e.Name(), data)
		}
	}
	// Other subjects at the same tree are kept beside them.
	c.keepBatchBody(cp, []string{"package d"}, [][]byte{[]byte("batch of d\n")}, true)
	if entries, _ := os.ReadDir(c.subjectsDir(cp)); len(entries) != 3 {
		t.Errorf("kept %d files after another read, want 3", len(entries))
	}
}
