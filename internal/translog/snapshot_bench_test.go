package translog

import (
	"fmt"
	"testing"
)

// benchStore builds, in dir, a store of about leaves leaves in commits of
// 1000 files, each file its own package (the worst case: one subject per
// file), with a map snapshot at its last commit.
func benchStore(b *testing.B, dir string, leaves int) {
	b.Helper()
	s, err := OpenStore(dir, testSubjects)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for c := 0; c*1001 < leaves; c++ {
		commit := fmt.Sprintf("%040x", c)
		es := make([]Entry, 1000)
		for i := range es {
			n := c*1000 + i
			es[i] = NewEntry(commit, int64(1700000000+c), fmt.Sprintf("packages/a/b/c/d/acme/p%d/1.0.0/descriptor.json", n), []byte(fmt.Sprint("file ", n)))
		}
		if _, err := s.AppendCommit(commit, int64(1700000000+c), es); err != nil {
			b.Fatal(err)
		}
		if err := s.Commit(commit); err != nil {
			b.Fatal(err)
		}
	}
	at, err := s.Map()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.saveSnapshot(at.Map, at.Size, at.Root); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpenAppend is an incremental verification's pattern: a new
// process opens a store whose map snapshot is at its last commit and
// appends one commit of one file.
func BenchmarkOpenAppend(b *testing.B) {
	for _, leaves := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(leaves), func(b *testing.B) {
			dir := b.TempDir()
			benchStore(b, dir, leaves)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := OpenStore(dir, testSubjects)
				if err != nil {
					b.Fatal(err)
				}
				commit := fmt.Sprintf("%040x", 1<<40+i)
				e := NewEntry(commit, 1800000000, fmt.Sprintf("packages/a/b/c/d/acme/new%d/1.0.0/descriptor.json", i), []byte("new"))
				if _, err := s.AppendCommit(commit, 1800000000, []Entry{e}); err != nil {
					b.Fatal(err)
				}
				if s.snapSize.Load() == 0 {
					b.Fatal("the snapshot was not used")
				}
				// Not committed: every round opens the same log.
				s.Rollback()
				s.Close()
			}
		})
	}
}
