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
	replayGCAdjust()
	stopB()
	if p := gcPercent(); p != 150 {
		t.Fatalf("after both replays GOGC is %d, want 150 as before", p)
	}
	replayGCAdjust() // no replay: changes nothing
	if p := gcPercent(); p != 150 {
		t.Fatalf("an adjustment with no replay set GOGC to %d, want 150", p)
	}
}

// GOGC set in the environment is the user's: a replay leaves it.
func TestReplayGCEnvironment(t *testing.T) {
	t.Setenv("GOGC", "50")
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	stop := startReplayGC()
	replayGCAdjust()
	if p := gcPercent(); p != 50 {
		t.Fatalf("with GOGC=50 a replay set GOGC to %d", p)
	}
	stop()
}
