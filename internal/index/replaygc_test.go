package index

import (
	"runtime/debug"
	"testing"
)

// gcPercent returns the collector's percent, leaving it as it is.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// Replays that overlap, and end in another order than they began, put
// the collector back as it was before the first, and hold it at 200 or
// more while any runs.
func TestReplayGCOverlapping(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	stopA := startReplayGC()
	if p := gcPercent(); p < 200 || p > 1000 {
		t.Fatalf("during a replay GOGC is %d, want 200 to 1000", p)
	}
	stopB := startReplayGC()
	stopA()
	if p := gcPercent(); p < 200 {
		t.Fatalf("while a second replay runs GOGC is %d, want ≥ 200", p)
	}
	replayGCAdjust(0)
	stopB()
	if p := gcPercent(); p != 150 {
		t.Fatalf("after both replays GOGC is %d, want 150 as before", p)
	}
	replayGCAdjust(0) // no replay: changes nothing
	if p := gcPercent(); p != 150 {
		t.Fatalf("an adjustment with no replay set GOGC to %d, want 150", p)
	}
}

// GOGC set in the environment is the user's: a replay leaves it.
func TestReplayGCEnvironment(t *testing.T) {
	t.Setenv("GOGC", "50")
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	stop := startReplayGC()
	replayGCAdjust(0)
	if p := gcPercent(); p != 50 {
		t.Fatalf("with GOGC=50 a replay set GOGC to %d", p)
	}
	stop()
}

// The percent follows what a collection scans: a live heap with
// pointers gets at least 200 (each collection costs about the live heap,
// so no more of them as it grows), one mostly without (a log's map being
// built) gets the headroom over it, whatever its size.
func TestReplayPercent(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		live, scan uint64
		want       int
	}{
		{0, 0, 1000},
		{10 * MiB, 10 * MiB, 1000},
		{64 * MiB, 64 * MiB, 200},
		{1024 * MiB, 1024 * MiB, 200},
		{256 * MiB, 32 * MiB, 50},
		{1024 * MiB, 32 * MiB, 12},
		{1024 * MiB, 256 * MiB, 50},
		{64 << 30, 32 * MiB, 10},
		{64 * MiB, 128 * MiB, 200}, // scan past live: all of it
	} {
		if got := replayPercent(c.live, c.scan); got != c.want {
			t.Errorf("replayPercent(%d MiB live, %d MiB scanned) = %d, want %d", c.live/MiB, c.scan/MiB, got, c.want)
		}
	}
}
