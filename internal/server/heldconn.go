package server

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A response goes to the client in as few writes as it can. net/http
// writes a response through a 4 KiB buffer: a tile of 8 KiB, or an
// entry bundle of 50 KiB, leaves it in two writes (the buffer's 4 KiB,
// headers first, then the rest), each a trip through the kernel's TCP
// stack and a wakeup of the client, which is most of what a small
// response costs. While a handler runs, its connection holds what is
// written to it (up to holdMax bytes, in writes of up to holdCopy) and
// sends it with the next larger write, as one writev, or when the
// handler returns or flushes (limit).

// holdMax is the most a connection holds of a response: a write that
// would hold more goes out at once, with what was held.
const holdMax = 16 << 10

// holdCopy is the largest write a connection copies to hold it (the
// size of net/http's buffer): a larger one goes out at once, with what
// was held, in one writev that copies neither.
const holdCopy = 4 << 10

// servedConn is c as net/http serves it: a *heldConn (the fast path
// hands its connections over so too).
func servedConn(c net.Conn) *heldConn {
	return &heldConn{Conn: c, served: true}
}

// heldConn is a server's connection that can hold a response's writes
// (hold) and send them together (release). It is used by one goroutine
// at a time, as net/http's HTTP/1 connections are: the one that serves
// the request, which also runs its handler. Deadlines, reads and close
// are the connection's own; nothing is held once the handler has
// returned, so a close from another goroutine (a shutdown of idle
// connections) finds nothing to send.
type heldConn struct {
	net.Conn

	wmu     sync.Mutex // guards the write deadline
	wwant   int64      // the write deadline set last (Unix nanoseconds, 0: none)
	wset    int64      // the write deadline the connection has
	writing bool       // a write is in progress

	rmu     sync.Mutex // guards the read deadline and the background read
	rwant   int64      // the read deadline set last (Unix nanoseconds, 0: none)
	rset    int64      // the read deadline the connection has
	reading bool       // a Read is in progress
	served  bool       // net/http serves it (servedConn): its background reads may wait
	phase   readPhase  // where the connection is in its request (lazyReads)
	parked  bool       // a background Read waits on wake
	wake    chan struct{}
	closed  bool

	paces    *time.Timer          // the timer of its responses' paces, made once (paceTimer)
	pacing   atomic.Pointer[pace] // the pace paces checks
	pacesDue atomic.Bool          // paces is armed and has not fired yet (armPaces)

	holding bool
	held    *[]byte     // what is held, from heldBufs; nil when nothing is
	bufs    net.Buffers // the writev of held and the write that follows it, in vec
	vec     [2][]byte   // bufs' array: a writev takes (consumes) its slice, not this
}

var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, holdMax); return &b }}

// hold starts holding writes, until release.
func (c *heldConn) hold() { c.holding = true }

// holds says whether any byte is held.
func (c *heldConn) holds() bool { return c.held != nil && len(*c.held) > 0 }

// release stops holding and sends what was held, in one write.
func (c *heldConn) release() error {
	c.holding = false
	if c.held == nil {
		return nil
	}
	b := c.held
	c.held = nil
	var err error
	if len(*b) > 0 {
		_, err = c.write(*b)
	}
	*b = (*b)[:0]
	heldBufs.Put(b)
	return err
}

func (c *heldConn) Write(p []byte) (int, error) {
	if !c.holding {
		return c.write(p)
	}
	if c.held == nil {
		if len(p) > holdMax {
			return c.write(p)
		}
		c.held = heldBufs.Get().(*[]byte)
	}
	b := *c.held
	if len(p) <= holdCopy && len(b)+len(p) <= holdMax {
		*c.held = append(b, p...)
		return len(p), nil
	}
	// What was held and p, in one writev (p is not copied); then nothing
	// is held.
	c.vec = [2][]byte{b, p}
	c.bufs = c.vec[:]
	var n int64
	err := c.beginWrite()
	if err == nil {
		n, err = c.bufs.WriteTo(c.Conn)
		c.endWrite()
	}
	c.bufs, c.vec = nil, [2][]byte{}
	*c.held = b[:0]
	if n < int64(len(b)) {
		if err == nil {
			err = io.ErrShortWrite
		}
		return 0, err
	}
	return int(n - int64(len(b))), err
}

// ReadFrom keeps sendfile (net/http sends a file's body with the
// connection's ReadFrom, its headers written before): what is held goes
// out first.
func (c *heldConn) ReadFrom(src io.Reader) (int64, error) {
	if err := c.release(); err != nil {
		return 0, err
	}
	if err := c.beginWrite(); err != nil {
		return 0, err
	}
	defer c.endWrite()
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, src)
}

// write writes p to the connection, under the write deadline set last.
func (c *heldConn) write(p []byte) (int, error) {
	if err := c.beginWrite(); err != nil {
		return 0, err
	}
	defer c.endWrite()
	return c.Conn.Write(p)
}

// CloseWrite half-closes the connection, as net/http does before it
// closes one it refused a request on (its handler has returned: nothing
// is held).
func (c *heldConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// NetConn returns the connection held (connQueues asks it).
func (c *heldConn) NetConn() net.Conn { return c.Conn }

// net/http sets a connection's deadlines several times a request, each a
// change of a timer in the runtime, and most are undone before anything
// is read or written: the read deadline for its header timeout, its idle
// timeout, its background read and the end of it; the write deadline
// cleared after each response, before the next request sets its own. A
// heldConn gives the connection the deadline set last only when a Read
// or a write begins (or at once, if one is in progress): what a Read or
// a write sees is the same.
//
// While a request without a body is served, net/http keeps a Read of
// one byte in progress on its connection (its background read), to see
// the client close the connection or send its next request, and ends it
// when the handler has returned (a read deadline in the past). That Read
// costs a system call, and its end two changes of the read deadline, on
// every request; most handlers answer at once and never look. A
// heldConn holds the background read of a request without a body (it
// waits, without reading) until the request's handler asks whether the
// request is over (its context's Done or Err: deadlineCtx), and then
// reads: a handler that waits on its client sees it go as it would
// otherwise. A request's bytes that arrive meanwhile (pipelined) wait in
// the kernel and are read with the next request. Nothing else reads one
// byte from a held connection: no handler of this server hijacks its
// connection.

// readPhase is where a connection is in its request, as far as its
// background read goes.
type readPhase uint8

const (
	// phaseIdle: between requests (or in one that is over): a Read
	// reads. A Read that brings bytes begins a request.
	phaseIdle readPhase = iota
	// phaseAsked: a request's bytes arrived, its handler has not begun
	// (limit): a background read waits, until the handler says whether
	// it may.
	phaseAsked
	// phaseLazy: the handler of a request without a body runs and has
	// not asked whether its request is over: a background read waits.
	phaseLazy
	// phaseReading: the handler runs, with a body or having asked: a
	// Read reads.
	phaseReading
)

// lazyReads says the request being served has no body: its background
// read may wait until the handler asks (readsNow). It ends with
// doneReads.
func (c *heldConn) lazyReads() {
	c.rmu.Lock()
	if c.phase == phaseAsked {
		c.phase = phaseLazy
	}
	c.rmu.Unlock()
}

// readsNow makes the background read of the request being served read,
// and every Read until the request is over: its handler has a body to
// read, or looks for its client's leaving.
func (c *heldConn) readsNow() {
	c.rmu.Lock()
	if c.phase != phaseIdle {
		c.phase = phaseReading
	}
	c.wakeLocked()
	c.rmu.Unlock()
}

// doneReads says the request's handler has returned. A background read
// that waits, or begins, goes on waiting, for net/http's end of it (a
// read deadline in the past), which comes next; the Read of the next
// request's bytes reads.
func (c *heldConn) doneReads() {
	c.rmu.Lock()
	if c.phase != phaseLazy {
		c.phase = phaseIdle
	}
	c.rmu.Unlock()
}

// wakeLocked wakes the background read waiting, if one is; rmu is held.
func (c *heldConn) wakeLocked() {
	if c.parked {
		c.parked = false
		c.wake <- struct{}{}
	}
}

// SetReadDeadline sets the read deadline of the Reads in progress and
// of those that begin after it.
func (c *heldConn) SetReadDeadline(t time.Time) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rwant = unixNano(t)
	if c.parked {
		c.wakeLocked() // to end, or read under the new deadline
		return nil
	}
	if c.reading {
		return c.applyRead()
	}
	return nil
}

// applyRead gives the connection the read deadline last set; rmu is
// held.
func (c *heldConn) applyRead() error {
	if c.rwant == c.rset {
		return nil
	}
	var t time.Time
	if c.rwant != 0 {
		t = time.Unix(0, c.rwant)
	}
	err := c.Conn.SetReadDeadline(t)
	if err == nil {
		c.rset = c.rwant
	}
	return err
}

func (c *heldConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	if len(p) == 1 && c.rwant == 0 && (c.phase == phaseAsked || c.phase == phaseLazy) {
		// net/http's background read, of a request that may not need
		// it. (A Read of a request's headers has the header timeout as
		// its deadline, never none: it reads.)
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		c.parked = true
		for c.parked && !c.closed {
			c.rmu.Unlock()
			<-c.wake
			c.rmu.Lock()
		}
		c.parked = false
		if c.closed {
			c.rmu.Unlock()
			return 0, c.readError(net.ErrClosed)
		}
		if c.rwant != 0 && (c.rwant < longPast || c.rwant <= time.Now().UnixNano()) {
			// Ended (or cut): as the Read would have ended.
			c.rmu.Unlock()
			return 0, errReadPast
		}
	}
	if c.rwant != c.rset && c.rwant != 0 && c.rwant < longPast {
		// Past its deadline (net/http's end of a background read, or a
		// cut, long ago): the connection would end the Read before
		// reading.
		c.rmu.Unlock()
		return 0, errReadPast
	}
	c.reading = true
	err := c.applyRead()
	c.rmu.Unlock()
	if err != nil {
		c.rmu.Lock()
		c.reading = false
		c.rmu.Unlock()
		return 0, err
	}
	n, err := c.Conn.Read(p)
	c.rmu.Lock()
	c.reading = false
	if n > 0 && (c.phase == phaseIdle || c.phase == phaseLazy) && c.served {
		c.phase = phaseAsked // a request's bytes: its handler decides
	}
	c.rmu.Unlock()
	return n, err
}

// longPast is a time before any deadline this process sets for its
// time: one before it is a deadline set in the past (net/http's
// aLongTimeAgo, longAgo), known without asking the clock.
var longPast = time.Now().UnixNano()

// paceTimer returns the connection's timer for p, the pace of the
// response of the request it serves now (armed with armPaces). A
// connection serves one request at a time, so one timer serves the
// paces of all its responses in turn, made once rather than with each.
// A tick meant for the pace before p that fires as p begins checks p,
// which then counts its own wait alone.
func (c *heldConn) paceTimer(p *pace) *time.Timer {
	c.pacing.Store(p)
	if c.paces == nil {
		c.paces = time.AfterFunc(time.Hour, func() {
			c.pacesDue.Store(false)
			if p := c.pacing.Load(); p != nil {
				p.check()
			}
		})
		c.paces.Stop()
	}
	return c.paces
}

// armPaces arms the connection's pace timer to fire in d, unless it is
// armed already (for a pace before, or this one): it then fires sooner,
// and the pace it checks, which charges only the wait it saw, is armed
// again from there. A response's pace is not stopped when it ends
// either: the timer fires once, finds it stopped, and is left unarmed.
// So the requests of a busy connection cost no change of a timer each,
// and its timer fires at most once a tick.
func (c *heldConn) armPaces(d time.Duration) {
	if !c.pacesDue.Swap(true) {
		c.paces.Reset(d)
	}
}

// errReadPast is the error of a Read begun after its deadline.
var errReadPast = &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}

// readError is the error of a Read that the connection did not begin,
// as the connection's own Read would return it.
func (c *heldConn) readError(err error) error {
	return &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Close closes the connection, and ends a background read waiting.
func (c *heldConn) Close() error {
	c.rmu.Lock()
	c.closed = true
	c.wakeLocked()
	c.rmu.Unlock()
	return c.Conn.Close()
}

// SetWriteDeadline sets the write deadline of the write in progress and
// of those that begin after it.
func (c *heldConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wwant = unixNano(t)
	if c.writing {
		return c.applyWrite()
	}
	return nil
}

// applyWrite gives the connection the write deadline last set; wmu is
// held.
func (c *heldConn) applyWrite() error {
	if c.wwant == c.wset {
		return nil
	}
	var t time.Time
	if c.wwant != 0 {
		t = time.Unix(0, c.wwant)
	}
	err := c.Conn.SetWriteDeadline(t)
	if err == nil {
		c.wset = c.wwant
	}
	return err
}

// beginWrite begins a write, under the write deadline set last; endWrite
// ends it.
func (c *heldConn) beginWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.applyWrite(); err != nil {
		return err
	}
	c.writing = true
	return nil
}

func (c *heldConn) endWrite() {
	c.wmu.Lock()
	c.writing = false
	c.wmu.Unlock()
}

// SetDeadline sets both deadlines.
func (c *heldConn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// keepWriteDeadline says whether the write deadline the connection has
// is t or less than slack before it, and if it is, sets it again (in
// place of the one set since, by net/http between requests, which was
// never given to the connection): a request's deadline that the one of
// the request before it on the connection stands for, without a change
// of a timer in the runtime per request.
func (c *heldConn) keepWriteDeadline(t time.Time, slack time.Duration) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wset == 0 {
		return false
	}
	d := unixNano(t) - c.wset
	if d < 0 || d >= int64(slack) {
		return false
	}
	c.wwant = c.wset
	return true
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
