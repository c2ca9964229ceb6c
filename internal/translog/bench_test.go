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
