package gitx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// RefSession moves refs through one long-lived `git update-ref --stdin`:
// each Update is a transaction of its own (start, a compare-and-swap
// update, prepare, commit), answered on git's standard output, so that
// moving a ref costs a round trip instead of a process. Git takes and
// drops the ref's lock within each transaction, as a one-shot update-ref
// does; between them the session holds nothing. A transaction git
// refuses ends the process, and the next Update starts another. It is
// safe for concurrent use; updates are made one at a time.
//
// Every update of a session carries the reflog message it was made with.
type RefSession struct {
	mu     sync.Mutex
	repo   *Repo
	reason string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *bytes.Buffer
	closed bool
}

// NewRefSession returns a session whose updates carry the reflog message
// reason. Its git starts with the first Start or Update and runs until
// Close.
func (r *Repo) NewRefSession(reason string) *RefSession {
	return &RefSession{repo: r, reason: reason}
}

// Start starts the session's git, if it is not running, so that its
// start-up overlaps what the caller does before its Update.
func (s *RefSession) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start(ctx)
}

// start starts git; s.mu is held. The process outlives ctx's
// cancellation (it serves later updates) but not its values.
func (s *RefSession) start(ctx context.Context) error {
	if s.closed {
		return errors.New("git update-ref: session closed")
	}
	if s.cmd != nil {
		return nil
	}
	cmd := s.repo.command(context.WithoutCancel(ctx), "update-ref", "-m", s.reason, "--stdin", "-z")
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git update-ref --stdin: %w", err)
	}
	s.cmd, s.stdin, s.out, s.stderr = cmd, stdin, bufio.NewReader(stdout), stderr
	return nil
}

// stop ends git and returns how it ended; s.mu is held.
func (s *RefSession) stop() error {
	if s.cmd == nil {
		return nil
	}
	s.stdin.Close()
	err := s.cmd.Wait()
	s.cmd, s.stdin, s.out = nil, nil, nil
	return err
}

// Update moves ref from oldID ("" = must not exist) to newID, atomically,
// or returns ErrRefMoved if ref is not at oldID.
func (s *RefSession) Update(ctx context.Context, ref, newID, oldID string) error {
	if strings.ContainsRune(ref+newID+oldID, 0) {
		return fmt.Errorf("git update-ref: a NUL in %q", ref)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if oldID == "" {
		oldID = s.repo.ZeroID()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.start(ctx); err != nil {
		return err
	}
	_, err := io.WriteString(s.stdin, "start\x00update "+ref+"\x00"+newID+"\x00"+oldID+"\x00prepare\x00commit\x00")
	for _, want := range []string{"start: ok\n", "prepare: ok\n", "commit: ok\n"} {
		if err != nil {
			break
		}
		var line string
		if line, err = s.out.ReadString('\n'); err == nil && line != want {
			err = fmt.Errorf("unexpected reply %q, want %q", line, want)
		}
	}
	if err == nil {
		return nil
	}
	// Git refused (it exits) or broke: end it, and say why.
	werr := s.stop()
	cur, rerr := s.repo.ResolveRef(ctx, ref)
	if rerr == nil && cur == newID && newID != oldID {
		return nil // moved before git broke: done
	}
	if rerr == nil && cur != oldID && !(cur == "" && oldID == s.repo.ZeroID()) {
		return fmt.Errorf("%w: %s is at %s, expected %s", ErrRefMoved, ref, cur, oldID)
	}
	if werr != nil {
		err = werr
	}
	return fmt.Errorf("git update-ref %s: %w: %s", ref, err, strings.TrimSpace(s.stderr.String()))
}

// Close ends the session's git.
func (s *RefSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.stop()
}
