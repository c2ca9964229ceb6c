package translog

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// The benchmarks' map: 1M leaves over 300k subjects, every subject once
// in the first 300k leaves, then subjects drawn at random.
const (
	benchLeaves   = 1_000_000
	benchSubjects = 300_000
)

func benchSubject(i int) string { return fmt.Sprintf("package ns/p%d", i) }

func buildBenchMap() *Map {
	rng := rand.New(rand.NewPCG(3, 4))
	m := NewMap()
	for i := 0; i < benchLeaves; i++ {
		s := i
		if i >= benchSubjects {
			s = rng.IntN(benchSubjects)
		}
		m.Add(benchSubject(s), int64(i), leafOf(int64(i)))
	}
	m.Root()
	return m
}

var benchMap = sync.OnceValue(buildBenchMap)

// BenchmarkMapBuild builds the whole map from its leaves, as a replica
// does when it opens, and reports the live heap it holds.
func BenchmarkMapBuild(b *testing.B) {
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := buildBenchMap()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		runtime.KeepAlive(m)
	}
}

// BenchmarkMapAdd adds one leaf to the 1M-leaf map (a new subject one
// time in ten), without computing the root.
func BenchmarkMapAdd(b *testing.B) {
	m := benchMap().Clone()
	rng := rand.New(rand.NewPCG(5, 6))
	next := m.Last() + 1
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s := rng.IntN(benchSubjects + benchSubjects/9)
		m.Add(benchSubject(s), next, leafOf(next))
		next++
	}
}

// BenchmarkMapCommit is one commit of 10 files into the 1M-leaf map, each
// about a different subject (the worst case: ten dirty paths), then the
// new root.
func BenchmarkMapCommit(b *testing.B) {
	m := benchMap().Clone()
	rng := rand.New(rand.NewPCG(7, 8))
	next := m.Last() + 1
	var leaves [10]tlog.Hash
	for i := range leaves {
		leaves[i] = leafOf(int64(i))
	}
	for b.Loop() {
		for i := range leaves {
			s := rng.IntN(benchSubjects + benchSubjects/9)
			m.Add(benchSubject(s), next, leaves[i])
			next++
		}
		m.Root()
	}
}

// BenchmarkMapProve proves a random subject of the 1M-leaf map, present
// or not, and reports the proof's size in JSON.
func BenchmarkMapProve(b *testing.B) {
	m := benchMap()
	rng := rand.New(rand.NewPCG(9, 10))
	var size, n int
	for b.Loop() {
		p := m.Prove(benchSubject(rng.IntN(2 * benchSubjects)))
		size += 8 + len(p.Bitmap) + 32*len(p.Siblings)
		n++
	}
	b.ReportMetric(float64(size)/float64(n), "proof-bytes")
	j, _ := json.Marshal(m.Prove(benchSubject(1)))
	b.ReportMetric(float64(len(j)), "json-bytes")
}

// BenchmarkMapVerify checks an inclusion proof from the 1M-leaf map, the
// light client's share of a completeness check.
func BenchmarkMapVerify(b *testing.B) {
	m := benchMap()
	root := m.Root()
	const n = 64
	var (
		subjects [n]string
		values   [n]Value
		proofs   [n]MapProof
	)
	for i := range subjects {
		subjects[i] = benchSubject(i * 4001 % benchSubjects)
		values[i], _, _ = m.Get(subjects[i])
		proofs[i] = m.Prove(subjects[i])
	}
	for i := 0; b.Loop(); i++ {
		if err := VerifyMap(root, subjects[i%n], &values[i%n], proofs[i%n]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapHashFloor is the floor the others are measured against in
// the same run: one SHA-256 of an inner node. A commit costs about
// 10 × (2 + log2 subjects) of them, a proof's check about log2 subjects.
func BenchmarkMapHashFloor(b *testing.B) {
	var l, r tlog.Hash
	for b.Loop() {
		l = mapNodeHash(&l, &r)
	}
}

// BenchmarkReplayMap computes the map as a full replay of bench/gen's
// index does: 100k commits of 4 files about one new package each, the
// root after each commit, with a Map and with the builder a replay uses
// (build.go). It reports the time per commit and the heap each holds.
func BenchmarkReplayMap(b *testing.B) {
	const commits = 100_000
	for _, kind := range []string{"Map", "builder"} {
		b.Run(kind, func(b *testing.B) {
			var before, after runtime.MemStats
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&before)
				var keep any
				add, root := func(string, int64, tlog.Hash) {}, func() tlog.Hash { return tlog.Hash{} }
				if kind == "Map" {
					m := NewMap()
					add, root, keep = m.Add, m.Root, m
				} else {
					bl := newBuilder(b.TempDir())
					add, root, keep = bl.Add, bl.Root, bl
					defer bl.close()
				}
				index := int64(0)
				for c := 0; c < commits; c++ {
					s := benchSubject(c)
					for f := 0; f < 4; f++ {
						add(s, index, leafOf(index))
						index++
					}
					root()
					index++ // the commit's map leaf
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
				runtime.KeepAlive(keep)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*commits), "ns/commit")
		})
	}
}
