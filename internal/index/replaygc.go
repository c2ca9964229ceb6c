package index

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// replayHeadroom is how much garbage a replay lets the heap gather
// between two collections, whatever is live: a replay allocates about
// 8 KiB per file (the file, its record decoded, its signature checked)
// and keeps little of it (the state it holds is bounded by rebaseAt, the
// names it has seen by nameSet's filter; the log's map, which grows by
// about 120 bytes a version, is built in slices the collector does not
// scan, mapped from a file on Linux: translog's builder), so each
// collection marks a small live heap and frees nearly everything. A full verify of
// 100,000 records (133,000 files, 1.1 GiB allocated, 20 to 35 MiB live)
// collected about 35 times at GOGC=200 and about 10 with this headroom,
// for an eighth less CPU in the process and some 60 MiB more at its peak;
// 256 MiB saved no more. A constant: it does not grow with the index.
const replayHeadroom = 128 << 20

// replayPercent is the collector's percent that lets the heap gather
// replayHeadroom of garbage over live bytes, of which scan are scanned
// by each collection (the others hold no pointer), or twice what it
// scans if that is more:
// a collection costs about what it scans, so the heap grows by the
// headroom over what does not grow with the index (the pipeline's
// records), and by two collections' worth of work over what does. At
// least 10 (a heap of several GiB without pointers), at most 1,000.
func replayPercent(live, scan uint64) int {
	if live == 0 {
		return 1000
	}
	garbage := max(replayHeadroom, 2*min(scan, live))
	return int(min(1000, max(10, garbage*100/live)))
}

// The collector's percent (GOGC) while replays run: one setting for the
// process, whichever replays run in it (a server checks several pushes
// at once), put back as it was when the last ends.
var replayGC struct {
	mu      sync.Mutex
	running int
	prev    int // the percent before the first of them
	percent int // the percent set now
	sample  [1]metrics.Sample
}

// startReplayGC lets the heap grow by replayHeadroom between collections
// (GOGC from replayPercent: 200 to 1,000 while the live heap has
// pointers, less over a log's map built without: see replayGCAdjust)
// until the returned func is called; replayGCAdjust follows the live
// heap as it grows. GOGC or GOMEMLIMIT set in the environment, the
// collector is left as they say.
func startReplayGC() (stop func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	g := &replayGC
	g.mu.Lock()
	if g.running == 0 {
		g.prev = debug.SetGCPercent(200)
		g.percent = 200
		g.sample[0].Name = "/gc/heap/live:bytes"
	}
	g.running++
	g.mu.Unlock()
	replayGCAdjust(0)
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.running--; g.running == 0 {
			debug.SetGCPercent(g.prev)
		}
	}
}

// replayGCAdjust sets the percent from the heap live after the last
// collection, of which noscan bytes are known to hold no pointer (a
// log's map being built: translog.Store.Unscanned), if a replay set the
// collector and it moved by an eighth.
func replayGCAdjust(noscan uint64) {
	g := &replayGC
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running == 0 {
		return
	}
	metrics.Read(g.sample[:])
	var live uint64
	if s := g.sample[0].Value; s.Kind() == metrics.KindUint64 {
		live = s.Uint64()
	}
	p := replayPercent(live, live-min(noscan, live))
	if d := p - g.percent; d > g.percent/8 || -d > g.percent/8 {
		debug.SetGCPercent(p)
		g.percent = p
	}
}

// ReplayGC is startReplayGC for a replay made outside this package (an
// evidence bundle's reads, replayed to a light client, judged by
// ReplayProved): the heap may gather replayHeadroom of garbage between
// collections until stop is called.
func ReplayGC() (stop func()) { return startReplayGC() }
