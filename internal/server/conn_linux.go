package server

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// connQueues returns how to ask the kernel, for the TCP connection c, how
// many bytes it holds that the client has not taken (out: written by the
// server, not yet acknowledged) and that the client sent and the server
// has not read yet (in); nil if c is not such a connection.
func connQueues(c net.Conn) func() (out, in int, ok bool) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // TLS
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() (out, in int, ok bool) {
		var errOut, errIn error
		err := raw.Control(func(fd uintptr) {
			out, errOut = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
			in, errIn = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		})
		return out, in, err == nil && errOut == nil && errIn == nil
	}
}
