package translog

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// processCPU returns the CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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

// BenchmarkOpenAppendLater is an incremental verification's pattern some
// commits after the map snapshot: a new process opens a store whose log
// went on by four verifications of 136 files (34 new packages each), each
// committed by a process of its own, since the snapshot, and appends the
// next one's. What it costs must not grow with the log.
func BenchmarkOpenAppendLater(b *testing.B) {
	for _, leaves := range []int{3_000, 100_000} {
		b.Run(fmt.Sprint(leaves), func(b *testing.B) {
			dir := b.TempDir()
			benchStore(b, dir, leaves)
			next := 0
			verification := func(s *Store) {
				for c := 0; c < 34; c++ {
					commit := fmt.Sprintf("%040x", 1<<40+next)
					es := make([]Entry, 4)
					for f := range es {
						es[f] = NewEntry(commit, 1800000000, fmt.Sprintf("packages/a/b/c/d/acme/new%d/1.0.0/%d.json", next, f), []byte("new"))
					}
					next++
					if _, err := s.AppendCommit(commit, 1800000000, es); err != nil {
						b.Fatal(err)
					}
				}
			}
			for r := 0; r < 4; r++ {
				s, err := OpenStore(dir, testSubjects)
				if err != nil {
					b.Fatal(err)
				}
				verification(s)
				if err := s.Commit(fmt.Sprint("r", r)); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			b.ResetTimer()
			cpu := processCPU()
			for i := 0; i < b.N; i++ {
				s, err := OpenStore(dir, testSubjects)
				if err != nil {
					b.Fatal(err)
				}
				at := next
				verification(s)
				next = at // not committed: every round opens the same log
				s.Rollback()
				s.Close()
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}
