package translog

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// A prepared commit commits to the same files as one not prepared; a
// prepared one rolled back leaves the log as it was; a Prepare followed
// by more appends is prepared again by Commit.
func TestPrepare(t *testing.T) {
	for _, c := range []struct{ from, to int64 }{{0, 1}, {300, 301}, {255, 256}, {300, 1000}} {
		t.Run(fmt.Sprint(c.from, "-", c.to), func(t *testing.T) {
			clean, prep := t.TempDir(), t.TempDir()
			cl, pl := openLog(t, clean), openLog(t, prep)
			grow(t, cl, 0, c.from, "before")
			grow(t, pl, 0, c.from, "before")
			before := snapshot(t, prep)

			// Prepared, then rolled back: nothing changes.
			for i := c.from; i < c.to; i++ {
				if _, _, err := pl.Append(testEntry(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := pl.Prepare("dropped"); err != nil {
				t.Fatal(err)
			}
			if snapshot(t, prep).equal(before) {
				t.Fatal("Prepare wrote nothing: the test tests nothing")
			}
			pl.Rollback()
			if got := snapshot(t, prep); !got.equal(before) {
				t.Fatalf("a prepared commit rolled back left:\n%s", got.diff(before))
			}
			if pl.Size() != c.from || pl.Head() != "before" {
				t.Fatalf("after the rollback: size %d head %s", pl.Size(), pl.Head())
			}

			// Prepared, one more leaf appended, committed: as if never prepared.
			for i := c.from; i < c.to-1; i++ {
				if _, _, err := pl.Append(testEntry(i)); err != nil {
					t.Fatal(err)
				}
			}
			if c.to-1 > c.from {
				if err := pl.Prepare("after"); err != nil {
					t.Fatal(err)
				}
			}
			grow(t, pl, c.to-1, c.to, "after")
			grow(t, cl, c.from, c.to, "after")
			if got, want := snapshot(t, prep), snapshot(t, clean); !got.equal(want) {
				t.Fatalf("a prepared log differs from one never prepared:\n%s", got.diff(want))
			}

			// Prepared and committed as prepared.
			for i := c.to; i < c.to+5; i++ {
				if _, _, err := pl.Append(testEntry(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := pl.Prepare("last"); err != nil {
				t.Fatal(err)
			}
			if err := pl.Commit("last"); err != nil {
				t.Fatal(err)
			}
			grow(t, cl, c.to, c.to+5, "last")
			if got, want := snapshot(t, prep), snapshot(t, clean); !got.equal(want) {
				t.Fatalf("a prepared log differs from one never prepared:\n%s", got.diff(want))
			}
		})
	}
}

func TestPrepareCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv + "_PREPARE")
	if dir == "" {
		t.Skip("run by TestCrashAfterPrepare")
	}
	from, _ := strconv.ParseInt(os.Getenv("TRANSLOG_CRASH_FROM"), 10, 64)
	to, _ := strconv.ParseInt(os.Getenv("TRANSLOG_CRASH_TO"), 10, 64)
	l, err := OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		if _, _, err := l.Append(testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Prepare("crashed"); err != nil {
		t.Fatal(err)
	}
	os.Exit(7) // killed: no deferred cleanup runs
}

// A process killed after Prepare (its git ref not moved yet) leaves a log
// that reopens at the old committed size, with nothing of the prepared
// commit left.
func TestCrashAfterPrepare(t *testing.T) {
	for _, c := range []struct{ from, to int64 }{{300, 301}, {255, 256}, {0, 700}} {
		t.Run(fmt.Sprint(c.from, "-", c.to), func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			grow(t, l, 0, c.from, "before")
			before := snapshot(t, dir)
			l.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^TestPrepareCrashChild$")
			cmd.Env = append(os.Environ(), crashEnv+"_PREPARE="+dir, fmt.Sprint("TRANSLOG_CRASH_FROM=", c.from), fmt.Sprint("TRANSLOG_CRASH_TO=", c.to))
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if snapshot(t, dir).equal(before) {
				t.Fatal("the killed child wrote nothing: the test tests nothing")
			}
			l = openLog(t, dir)
			if l.Size() != c.from || l.Head() != "before" {
				t.Fatalf("after the crash: size %d head %s, want %d before", l.Size(), l.Head(), c.from)
			}
			if got := snapshot(t, dir); !got.equal(before) {
				t.Fatalf("after the crash, the log's files differ from before it:\n%s", got.diff(before))
			}
		})
	}
}
