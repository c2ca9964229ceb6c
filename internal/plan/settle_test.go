package plan

import (
	"testing"

	"cairn.dev/cairn/internal/index/indextest"
)

// A range found after its package was chosen moves the choice, in the
// round that finds it and in the next. The walk reaches acme/c through
// acme/a (^1.0) before acme/d, a level further down acme/z's side, puts
// its range on it: chosen first under ^1.0 alone, acme/c is chosen
// again under both. acme/d 1.1.0 (c <1.3.0) gives way to 1.0.0 (c
// <1.5.0) under acme/y's range, found later still: the next round's
// ranges on acme/c are as many as the ones it was chosen under, but
// not the same, and choose it once more.
func TestSettleRangeFoundLater(t *testing.T) {
	w := newWorld(t)
	for _, v := range []string{"1.0.0", "1.2.0", "1.4.0", "1.9.0"} {
		w.Publish(indextest.Package{Name: "acme/c", Version: v})
	}
	w.Publish(indextest.Package{Name: "acme/d", Version: "1.0.0", Deps: map[string]string{"acme/c": "<1.5.0"}})
	w.Publish(indextest.Package{Name: "acme/d", Version: "1.1.0", Deps: map[string]string{"acme/c": "<1.3.0"}})
	w.Publish(indextest.Package{Name: "acme/y", Version: "1.0.0", Deps: map[string]string{"acme/d": "<1.1.0"}})
	w.Publish(indextest.Package{Name: "acme/a", Version: "1.0.0", Deps: map[string]string{"acme/c": "^1.0"}})
	w.Publish(indextest.Package{Name: "acme/z", Version: "1.0.0", Deps: map[string]string{"acme/d": "^1.0", "acme/y": "^1.0"}})
	w.write("cairn.yaml", w.projectFile("packages:\n  acme/a: ^1.0\n  acme/z: ^1.0\n"))
	_, _, l, err := w.lock(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := versions(l), "acme/a@1.0.0 acme/c@1.4.0 acme/d@1.0.0 acme/y@1.0.0 acme/z@1.0.0"; got != want {
		t.Fatalf("plan = %s, want %s", got, want)
	}
}
