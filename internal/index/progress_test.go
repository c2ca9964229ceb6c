package index_test

import (
	"testing"

	"cairn.dev/cairn/internal/index"
)

// TestVerifyProgress: a line's Progress hears every commit replayed, of a
// total counted before, and the files checked; a verification with
// nothing new reports nothing to do.
func TestVerifyProgress(t *testing.T) {
	f := newFixture(t) // the root record and three grants: four commits
	var got []index.Progress
	l := f.repo.Main()
	l.Progress = func(p index.Progress) { got = append(got, p) }
	res, err := f.repo.VerifyLine(f.ctx, l, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != res.Commits+1 || res.Commits != 4 {
		t.Fatalf("%d reports for %d commits: %+v", len(got), res.Commits, got)
	}
	for i, p := range got {
		if p.Line != "main" || p.Commits != i || p.Total != res.Commits {
			t.Fatalf("report %d: %+v, want %d of %d commits of main", i, p, i, res.Commits)
		}
	}
	if last := got[len(got)-1]; last.Files != res.Records {
		t.Fatalf("last report %+v, want %d files", last, res.Records)
	}

	got = nil
	if _, err := f.repo.VerifyLine(f.ctx, l, false); err != nil {
		t.Fatal(err)
	}
	if len(got) > 1 || len(got) == 1 && got[0].Total != 0 {
		t.Fatalf("nothing new, yet %+v", got)
	}
}
