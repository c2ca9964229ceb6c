package gitx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Object is an object read from the repository.
type Object struct {
	ID   string
	Type string // "blob", "tree", "commit", "tag"
	Data []byte
}

// Reader reads objects through one long-lived `git cat-file --batch`.
// It is safe for concurrent use; requests are served one at a time.
// Restart makes the next request start a fresh git process, and the
// Reader stays valid for whoever holds it; only Close ends it.
type Reader struct {
	mu     sync.Mutex
	repo   *Repo
	ctx    context.Context
	in     *bufio.Writer // nil: no process running (started on demand)
	out    *bufio.Reader
	close  func() error
	closed bool
}

// startCatFile starts `git cat-file` with args and returns its pipes.
func (r *Repo) startCatFile(ctx context.Context, args ...string) (io.WriteCloser, io.Reader, *exec.Cmd, error) {
	cmd := r.command(ctx, append([]string{"cat-file"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return stdin, stdout, cmd, nil
}

// NewReader starts a batch reader. Close it when done. Its git process
// lives as long as ctx.
func (r *Repo) NewReader(ctx context.Context) (*Reader, error) {
	b := &Reader{repo: r, ctx: ctx}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// start starts the git process; b.mu is held (or b is not shared yet).
func (b *Reader) start() error {
	stdin, stdout, cmd, err := b.repo.startCatFile(b.ctx, "--batch")
	if err != nil {
		return err
	}
	b.in, b.out = bufio.NewWriter(stdin), bufio.NewReaderSize(stdout, 1<<16)
	b.close = func() error {
		stdin.Close()
		return cmd.Wait()
	}
	return nil
}

// stop ends the git process, if one runs; b.mu is held.
func (b *Reader) stop() error {
	if b.in == nil {
		return nil
	}
	b.in, b.out = nil, nil
	return b.close()
}

// Read returns the object named by spec: an id, or "<commit-ish>:<path>".
// A missing object is fs.ErrNotExist.
func (b *Reader) Read(spec string) (*Object, error) {
	if strings.ContainsAny(spec, "\n") {
		return nil, fmt.Errorf("object name %q contains a newline", spec)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return nil, err
	}
	if _, err := b.in.WriteString(spec + "\n"); err != nil {
		return nil, err
	}
	if err := b.in.Flush(); err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	return readReply(b.out, spec)
}

// ready starts the git process if none runs; b.mu is held.
func (b *Reader) ready() error {
	if b.closed {
		return fmt.Errorf("git cat-file: reader closed")
	}
	if b.in == nil {
		if err := b.start(); err != nil {
			return fmt.Errorf("git cat-file: %w", err)
		}
	}
	return nil
}

// readManyBytes bounds the requests ReadMany writes before it reads their
// replies: well under a pipe's capacity (64 KiB on Linux), so that the
// write never waits on git, which may itself wait for its replies to be
// read.
const readManyBytes = 16 << 10

// ReadMany returns the objects named by specs, in their order, asking for
// them together: one round trip to git for many objects, not one each
// (a package's document reads a tree and all its files). If one is
// missing, the error is fs.ErrNotExist for the first missing, once every
// reply was read; another error stops the process, as the stream's place
// is lost, and the next request starts a new one.
func (b *Reader) ReadMany(specs []string) ([]*Object, error) {
	for _, spec := range specs {
		if strings.ContainsAny(spec, "\n") {
			return nil, fmt.Errorf("object name %q contains a newline", spec)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return nil, err
	}
	objs := make([]*Object, len(specs))
	var missing error
	for i := 0; i < len(specs); {
		j, n := i, 0
		for j < len(specs) && (j == i || n+len(specs[j])+1 <= readManyBytes) {
			b.in.WriteString(specs[j])
			b.in.WriteByte('\n')
			n += len(specs[j]) + 1
			j++
		}
		if err := b.in.Flush(); err != nil {
			b.stop()
			return nil, fmt.Errorf("git cat-file: %w", err)
		}
		for ; i < j; i++ {
			o, err := readReply(b.out, specs[i])
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if missing == nil {
					missing = err
				}
			case err != nil:
				b.stop()
				return nil, err
			}
			objs[i] = o
		}
	}
	if missing != nil {
		return nil, missing
	}
	return objs, nil
}

// Restart stops the git process after the request being served, so that
// the next request starts a new one, which sees the repository as it is
// then (refs moved, objects fetched). Holders of the Reader keep using it.
func (b *Reader) Restart() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.stop()
	}
}

// readReply reads one `cat-file --batch` reply.
func readReply(br *bufio.Reader, spec string) (*Object, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	f := strings.Fields(line)
	if len(f) == 2 && f[1] == "missing" || len(f) >= 2 && f[len(f)-1] == "ambiguous" {
		return nil, fmt.Errorf("%s: %w", spec, fs.ErrNotExist)
	}
	if len(f) != 3 {
		return nil, fmt.Errorf("git cat-file: unexpected reply %q", line)
	}
	size, err := strconv.Atoi(f[2])
	if err != nil {
		return nil, fmt.Errorf("git cat-file: unexpected reply %q", line)
	}
	data := make([]byte, size+1)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	return &Object{ID: f[0], Type: f[1], Data: data[:size]}, nil
}

// Stream reads many objects through one `git cat-file --batch --buffer`,
// pipelined: one goroutine sends requests while another takes the replies,
// in the same order, so no request waits for the one before it. Request
// and Next must each be called from one goroutine at a time.
type Stream struct {
	in    *bufio.Writer
	stdin io.Closer
	out   *bufio.Reader
	wait  func() error
}

// NewStream starts a pipelined reader. Call CloseRequests after the last
// Request, and Wait after the last Next.
func (r *Repo) NewStream(ctx context.Context) (*Stream, error) {
	stdin, stdout, cmd, err := r.startCatFile(ctx, "--batch", "--buffer")
	if err != nil {
		return nil, err
	}
	return &Stream{in: bufio.NewWriterSize(stdin, 1<<14), stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<16), wait: cmd.Wait}, nil
}

// Request asks for an object; its reply comes from Next in request order.
func (s *Stream) Request(spec string) error {
	if strings.ContainsAny(spec, "\n") {
		return fmt.Errorf("object name %q contains a newline", spec)
	}
	_, err := s.in.WriteString(spec + "\n")
	return err
}

// CloseRequests sends the last requests; git then flushes every reply.
func (s *Stream) CloseRequests() error {
	err := s.in.Flush()
	if cerr := s.stdin.Close(); err == nil {
		err = cerr
	}
	return err
}

// Next returns the reply to the oldest unanswered request.
func (s *Stream) Next() (*Object, error) { return readReply(s.out, "object") }

// Wait waits for git to exit.
func (s *Stream) Wait() error { return s.wait() }

// Tree reads a tree (by id or "<commit-ish>:<path>"); a missing path is
// fs.ErrNotExist.
func (b *Reader) Tree(spec string) ([]TreeEntry, error) {
	o, err := b.Read(spec)
	if err != nil {
		return nil, err
	}
	if o.Type != "tree" {
		return nil, fmt.Errorf("%s is a %s, not a tree", spec, o.Type)
	}
	return ParseTree(o.Data, b.repo.HexSize())
}

// Commit reads a commit.
func (b *Reader) Commit(id string) (*Commit, error) {
	o, err := b.Read(id)
	if err != nil {
		return nil, err
	}
	if o.Type != "commit" {
		return nil, fmt.Errorf("%s is a %s, not a commit", id, o.Type)
	}
	return ParseCommit(o.ID, o.Data)
}

// Close stops the git process.
func (b *Reader) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.stop()
}

// Change is one changed path of a commit, against its first parent.
type Change struct {
	Status  byte // 'A' added, 'M' modified, 'D' deleted, 'T' type changed
	Path    string
	OldMode string
	NewMode string
	OldID   string
	NewID   string
}

// LogEntry is one commit of a walk with its changes.
type LogEntry struct {
	ID      string
	Parents []string
	Time    int64
	Changes []Change
}

// WalkOptions selects the commits of a Walk.
type WalkOptions struct {
	From        string   // exclude commits reachable from here ("" = none)
	To          string   // walk back from here
	Paths       []string // only commits touching these paths, and only their changes there
	NewestFirst bool     // default: oldest first
}

// Walk streams commits with their changed files in one `git log`
// process. fn may stop the walk by returning an error.
func (r *Repo) Walk(ctx context.Context, o WalkOptions, fn func(*LogEntry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := []string{"log", "--topo-order", "--format=%x01%H %P%x02%ct", "--raw", "-z", "--no-renames", "--no-abbrev", "--root"}
	if !o.NewestFirst {
		args = append(args, "--reverse")
	}
	args = append(args, o.To)
	if o.From != "" {
		args = append(args, "^"+o.From)
	}
	if len(o.Paths) > 0 {
		args = append(append(args, "--"), o.Paths...)
	}
	cmd := r.command(ctx, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	werr := parseLog(bufio.NewReaderSize(stdout, 1<<16), fn)
	if werr != nil {
		cancel()
		cmd.Wait()
		return werr
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git log: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// parseLog reads the output of Walk's `git log`: a header token per
// commit (\x01ID PARENTS\x02TIME), then for each change a raw token
// (:OLDMODE NEWMODE OLDID NEWID STATUS) and its path, NUL-terminated. It
// reads tokens in place from br's buffer and makes strings only of what
// it keeps, the common modes and the all-zero id shared.
func parseLog(br *bufio.Reader, fn func(*LogEntry) error) error {
	var cur *LogEntry
	var pending *Change
	var long []byte // a token longer than br's buffer
	for {
		tok, err := br.ReadSlice(0)
		if err == bufio.ErrBufferFull {
			long = append(long, tok...)
			continue
		}
		if long != nil {
			tok, long = append(long, tok...), nil
		}
		if err == io.EOF && len(tok) == 0 {
			break
		}
		if err != nil && err != io.EOF {
			return err
		}
		tok = bytes.TrimSuffix(tok, []byte{0})
		tok = bytes.TrimLeft(tok, "\n")
		switch {
		case pending != nil:
			pending.Path = string(tok)
			cur.Changes = append(cur.Changes, *pending)
			pending = nil
		case len(tok) > 0 && tok[0] == 1:
			if cur != nil {
				if err := fn(cur); err != nil {
					return err
				}
			}
			ids, ts, _ := bytes.Cut(tok[1:], []byte{2})
			f := strings.Fields(string(ids))
			if len(f) == 0 {
				return fmt.Errorf("git log: bad commit header %q", tok)
			}
			t, _ := strconv.ParseInt(string(bytes.TrimSpace(ts)), 10, 64)
			cur = &LogEntry{ID: f[0], Parents: f[1:], Time: t}
		case len(tok) > 0 && tok[0] == ':':
			f := bytes.Fields(tok[1:])
			if len(f) != 5 || cur == nil || len(f[4]) == 0 {
				return fmt.Errorf("git log: bad raw line %q", tok)
			}
			pending = &Change{OldMode: logMode(f[0]), NewMode: logMode(f[1]), OldID: logID(f[2]), NewID: logID(f[3]), Status: f[4][0]}
		case len(tok) == 0:
		default:
			return fmt.Errorf("git log: unexpected token %q", tok)
		}
		if err == io.EOF {
			break
		}
	}
	if cur != nil {
		return fn(cur)
	}
	return nil
}

// logMode returns a mode of a raw line as a string, the common ones
// without allocating.
func logMode(b []byte) string {
	for _, m := range [...]string{"100644", "000000", "040000", "100755", "120000", "160000"} {
		if string(b) == m {
			return m
		}
	}
	return string(b)
}

var zeroIDs = [...]string{strings.Repeat("0", 40), strings.Repeat("0", 64)}

// logID returns an id of a raw line as a string, the all-zero id of an
// absent side without allocating.
func logID(b []byte) string {
	for _, z := range zeroIDs {
		if string(b) == z {
			return z
		}
	}
	return string(b)
}
