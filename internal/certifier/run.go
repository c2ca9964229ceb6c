// Package certifier is the CI certifier: a service that follows
// repositories, runs a command (tests, a scanner) on every new version
// that matches its filter, and certifies what passes with a signed
// record.
//
// This file runs the command: in a fresh working directory, with the
// version in its environment, under a timeout that kills its whole
// process group, with the files it writes and the output it prints
// bounded, so that a command that hangs, fills the disk or prints
// megabytes does not take the certifier down.
package certifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Job is one run of the command on one version.
type Job struct {
	Command string        // run by /bin/sh -c
	Dir     string        // its working directory (fresh, the certifier's)
	Env     []string      // NAME=VALUE, added to the certifier's environment
	Timeout time.Duration // then the process group is killed
	// MaxOutput bounds the output kept (stdout and stderr together): its
	// first and last halves are kept, the middle is dropped and counted.
	MaxOutput int
	// MaxFileSize bounds each file the command writes (RLIMIT_FSIZE,
	// through the shell's ulimit); 0 leaves it unbounded.
	MaxFileSize int64
	// KeepStdout, when above 0, also keeps standard output alone, up to
	// that many bytes (a scanner's findings).
	KeepStdout int
}

// Outcome is what a run did.
type Outcome struct {
	ExitCode int // -1 when killed by a signal
	TimedOut bool
	Duration time.Duration
	Output   []byte // at most MaxOutput bytes, with a marker where bytes were dropped
	Dropped  int64  // output bytes not kept
	// Stdout is standard output alone (with Job.KeepStdout); StdoutOver
	// says it was longer than that.
	Stdout     []byte
	StdoutOver bool
}

// Passed reports whether the command exited 0 within its time.
func (o *Outcome) Passed() bool { return o.ExitCode == 0 && !o.TimedOut }

// Run runs the job. An error means the command could not be run at all
// (no shell, no directory); a command that fails, is killed or times out
// is an Outcome.
func Run(ctx context.Context, j Job) (*Outcome, error) {
	if j.Timeout <= 0 {
		return nil, errors.New("certifier: a run needs a timeout")
	}
	script := j.Command
	if j.MaxFileSize > 0 {
		// POSIX sh counts ulimit -f in 512-byte blocks.
		script = fmt.Sprintf("ulimit -f %d || exit 125\n%s", max(1, j.MaxFileSize/512), j.Command)
	}
	ctx, cancel := context.WithTimeout(ctx, j.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = j.Dir
	cmd.Env = append(os.Environ(), j.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a test runner's children die with it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that escaped the group and holds the output open is
	// not waited for longer than this.
	cmd.WaitDelay = 2 * time.Second
	out := newBounded(j.MaxOutput)
	cmd.Stdout, cmd.Stderr = out, out
	var stdout *capped
	if j.KeepStdout > 0 {
		stdout = &capped{max: j.KeepStdout}
		cmd.Stdout = io.MultiWriter(out, stdout)
	}
	start := time.Now()
	err := cmd.Run()
	o := &Outcome{Duration: time.Since(start), TimedOut: ctx.Err() == context.DeadlineExceeded}
	if o.TimedOut {
		// Whatever escaped the group's kill at the deadline, once more.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if cmd.ProcessState == nil { // it never ran
		return nil, fmt.Errorf("running %q in %s: %w", j.Command, j.Dir, err)
	}
	// Exited (0 or not), killed (-1), or exited while an escaped
	// grandchild held the output (exec.ErrWaitDelay): all outcomes.
	o.ExitCode = cmd.ProcessState.ExitCode()
	o.Output, o.Dropped = out.bytes()
	if stdout != nil {
		o.Stdout, o.StdoutOver = stdout.buf, stdout.over
	}
	return o, nil
}

// capped keeps the first max bytes written to it and notes the rest.
type capped struct {
	max  int
	buf  []byte
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	k := min(len(p), c.max-len(c.buf))
	c.buf = append(c.buf, p[:k]...)
	if k < len(p) {
		c.over = true
	}
	return len(p), nil
}

// bounded keeps the first and the last halves of what is written to it,
// up to max bytes in all.
type bounded struct {
	max     int
	head    []byte
	tail    []byte // a ring of the last max-len(head) bytes
	start   int    // where the ring starts
	written int64
}

func newBounded(max int) *bounded {
	if max <= 0 {
		max = 1 << 20
	}
	return &bounded{max: max}
}

func (b *bounded) Write(p []byte) (int, error) {
	n := len(p)
	b.written += int64(n)
	if room := b.max/2 - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	size := b.max - b.max/2
	for len(p) > 0 {
		if len(b.tail) < size {
			k := min(size-len(b.tail), len(p))
			b.tail = append(b.tail, p[:k]...)
			p = p[k:]
			continue
		}
		if len(p) >= size {
			copy(b.tail, p[len(p)-size:])
			b.start = 0
			break
		}
		k := copy(b.tail[b.start:], p)
		if k < len(p) {
			k += copy(b.tail, p[k:])
		}
		b.start = (b.start + k) % size
		p = p[k:]
	}
	return n, nil
}

// bytes returns what was kept, with a marker where bytes were dropped,
// and how many were.
func (b *bounded) bytes() ([]byte, int64) {
	kept := int64(len(b.head) + len(b.tail))
	out := append([]byte(nil), b.head...)
	dropped := b.written - kept
	if dropped > 0 {
		out = append(out, fmt.Sprintf("\n[cairn certifier: %d bytes of output dropped here]\n", dropped)...)
	}
	out = append(out, b.tail[b.start:]...)
	out = append(out, b.tail[:b.start]...)
	return out, dropped
}
