package server

import (
	"errors"
	"io"
	"net"
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

// heldListener makes each connection it accepts a *heldConn.
type heldListener struct{ net.Listener }

func (l heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &heldConn{Conn: c}, nil
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
	wd atomic.Int64 // the write deadline set last, in Unix nanoseconds (0: none)

	rmu     sync.Mutex // guards the read deadline
	rwant   int64      // the read deadline set last (Unix nanoseconds, 0: none)
	rset    int64      // the read deadline the connection has
	reading bool       // a Read is in progress

	holding bool
	held    *[]byte     // what is held, from heldBufs; nil when nothing is
	bufs    net.Buffers // the writev of held and the write that follows it
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
		_, err = c.Conn.Write(*b)
	}
	*b = (*b)[:0]
	heldBufs.Put(b)
	return err
}

func (c *heldConn) Write(p []byte) (int, error) {
	if !c.holding {
		return c.Conn.Write(p)
	}
	if c.held == nil {
		if len(p) > holdMax {
			return c.Conn.Write(p)
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
	c.bufs = append(c.bufs[:0], b, p)
	n, err := c.bufs.WriteTo(c.Conn)
	c.bufs = c.bufs[:0]
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
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, src)
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

// net/http sets a connection's read deadline six times a request (for
// its header timeout, its idle timeout, its background read and the end
// of it), each a change of a timer in the runtime; most are undone
// before anything is read. A heldConn sets the read deadline on the
// connection when a Read begins (or at once, if one is in progress), to
// the last one set: what a Read sees is the same.

// SetReadDeadline sets the read deadline of the Reads in progress and
// of those that begin after it.
func (c *heldConn) SetReadDeadline(t time.Time) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rwant = unixNano(t)
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
	c.rmu.Unlock()
	return n, err
}

// SetWriteDeadline sets the connection's write deadline, and remembers
// it (writeDeadlineNear).
func (c *heldConn) SetWriteDeadline(t time.Time) error {
	c.wd.Store(unixNano(t))
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (c *heldConn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// writeDeadlineNear says whether the write deadline set last is t or
// less than slack before it: a request's deadline that the one of the
// request before it on the connection stands for, without setting it
// again (a timer's change in the runtime, per request).
func (c *heldConn) writeDeadlineNear(t time.Time, slack time.Duration) bool {
	wd := c.wd.Load()
	if wd == 0 {
		return false
	}
	d := unixNano(t) - wd
	return d >= 0 && d < int64(slack)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
