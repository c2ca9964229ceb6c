package index_test

import (
	"testing"

	"cairn.dev/cairn/internal/index"
)

// A ref moved by this repository (a pull, a sync) restarts the batch
// reader's git process, but never closes the reader under a state, a
// Names or an upstream list taken before: they keep reading. (Before:
// "git cat-file: reader closed", a sync's name check failing after its
// fetch.)
func TestReaderSurvivesRefMoves(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.0.0")
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	names, err := f.repo.Names(f.ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.repo.State(f.ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := f.repo.GitReader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range []string{"refs/upstreams/x/main", "refs/remotes/y/main"} {
		if err := f.repo.MoveRef(f.ctx, ref, head, ""); err != nil {
			t.Fatal(err)
		}
		if in, err := names.Internal("acme/newthing"); err != nil || !in {
			t.Fatalf("move %d: Names taken before: internal %v, %v; want true", i, in, err)
		}
		if uuid, err := st.UUID("acme/fastjson"); err != nil || uuid == "" {
			t.Fatalf("move %d: State taken before: uuid %q, %v", i, uuid, err)
		}
		if o, err := rd.Read(ref); err != nil || o.ID != head {
			t.Fatalf("move %d: reader taken before reads the moved ref: %+v, %v", i, o, err)
		}
	}
	if err := f.repo.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Read(head); err == nil {
		t.Fatal("a reader read after its repository closed")
	}
}
