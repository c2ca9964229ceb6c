// Package transport is how cairn reaches other machines: the bounds every
// client keeps, read from the environment in one place, and the
// *http.Client that keeps them.
//
// Two bounds, after curl's and cargo's: a connect timeout (TCP connect
// and TLS handshake), and a stall timeout — a transfer that moves fewer
// than LowSpeed bytes a second over a whole stall window is cut, be it
// waiting for response headers, reading a body or sending an upload. A
// slow but live link is never cut (a 1 GiB blob may take an hour); a
// mirror that trickles a byte a second, or answers nothing, is. git's
// transfers keep the same bounds (GitConfig).
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

// Environment variables that set the bounds (Go durations, like "10s").
const (
	EnvConnect = "CAIRN_CONNECT_TIMEOUT"
	EnvStall   = "CAIRN_STALL_TIMEOUT"
)

// Defaults of the bounds.
const (
	DefaultConnect  = 10 * time.Second
	DefaultStall    = 30 * time.Second
	DefaultLowSpeed = 10 // bytes a second, as cargo's http.low-speed-limit
)

// Timeouts are the bounds a client keeps.
type Timeouts struct {
	// Connect bounds a TCP connect, and a TLS handshake.
	Connect time.Duration
	// Stall is the window over which a transfer must move LowSpeed
	// bytes a second; it also bounds the wait for response headers.
	Stall time.Duration
	// LowSpeed is the slowest transfer, in bytes a second, that is not
	// a stall (at least one byte per window).
	LowSpeed int64
}

// Defaults returns the default bounds.
func Defaults() Timeouts {
	return Timeouts{Connect: DefaultConnect, Stall: DefaultStall, LowSpeed: DefaultLowSpeed}
}

// FromEnv returns the bounds that $CAIRN_CONNECT_TIMEOUT and
// $CAIRN_STALL_TIMEOUT set, the defaults where they are unset; a value
// that is not a positive Go duration is an error that names it.
func FromEnv() (Timeouts, error) {
	t := Defaults()
	for _, v := range []struct {
		env string
		dst *time.Duration
	}{{EnvConnect, &t.Connect}, {EnvStall, &t.Stall}} {
		s := os.Getenv(v.env)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return Defaults(), fmt.Errorf("%s=%q: want a positive duration, like 30s or 2m", v.env, s)
		}
		*v.dst = d
	}
	return t, nil
}

// Current returns the bounds from the environment (FromEnv), the
// defaults for a value that does not parse (the command line refuses
// those before anything runs).
func Current() Timeouts {
	t, _ := FromEnv()
	return t
}

// minBytes is what a stall window must move.
func (t Timeouts) minBytes() int64 {
	return max(1, int64(math.Ceil(float64(t.LowSpeed)*t.Stall.Seconds())))
}

// ErrTimeout is the parent of every error here: a peer that did not
// connect, or stalled.
var ErrTimeout = errors.New("timed out")

// ConnectError says a connection was not made within the connect
// timeout.
type ConnectError struct {
	Addr  string
	Bound time.Duration
	Err   error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connect to %s: no connection within %v (connect timeout, %s)", e.Addr, e.Bound, EnvConnect)
}

// Unwrap returns ErrTimeout and the dialer's error.
func (e *ConnectError) Unwrap() []error { return []error{ErrTimeout, e.Err} }

// Timeout reports true, as a net.Error does.
func (e *ConnectError) Timeout() bool { return true }

// StallError says a transfer stalled: fewer than the low-speed limit's
// bytes moved over a whole stall window.
type StallError struct {
	Method, URL string
	// What stalled: "response headers", "response body", "request body"
	// or "git" (a git transfer).
	Phase string
	Bytes int64 // bytes moved before the stall (of the body in Phase)
	Stall time.Duration
	// LowSpeed is the limit in bytes a second (0: no byte at all).
	LowSpeed int64
}

func (e *StallError) Error() string {
	where := e.URL
	if e.Method != "" {
		where = e.Method + " " + e.URL
	}
	switch e.Phase {
	case "response headers":
		// http.Client.Do names the request around it.
		return fmt.Sprintf("no response headers within %v (stall timeout, %s)", e.Stall, EnvStall)
	case "git":
		return fmt.Sprintf("%s: the transfer stalled: less than %d bytes/s for %v (stall timeout, %s)", where, e.LowSpeed, e.Stall, EnvStall)
	}
	return fmt.Sprintf("%s: the %s stalled after %d bytes: less than %d bytes/s for %v (stall timeout, %s)", where, e.Phase, e.Bytes, e.LowSpeed, e.Stall, EnvStall)
}

// Unwrap returns ErrTimeout.
func (e *StallError) Unwrap() error { return ErrTimeout }

// Timeout reports true, as a net.Error does.
func (e *StallError) Timeout() bool { return true }

var (
	clientsMu sync.Mutex
	clients   = map[Timeouts]*http.Client{}
)

// Client returns the shared client for the current bounds (Current):
// what every cairn client uses unless it is given another.
func Client() *http.Client {
	t := Current()
	clientsMu.Lock()
	defer clientsMu.Unlock()
	c := clients[t]
	if c == nil {
		c = NewClient(t)
		clients[t] = c
	}
	return c
}

// NewClient returns a client that keeps t: the connect timeout on every
// dial and TLS handshake, the stall timeout on response headers, every
// response body and every request body. Proxies come from the
// environment, as for http.DefaultTransport.
func NewClient(t Timeouts) *http.Client {
	if t.Connect <= 0 {
		t.Connect = DefaultConnect
	}
	if t.Stall <= 0 {
		t.Stall = DefaultStall
	}
	if t.LowSpeed < 0 {
		t.LowSpeed = 0
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		var ne net.Error
		if err != nil && ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
			return nil, &ConnectError{Addr: addr, Bound: t.Connect, Err: err}
		}
		return c, err
	}
	base.TLSHandshakeTimeout = t.Connect
	return &http.Client{Transport: &roundTripper{base: base, t: t}}
}

type headerWaitKey struct{}

// WithHeaderWait returns a context whose requests may wait d longer for
// their response headers: a long poll, which the server answers when
// something happens or d has passed.
func WithHeaderWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, headerWaitKey{}, d)
}

// roundTripper watches every request for stalls; a stall cancels the
// request and surfaces as a *StallError.
type roundTripper struct {
	base http.RoundTripper
	t    Timeouts
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	s := &stall{cancel: cancel, t: rt.t, method: req.Method, url: req.URL.Redacted()}
	headerWait, _ := req.Context().Value(headerWaitKey{}).(time.Duration)
	var headers *time.Timer
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.send != nil {
				s.send.stop()
			}
			if headers == nil && s.err == nil {
				headers = time.AfterFunc(rt.t.Stall+headerWait, func() {
					s.mu.Lock()
					late := s.answered
					s.mu.Unlock()
					if !late {
						s.fail(&StallError{URL: s.url, Method: s.method, Phase: "response headers", Stall: rt.t.Stall + headerWait})
					}
				})
			}
		},
	})
	out := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		s.send = s.meter("request body")
		out.Body = &sendBody{body: req.Body, m: s.send}
	}
	resp, err := rt.base.RoundTrip(out)
	s.mu.Lock()
	s.answered = true // a header timer that fires from now on is too late
	if headers != nil {
		headers.Stop()
	}
	stalled := s.err
	s.mu.Unlock()
	if err != nil {
		cancel(nil)
		if stalled != nil {
			return nil, stalled
		}
		return nil, err
	}
	if stalled != nil {
		// The headers came as the bound passed: the request is already
		// cancelled, so its body cannot be read. Say so here, where the
		// client names the request, not at the body's first read.
		resp.Body.Close()
		return nil, stalled
	}
	resp.Body = &recvBody{body: resp.Body, m: s.meter("response body"), cancel: cancel}
	return resp, nil
}

// stall is one request's watch.
type stall struct {
	cancel      context.CancelCauseFunc
	t           Timeouts
	method, url string

	mu       sync.Mutex
	err      *StallError // the first stall, once there is one
	answered bool        // the response headers are in: a header timer firing now is too late
	send     *meter      // the request body's, stopped once it is written
}

// fail records a stall and cancels the request.
func (s *stall) fail(e *StallError) {
	s.mu.Lock()
	if s.err == nil {
		s.err = e
	}
	e = s.err
	s.mu.Unlock()
	s.cancel(e)
}

func (s *stall) stalled() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil // a plain *StallError(nil) would not be a nil error
	}
	return s.err
}

func (s *stall) meter(phase string) *meter {
	return &meter{s: s, phase: phase, min: s.t.minBytes()}
}

// meter measures one direction of a transfer: the time spent waiting on
// the peer (inside a body's Read for a response, between the transport's
// Reads for an upload — never the time the caller or the source takes)
// against the bytes moved. A window of Stall waiting that moved fewer
// than min bytes is a stall.
type meter struct {
	s     *stall
	phase string
	min   int64

	mu      sync.Mutex
	timer   *time.Timer
	since   time.Time     // when the current wait began; zero when not waiting
	waited  time.Duration // waiting in the current window
	got     int64         // bytes in the current window
	total   int64
	stopped bool
}

// wait starts a wait on the peer.
func (m *meter) wait() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.since = time.Now()
	d := m.s.t.Stall - m.waited
	if m.timer == nil {
		m.timer = time.AfterFunc(d, m.expire)
	} else {
		m.timer.Reset(d)
	}
}

// moved ends a wait that moved n bytes; it returns the stall, if the
// window just closed is one.
func (m *meter) moved(n int) error {
	m.mu.Lock()
	if m.timer != nil {
		m.timer.Stop()
	}
	if !m.since.IsZero() {
		m.waited += time.Since(m.since)
		m.since = time.Time{}
	}
	m.got += int64(n)
	m.total += int64(n)
	e := m.closeWindow()
	m.mu.Unlock()
	if e != nil {
		m.s.fail(e)
	}
	return m.s.stalled()
}

// expire fires when a wait has filled the window.
func (m *meter) expire() {
	m.mu.Lock()
	if m.since.IsZero() || m.stopped {
		m.mu.Unlock()
		return
	}
	now := time.Now()
	m.waited += now.Sub(m.since)
	m.since = now
	e := m.closeWindow()
	if e == nil && !m.stopped {
		m.timer.Reset(m.s.t.Stall - m.waited)
	}
	m.mu.Unlock()
	if e != nil {
		m.s.fail(e)
	}
}

// closeWindow judges a full window (m.mu held) and starts the next.
func (m *meter) closeWindow() *StallError {
	if m.waited < m.s.t.Stall {
		return nil
	}
	if m.got < m.min {
		m.stopped = true
		return &StallError{Method: m.s.method, URL: m.s.url, Phase: m.phase, Bytes: m.total, Stall: m.s.t.Stall, LowSpeed: m.s.t.LowSpeed}
	}
	m.waited, m.got = 0, 0
	return nil
}

func (m *meter) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	if m.timer != nil {
		m.timer.Stop()
	}
}

// recvBody is a response body under watch.
type recvBody struct {
	body   io.ReadCloser
	m      *meter
	cancel context.CancelCauseFunc
}

func (b *recvBody) Read(p []byte) (int, error) {
	if err := b.m.s.stalled(); err != nil {
		return 0, err
	}
	b.m.wait()
	n, err := b.body.Read(p)
	if serr := b.m.moved(n); serr != nil {
		return n, serr
	}
	return n, err
}

func (b *recvBody) Close() error {
	b.m.stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}

// sendBody is a request body under watch: the time between the
// transport's Reads is the time it waits for the peer to take bytes.
type sendBody struct {
	body io.ReadCloser
	m    *meter
}

func (b *sendBody) Read(p []byte) (int, error) {
	if err := b.m.s.stalled(); err != nil {
		return 0, err
	}
	b.m.moved(0) // the wait on the peer ends while the source is read
	n, err := b.body.Read(p)
	b.m.mu.Lock()
	b.m.got += int64(n)
	b.m.total += int64(n)
	b.m.mu.Unlock()
	if err != nil {
		b.m.stop() // all sent: the header timeout takes over
		return n, err
	}
	b.m.wait()
	return n, nil
}

func (b *sendBody) Close() error {
	b.m.stop()
	return b.body.Close()
}

// GitConfig returns the -c options that make git keep t's stall window
// on HTTP transfers: http.lowSpeedTime (whole seconds, rounded up), with
// http.lowSpeedLimit at GitLowSpeed, one byte a second, whatever t's
// LowSpeed. git has no connect timeout; see Probe.
//
// A git server is quiet but for keepalives (a 5-byte packet every
// receive.keepAlive or uploadpack.keepAlive seconds, 5 by default) while
// it counts objects or runs a pre-receive hook, however honest: a byte a
// second lets those keepalives hold a transfer open (cairn serve sends
// one every second), and a server that sends nothing at all for a whole
// window is cut, as any stall.
func GitConfig(t Timeouts) []string {
	return []string{
		"-c", "http.lowSpeedLimit=" + strconv.Itoa(GitLowSpeed),
		"-c", "http.lowSpeedTime=" + strconv.FormatInt(int64(GitStall(t)/time.Second), 10),
	}
}

// GitLowSpeed is the low-speed limit, in bytes a second, that git
// transfers keep (GitConfig): low enough that a server's keepalives
// count as progress.
const GitLowSpeed = 1

// GitStall is the stall window git keeps for t: whole seconds, rounded up.
func GitStall(t Timeouts) time.Duration {
	return time.Duration(max(1, int64(math.Ceil(t.Stall.Seconds())))) * time.Second
}

// Probe dials the host of an http(s) URL (or the proxy the environment
// names for it) within t.Connect, and hangs up: git has no connect
// timeout of its own (curl's is 300 s, and its low-speed limit starts
// only once connected), so a git transfer is preceded by a probe. It
// returns a *ConnectError when the connection is not made in time, and
// nil otherwise — a refused connection is left for git to report.
func Probe(ctx context.Context, rawURL string, t Timeouts) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil
	}
	target := u
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p != nil {
		target = p
	}
	port := target.Port()
	if port == "" {
		port = "80"
		if target.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(target.Hostname(), port)
	d := &net.Dialer{Timeout: t.Connect}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		return nil
	}
	var ne net.Error
	if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
		return &ConnectError{Addr: addr, Bound: t.Connect, Err: err}
	}
	return nil
}
