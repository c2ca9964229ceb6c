package index_test

import (
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"cairn.dev/cairn/bench/gen"
)

// BenchmarkVerifyFull verifies a generated index of 10,000 signed
// records from its introduction, as `cairn verify --full` does, its log
// kept and checked leaf by leaf: where to profile a full verify
// (-cpuprofile, -memprofile; bench/run verify measures the command on
// 100,000). It reports records/s, and the CPU time of the process and
// of its git children per record, since the git processes work on the
// same cores.
func BenchmarkVerifyFull(b *testing.B) {
	ix, err := gen.Build(b.Context(), filepath.Join(b.TempDir(), "ix"), 10_000, false)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ix.Repo.Verify(b.Context(), true); err != nil { // the log, kept from here on
		b.Fatal(err)
	}
	cpu := func(who int) time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(who, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	runtime.GC()
	self, children := cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN)
	b.ResetTimer()
	for b.Loop() {
		res, err := ix.Repo.Verify(b.Context(), true)
		if err != nil {
			b.Fatal(err)
		}
		if res.Records < ix.Records {
			b.Fatalf("verified %d files, want ≥ %d", res.Records, ix.Records)
		}
	}
	b.StopTimer()
	n := float64(b.N) * float64(ix.Records)
	b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64((cpu(syscall.RUSAGE_SELF)-self).Nanoseconds())/n, "cpu-ns/record")
	b.ReportMetric(float64((cpu(syscall.RUSAGE_CHILDREN)-children).Nanoseconds())/n, "git-cpu-ns/record")
}
