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

// Reader reads objects through long-lived `git cat-file --batch`
// processes: one, and a second only while two requests are served at
// once (a server's reads use both cores, git's lookups and the handler's
// work). It is safe for concurrent use. Restart makes the next request
// start a fresh git process, and the Reader stays valid for whoever holds
// it; only Close ends it.
type Reader struct {
	repo *Repo
	ctx  context.Context
	sem  chan struct{} // a slot per process that may run

	mu     sync.Mutex
	free   []*catFile // running, idle
	gen    uint64     // Restart's count: a process of an older one is stopped
	closed bool
}

// readerProcs is how many `git cat-file` processes a Reader runs at most.
const readerProcs = 2

// catFile is one `git cat-file --batch` process of a Reader.
type catFile struct {
	in    *bufio.Writer
	out   *bufio.Reader
	close func() error
	gen   uint64
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

// NewReader starts a batch reader. Close it when done. Its git processes
// live as long as ctx.
func (r *Repo) NewReader(ctx context.Context) (*Reader, error) {
	b := &Reader{repo: r, ctx: ctx, sem: make(chan struct{}, readerProcs)}
	p, err := b.start(0)
	if err != nil {
		return nil, err
	}
	b.free = []*catFile{p}
	return b, nil
}

// start starts a git process of generation gen.
func (b *Reader) start(gen uint64) (*catFile, error) {
	stdin, stdout, cmd, err := b.repo.startCatFile(b.ctx, "--batch")
	if err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	return &catFile{
		in:  bufio.NewWriter(stdin),
		out: bufio.NewReaderSize(stdout, 1<<16),
		close: func() error {
			stdin.Close()
			return cmd.Wait()
		},
		gen: gen,
	}, nil
}

// acquire returns a process to serve one request with, alone: an idle
// one of the current generation, else a new one. release gives it back.
func (b *Reader) acquire() (*catFile, error) {
	b.sem <- struct{}{}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.sem
		return nil, fmt.Errorf("git cat-file: reader closed")
	}
	var p *catFile
	if n := len(b.free); n > 0 {
		p, b.free = b.free[n-1], b.free[:n-1]
	}
	gen := b.gen
	b.mu.Unlock()
	if p != nil && p.gen != gen {
		p.close()
		p = nil
	}
	if p == nil {
		var err error
		if p, err = b.start(gen); err != nil {
			<-b.sem
			return nil, err
		}
	}
	return p, nil
}

// release gives back a process acquire returned: kept for the next
// request unless the stream's place was lost (broken), the Reader was
// restarted or closed meanwhile.
func (b *Reader) release(p *catFile, broken bool) {
	b.mu.Lock()
	keep := !broken && !b.closed && p.gen == b.gen
	if keep {
		b.free = append(b.free, p)
	}
	b.mu.Unlock()
	if !keep {
		p.close()
	}
	<-b.sem
}

// Read returns the object named by spec: an id, or "<commit-ish>:<path>".
// A missing object is fs.ErrNotExist.
func (b *Reader) Read(spec string) (*Object, error) {
	if strings.ContainsAny(spec, "\n") {
		return nil, fmt.Errorf("object name %q contains a newline", spec)
	}
	p, err := b.acquire()
	if err != nil {
		return nil, err
	}
	p.in.WriteString(spec)
	p.in.WriteByte('\n')
	if err := p.in.Flush(); err != nil {
		b.release(p, true)
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	o, err := readReply(p.out, spec)
	b.release(p, err != nil && !errors.Is(err, fs.ErrNotExist))
	return o, err
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
// is lost, and a request after it starts a new one.
func (b *Reader) ReadMany(specs []string) ([]*Object, error) {
	for _, spec := range specs {
		if strings.ContainsAny(spec, "\n") {
			return nil, fmt.Errorf("object name %q contains a newline", spec)
		}
	}
	p, err := b.acquire()
	if err != nil {
		return nil, err
	}
	objs := make([]*Object, len(specs))
	var missing error
	for i := 0; i < len(specs); {
		j, n := i, 0
		for j < len(specs) && (j == i || n+len(specs[j])+1 <= readManyBytes) {
			p.in.WriteString(specs[j])
			p.in.WriteByte('\n')
			n += len(specs[j]) + 1
			j++
		}
		if err := p.in.Flush(); err != nil {
			b.release(p, true)
			return nil, fmt.Errorf("git cat-file: %w", err)
		}
		for ; i < j; i++ {
			o, err := readReply(p.out, specs[i])
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if missing == nil {
					missing = err
				}
			case err != nil:
				b.release(p, true)
				return nil, err
			}
			objs[i] = o
		}
	}
	b.release(p, false)
	if missing != nil {
		return nil, missing
	}
	return objs, nil
}

// Restart stops the git processes (each after the request it serves), so
// that the next request starts a new one, which sees the repository as it is
// then (refs moved, objects fetched). Holders of the Reader keep using it.
func (b *Reader) Restart() {
	b.mu.Lock()
	b.gen++
	idle := b.free
	b.free = nil
	b.mu.Unlock()
	for _, p := range idle {
		p.close()
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

// Flush sends the requests made so far. A requester that is about to
// wait on the reader (a full channel between them) flushes first: a
// reader waiting for a reply to a request still in this side's buffer
// would wait for ever.
func (s *Stream) Flush() error { return s.in.Flush() }

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
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	// Wait for the requests being served (their processes are stopped
	// as they end), then stop the idle ones: no git process outlives
	// Close. The slots are given back, for a request that waited on
	// one to find the Reader closed.
	for range readerProcs {
		b.sem <- struct{}{}
	}
	b.mu.Lock()
	idle := b.free
	b.free = nil
	b.mu.Unlock()
	var err error
	for _, p := range idle {
		if e := p.close(); err == nil {
			err = e
		}
	}
	for range readerProcs {
		<-b.sem
	}
	return err
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
