package translog

import (
	"fmt"
	"testing"
)

// BenchmarkAppendBulk is a verification's pattern: many leaves, one commit
// per 10,000. Reported per leaf.
func BenchmarkAppendBulk(b *testing.B) {
	l := openLog(b, b.TempDir())
	entries := make([]Entry, 10000)
	for i := range entries {
		entries[i] = testEntry(int64(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := l.Append(entries[i%len(entries)]); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 9999 {
			if err := l.Commit(fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := l.Commit("end"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendCommit is a publish's pattern at a large log: one leaf,
// then a durable commit, into a log of a million leaves (built once).
func BenchmarkAppendCommit(b *testing.B) {
	const size = 1 << 20
	l := openLog(b, b.TempDir())
	for i := int64(0); i < size; i++ {
		if _, _, err := l.Append(testEntry(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Commit("built"); err != nil {
		b.Fatal(err)
	}
	b.Run("1M", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n := l.Size()
			if _, _, err := l.Append(testEntry(n)); err != nil {
				b.Fatal(err)
			}
			if err := l.Commit(fmt.Sprint("head", n)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReplay is a full verification's log work at 100k records: a
// fresh store gets 33,334 commits of four files (a version: its
// descriptor and three records, one package each), each with its map
// leaf, and is committed once. The entries' file hashes are the
// replay's (its workers hash the files); reported per run, with the
// leaves per second.
func BenchmarkReplay(b *testing.B) {
	cs := replayCommits()
	for b.Loop() {
		s, err := OpenStore(b.TempDir(), testSubjects)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Begin(""); err != nil {
			b.Fatal(err)
		}
		appendReplay(b, s, cs)
		s.Close()
	}
	b.ReportMetric(replayLeaves*float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
}

// BenchmarkRecompute is a full verification's log work at 100k records
// over the log it kept (Store.BeginRecompute): BenchmarkReplay's commits
// appended again to the store they built, every leaf, stored hash and
// tile compared rather than written.
func BenchmarkRecompute(b *testing.B) {
	cs := replayCommits()
	s, err := OpenStore(b.TempDir(), testSubjects)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Begin(""); err != nil {
		b.Fatal(err)
	}
	appendReplay(b, s, cs)
	for b.Loop() {
		if err := s.BeginRecompute(); err != nil {
			b.Fatal(err)
		}
		appendReplay(b, s, cs)
	}
	b.ReportMetric(replayLeaves*float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
}

// appendReplay appends cs to s, begun, and commits them.
func appendReplay(b *testing.B, s *Store, cs []replayCommit) {
	entries := make([]Entry, replayFiles)
	for _, c := range cs {
		copy(entries, c.entries) // AppendCommit sorts its entries in place
		if _, err := s.AppendCommit(c.id, c.entries[0].Time, entries); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Commit(cs[len(cs)-1].id); err != nil {
		b.Fatal(err)
	}
}

// The commits of BenchmarkReplay and BenchmarkRecompute: replayCommitCount
// commits of replayFiles files, one package each.
const replayCommitCount, replayFiles = 33_334, 4

// replayLeaves is the leaves they make: a file each, and a map leaf a commit.
const replayLeaves = replayCommitCount * (replayFiles + 1)

type replayCommit struct {
	id      string
	entries []Entry
}

func replayCommits() []replayCommit {
	cs := make([]replayCommit, replayCommitCount)
	for c := range cs {
		cs[c].id = fmt.Sprintf("%040x", c+1)
		for f := 0; f < replayFiles; f++ {
			cs[c].entries = append(cs[c].entries, NewEntry(cs[c].id, int64(1700000000+c), fmt.Sprintf("packages/a/b/c/d/acme/p%d/1.0.0/%d.json", c, f), []byte(fmt.Sprint("file ", c, f))))
		}
	}
	return cs
}
