package certifier

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/indextest"
)

func run(t *testing.T, j Job) *Outcome {
	t.Helper()
	if j.Dir == "" {
		j.Dir = t.TempDir()
	}
	if j.Timeout == 0 {
		j.Timeout = time.Minute
	}
	o, err := Run(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestRunPassAndFail(t *testing.T) {
	o := run(t, Job{Command: `echo "testing $CAIRN_PACKAGE@$CAIRN_VERSION in $(pwd)"; echo warning >&2`, Env: []string{"CAIRN_PACKAGE=acme/log", "CAIRN_VERSION=1.1.0"}})
	if !o.Passed() || o.ExitCode != 0 || o.TimedOut || !strings.HasPrefix(string(o.Output), "testing acme/log@1.1.0 in /") || !strings.Contains(string(o.Output), "warning\n") || o.Dropped != 0 {
		t.Fatalf("a passing command: %+v %q", o, o.Output)
	}
	o = run(t, Job{Command: "echo 2 tests failed; exit 3"})
	if o.Passed() || o.ExitCode != 3 || o.TimedOut || string(o.Output) != "2 tests failed\n" {
		t.Fatalf("a failing command: %+v %q", o, o.Output)
	}
	if _, err := Run(context.Background(), Job{Command: "true", Dir: filepath.Join(t.TempDir(), "missing"), Timeout: time.Minute}); err == nil {
		t.Fatal("ran in a directory that does not exist")
	}
}

// TestRunHangs: a command that hangs, and the child it started, are
// killed at the timeout.
func TestRunHangs(t *testing.T) {
	dir := t.TempDir()
	o := run(t, Job{Dir: dir, Timeout: 2 * time.Second, Command: "sleep 600 & echo $! > child; echo started; wait"})
	if o.Passed() || !o.TimedOut || o.ExitCode != -1 || string(o.Output) != "started\n" {
		t.Fatalf("a hanging command: %+v %q", o, o.Output)
	}
	data, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The child is gone (or a zombie being reaped): signal 0 fails, or it
	// is no longer a sleep.
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the hanging command's child %d outlived the timeout", pid)
}

// TestRunBounded: megabytes of output keep their first and last bytes and
// a count of the rest; a file over the size limit is cut off and fails
// the command.
func TestRunBounded(t *testing.T) {
	o := run(t, Job{MaxOutput: 1000, Command: "echo FIRST; yes 0123456789 | head -c 20000000; echo; echo LAST"})
	if !o.Passed() || len(o.Output) > 1100 || !bytes.HasPrefix(o.Output, []byte("FIRST\n")) || !bytes.HasSuffix(o.Output, []byte("\nLAST\n")) {
		t.Fatalf("bounded output: %d bytes kept: %q…%q", len(o.Output), o.Output[:min(40, len(o.Output))], o.Output[max(0, len(o.Output)-40):])
	}
	if want := int64(len("FIRST\n") + 20000000 + len("\nLAST\n") - 1000); o.Dropped != want || !bytes.Contains(o.Output, []byte("["+"cairn certifier: "+strconv.FormatInt(want, 10)+" bytes of output dropped here]")) {
		t.Fatalf("dropped %d, want %d", o.Dropped, want)
	}
	dir := t.TempDir()
	o = run(t, Job{Dir: dir, MaxFileSize: 1 << 20, Command: "head -c 5000000 /dev/zero > big"})
	st, err := os.Stat(filepath.Join(dir, "big"))
	if o.Passed() || err != nil || st.Size() > 1<<20 {
		t.Fatalf("a command filling the disk: %+v, file %v %v", o, st.Size(), err)
	}
}

// TestBounded checks the ring against the plain answer for writes of
// every size.
func TestBounded(t *testing.T) {
	var all []byte
	for i := 0; i < 5000; i++ {
		all = append(all, byte('a'+i%26))
	}
	for _, chunk := range []int{1, 7, 99, 100, 101, 333, 5000} {
		b := newBounded(200)
		for i := 0; i < len(all); i += chunk {
			b.Write(all[i:min(i+chunk, len(all))])
		}
		got, dropped := b.bytes()
		want := string(all[:100]) + "\n[cairn certifier: 4800 bytes of output dropped here]\n" + string(all[len(all)-100:])
		if string(got) != want || dropped != 4800 {
			t.Errorf("chunks of %d: %q (%d dropped)", chunk, got, dropped)
		}
	}
}

// TestNewVersions: the versions published after a commit, in order;
// certifications of old versions are not new versions.
func TestNewVersions(t *testing.T) {
	w := indextest.New(t)
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.0.0"})
	w.Publish(indextest.Package{Name: "acme/fastjson", Version: "1.2.3"})
	mid, err := w.Repo.Head(w.Ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	w.Audit("acme/log", "1.0.0")
	w.Publish(indextest.Package{Name: "acme/log", Version: "1.1.0"})
	w.Publish(indextest.Package{Name: "acme/app", Version: "0.1.0"})
	ids := func(vs []Version) string {
		var out []string
		for _, v := range vs {
			out = append(out, v.ID())
		}
		return strings.Join(out, " ")
	}
	all, err := NewVersions(w.Ctx, w.Repo, "", index.MainRef)
	if err != nil || ids(all) != "acme/log@1.0.0 acme/fastjson@1.2.3 acme/log@1.1.0 acme/app@0.1.0" {
		t.Fatalf("the whole history: %s, %v", ids(all), err)
	}
	after, err := NewVersions(w.Ctx, w.Repo, mid, index.MainRef)
	if err != nil || ids(after) != "acme/log@1.1.0 acme/app@0.1.0" {
		t.Fatalf("after %s: %s, %v", mid, ids(after), err)
	}
	if after[0].Commit == after[1].Commit || after[1].Commit == "" {
		t.Fatalf("commits %+v", after)
	}
}
