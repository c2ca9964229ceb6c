package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// gitProcess runs `git http-backend` for each request, as a CGI program
// that start prepares (Server.gitBackend) for the request's environment,
// with what net/http/cgi's Handler cannot do:
//
//   - at most cap(slots) processes at once; a request that finds none
//     free within GitWait is answered 503 with Retry-After;
//   - each in a process group of its own, killed whole when the request
//     ends, is cut (its body too slow) or goes over maxPush, so that no
//     git process outlives its request;
//   - chunked request bodies (git sends a push over 1 MiB chunked);
//   - a push over maxPush is answered in git's own protocol, so that git
//     shows the limit and the flag to the pusher.
type gitProcess struct {
	// start prepares the program, not started, for a request's CGI
	// environment.
	start func(ctx context.Context, env []string) (*exec.Cmd, error)
	// root is the path the program is mounted at ("/index.git").
	root string
	// inherit names what the program takes of the server's environment.
	inherit []string
	// inheritPrefixes are more of it, every variable whose name starts
	// so (an object store's credentials, for the hook to read the blobs).
	inheritPrefixes []string
	slots           slots
	wait            time.Duration
	maxPush         int64
	log             *slog.Logger
}

// ErrPushTooLarge is the error of a push over the server's --max-push.
var ErrPushTooLarge = errors.New("push too large")

func (g *gitProcess) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !gitPath(strings.TrimPrefix(r.URL.Path, strings.TrimRight(g.root, "/"))) {
		// git would refuse it too (it reads nothing outside the
		// repository), with a bare 500 and a process spent.
		httpError(w, http.StatusNotFound, "%s: no such path in the index's git repository", r.URL.Path)
		return
	}
	if !g.slots.acquire(r.Context(), g.wait) {
		w.Header().Set("Retry-After", retryAfter)
		httpError(w, http.StatusServiceUnavailable, "the server is running %d git processes, its limit (cairn serve --max-git): try again in a moment", cap(g.slots))
		return
	}
	defer g.slots.release()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	cmd, err := g.start(ctx, g.env(r))
	if err != nil {
		httpError(w, http.StatusInternalServerError, "git http-backend: %v", err)
		return
	}
	said := &headBuffer{max: 2048}
	cmd.Stderr = said
	ownGroup(cmd)
	cmd.Cancel = func() error { return killGroup(cmd.Process) }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		httpError(w, http.StatusInternalServerError, "git http-backend: %v", err)
		return
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	var stdin io.WriteCloser
	if hasBody {
		if stdin, err = cmd.StdinPipe(); err != nil {
			httpError(w, http.StatusInternalServerError, "git http-backend: %v", err)
			return
		}
	}
	if err := cmd.Start(); err != nil {
		httpError(w, http.StatusInternalServerError, "git http-backend: %v", err)
		return
	}

	// The body goes to git from a goroutine; a body that fails (cut for
	// being slow, over maxPush, the client gone) kills the group.
	feed := &bodyFeed{done: make(chan struct{})}
	if hasBody {
		var body io.Reader = r.Body
		if isReceivePack(r) {
			body = &pushLimit{r: body, max: g.maxPush}
		}
		go feed.run(body, stdin, cancel)
	} else {
		close(feed.done)
	}
	// finish ends the request's processes once git's output has been
	// read to its end (cmd.Wait closes the pipe): what git left behind
	// in its group is killed while git, exited, is not yet reaped, so
	// that the group's id cannot have passed to another process.
	finish := func() {
		awaitExit(cmd.Process)
		killGroup(cmd.Process)
		err := cmd.Wait()
		feed.stop(r.Body, w)
		if err != nil && ctx.Err() == nil {
			// What git said is the reason (a disk full, a repository it
			// cannot read): the operator's to see.
			g.log.Warn("git http-backend failed", "method", r.Method, "path", clip(r.URL.Path, maxEcho), "err", err, "git", strings.TrimSpace(string(said.b)))
		}
	}

	br := bufio.NewReaderSize(stdout, 32<<10)
	code, header, err := readCGIHeader(br)
	if err != nil {
		cancel()
	} else {
		// Nothing is sent before git's first byte of body (or its end):
		// until then an answer of our own (the body's problem) can
		// replace git's.
		br.Peek(1)
	}
	if err != nil || br.Buffered() == 0 || feed.failed() {
		// git is gone or going (its output ended, or it was killed for
		// its body or its header): its input is done with.
		defer finish()
		feed.stop(r.Body, w)
		if g.answerBodyError(w, r, feed.error()) {
			return
		}
		if err != nil {
			httpError(w, http.StatusBadGateway, "git http-backend: %v", err)
			return
		}
		writeHeader(w, code, header)
		io.Copy(w, br) // all of it, before finish reaps git and closes the pipe
		return
	}
	writeHeader(w, code, header)
	if _, err := io.Copy(flushWriter{w}, br); err != nil {
		cancel() // the client is gone or too slow: git goes too
	}
	finish()
}

// flushWriter sends each write at once: git's responses stream, and its
// keepalives (a few bytes while a hook runs or objects are counted) are
// worth nothing held in a buffer.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = http.NewResponseController(f.w).Flush()
	}
	return n, err
}

func writeHeader(w http.ResponseWriter, code int, header http.Header) {
	for k, vv := range header {
		for _, v := range vv {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(code)
}

// answerBodyError answers a request whose body failed, if it did: a push
// over the limit in git's protocol, a body too slow with 408. It reports
// whether it answered.
func (g *gitProcess) answerBodyError(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case errors.Is(err, ErrPushTooLarge):
		msg := fmt.Sprintf("cairn: push of more than %d bytes refused: this server takes pushes up to %d bytes (cairn serve --max-push); push fewer commits at a time, or ask its operator to raise --max-push", g.maxPush, g.maxPush)
		var head []byte
		if pl, ok := pushBody(err); ok {
			head = pl.head
		}
		writePushError(w, head, msg, fmt.Sprintf("push of more than %d bytes, over this server's --max-push", g.maxPush))
		// The client still sends the rest: take it (within the body's
		// rate and a bound), so that git reads the answer rather than a
		// reset connection.
		io.Copy(io.Discard, io.LimitReader(r.Body, g.maxPush))
		return true
	case errors.Is(err, ErrSlowClient):
		w.Header().Set("Connection", "close")
		httpError(w, http.StatusRequestTimeout, "%v", err)
		return true
	}
	return false
}

// writePushError refuses a push in git's own protocol, as receive-pack
// would: the unpack status and an "ng" for each ref pushed (git shows
// "! [remote rejected] REF (REASON)"), with msg on the progress band
// (git shows "remote: MSG") when the client asked for side bands. head
// is the start of the push's body, where its commands are; if they
// cannot be read, an "ERR" packet says msg ("remote error: MSG").
func writePushError(w http.ResponseWriter, head []byte, msg, reason string) {
	w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	refs, caps, ok := pushCommands(head)
	if !ok {
		w.Write(pkt("ERR " + msg))
		http.NewResponseController(w).Flush()
		return
	}
	var status []byte
	status = append(status, pkt("unpack "+reason+"\n")...)
	for _, ref := range refs {
		status = append(status, pkt("ng "+ref+" "+reason+"\n")...)
	}
	status = append(status, "0000"...)
	if !strings.Contains(" "+caps+" ", " side-band-64k ") && !strings.Contains(" "+caps+" ", " side-band ") {
		w.Write(status)
	} else {
		var out []byte
		out = append(out, pkt("\x02"+msg+"\n")...)
		for len(status) > 0 { // side-band: at most 1000 bytes a packet
			n := min(len(status), 995)
			out = append(out, pkt("\x01"+string(status[:n]))...)
			status = status[n:]
		}
		out = append(out, "0000"...)
		w.Write(out)
	}
	http.NewResponseController(w).Flush()
}

// pkt frames a pkt-line.
func pkt(s string) []byte { return fmt.Appendf(nil, "%04x%s", len(s)+4, s) }

// maxRefName bounds the refs pushCommands reads: longer than any path
// git writes a ref to (PATH_MAX), and short enough that the "ng" line
// naming it fits a pkt-line.
const maxRefName = 4096

// pushCommands reads the commands at the start of a push's body: the refs
// it updates and the client's capabilities (after a NUL on the first).
func pushCommands(head []byte) (refs []string, caps string, ok bool) {
	for {
		if len(head) < 4 {
			return nil, "", false
		}
		n, err := strconv.ParseUint(string(head[:4]), 16, 16)
		if err != nil || (n != 0 && n < 4) || int(n) > len(head) {
			return nil, "", false
		}
		if n == 0 {
			return refs, caps, len(refs) > 0
		}
		line := strings.TrimSuffix(string(head[4:n]), "\n")
		head = head[n:]
		if len(refs) == 0 {
			line, caps, _ = strings.Cut(line, "\x00")
		}
		f := strings.Fields(line)
		if len(f) != 3 || len(f[2]) > maxRefName {
			return nil, "", false
		}
		refs = append(refs, f[2])
	}
}

// bodyFeed copies a request body to git.
type bodyFeed struct {
	done    chan struct{}
	mu      sync.Mutex
	err     error // the body's own failure (not git's going away)
	stopped bool
}

func (f *bodyFeed) run(body io.Reader, stdin io.WriteCloser, kill func()) {
	defer close(f.done)
	rd := &readErr{r: body}
	_, err := io.Copy(stdin, rd)
	stdin.Close()
	if rd.err != nil && !errors.Is(rd.err, io.EOF) {
		f.mu.Lock()
		if !f.stopped {
			f.err = rd.err
		}
		f.mu.Unlock()
		kill()
	}
	_ = err // a write error is git gone: its answer says why
}

func (f *bodyFeed) failed() bool {
	select {
	case <-f.done:
		return f.error() != nil
	default:
		return false
	}
}

func (f *bodyFeed) error() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// stop ends the copy once git is gone: a read of the body still blocked
// (git did not want the rest) is released by a deadline now, which then
// is not the body's failure.
func (f *bodyFeed) stop(body io.Reader, w http.ResponseWriter) {
	select {
	case <-f.done:
		return
	default:
	}
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	if a, ok := body.(interface{ abandon() }); ok {
		a.abandon()
	} else {
		http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	<-f.done
}

// readErr remembers its reader's error.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// pushLimit fails a push body past max bytes, with a *pushTooLarge; it
// keeps the body's first bytes, where the push's commands are.
type pushLimit struct {
	r    io.Reader
	max  int64
	n    int64
	head []byte
}

// pushHead is how much of a push's body pushLimit keeps.
const pushHead = 64 << 10

// pushTooLarge is a push body's failure: it went over the limit.
type pushTooLarge struct{ *pushLimit }

func (pushTooLarge) Error() string { return ErrPushTooLarge.Error() }
func (pushTooLarge) Unwrap() error { return ErrPushTooLarge }

func pushBody(err error) (*pushLimit, bool) {
	var e pushTooLarge
	if errors.As(err, &e) {
		return e.pushLimit, true
	}
	return nil, false
}

func (l *pushLimit) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, pushTooLarge{l}
	}
	if int64(len(p)) > l.max+1-l.n {
		p = p[:l.max+1-l.n]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if k := min(n, pushHead-len(l.head)); k > 0 {
		l.head = append(l.head, p[:k]...)
	}
	if l.n > l.max {
		return n, pushTooLarge{l}
	}
	return n, err
}

// readCGIHeader reads a CGI program's header: "Status: 200 OK" and
// header lines, up to a blank line.
func readCGIHeader(br *bufio.Reader) (int, http.Header, error) {
	tp := textproto.NewReader(br)
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return 0, nil, fmt.Errorf("reading its header: %w", err)
	}
	h := http.Header(mh)
	code := http.StatusOK
	if st := h.Get("Status"); st != "" {
		if len(st) < 3 {
			return 0, nil, fmt.Errorf("bad status %q", st)
		}
		if code, err = strconv.Atoi(st[:3]); err != nil {
			return 0, nil, fmt.Errorf("bad status %q", st)
		}
		h.Del("Status")
	}
	return code, h, nil
}

// gitPath says whether path (under the repository's root) is one git
// http-backend could serve: "/"-separated elements, none empty, "." or
// "..", no backslash or NUL.
func gitPath(path string) bool {
	if path == "" {
		return true
	}
	if path[0] != '/' || strings.ContainsAny(path, "\\\x00") {
		return false
	}
	for _, e := range strings.Split(path[1:], "/") {
		if e == "" || e == "." || e == ".." {
			return false
		}
	}
	return true
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	b   []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// env is the CGI environment of a request, as net/http/cgi makes it
// (the program's path, SCRIPT_FILENAME, is the starter's to add).
func (g *gitProcess) env(r *http.Request) []string {
	root := strings.TrimRight(g.root, "/")
	env := []string{
		"SERVER_SOFTWARE=cairn",
		"SERVER_PROTOCOL=HTTP/1.1",
		"HTTP_HOST=" + r.Host,
		"GATEWAY_INTERFACE=CGI/1.1",
		"REQUEST_METHOD=" + r.Method,
		"QUERY_STRING=" + r.URL.RawQuery,
		"REQUEST_URI=" + r.URL.RequestURI(),
		"PATH_INFO=" + strings.TrimPrefix(r.URL.Path, root),
		"SCRIPT_NAME=" + root,
	}
	if ip, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		env = append(env, "REMOTE_ADDR="+ip, "REMOTE_HOST="+ip, "REMOTE_PORT="+port)
	} else {
		env = append(env, "REMOTE_ADDR="+r.RemoteAddr, "REMOTE_HOST="+r.RemoteAddr)
	}
	for k, v := range r.Header {
		k = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - ('a' - 'A')
			case r == '-':
				return '_'
			}
			return r
		}, k)
		if k == "PROXY" || k == "CONTENT_LENGTH" || k == "CONTENT_TYPE" {
			continue
		}
		env = append(env, "HTTP_"+k+"="+strings.Join(v, ", "))
	}
	if r.ContentLength > 0 {
		env = append(env, "CONTENT_LENGTH="+strconv.FormatInt(r.ContentLength, 10))
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		env = append(env, "CONTENT_TYPE="+ct)
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/bin:/usr/bin:/usr/local/bin"
	}
	env = append(env, "PATH="+path)
	for _, e := range g.inherit {
		if v := os.Getenv(e); v != "" {
			env = append(env, e+"="+v)
		}
	}
	if len(g.inheritPrefixes) > 0 {
		for _, kv := range os.Environ() {
			for _, p := range g.inheritPrefixes {
				if strings.HasPrefix(kv, p) {
					env = append(env, kv)
					break
				}
			}
		}
	}
	return env
}
