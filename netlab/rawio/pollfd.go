//go:build linux && go1.26 && !go1.27

package rawio

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The accept path's connections (accept.go) are sockets registered with the Go runtime's
// network poller directly, without net's netFD: net's accept makes a getsockname(2) and a
// setsockopt(2) (TCP_NODELAY) per connection and sets a finalizer, and its close goes
// through the runtime's blocking system-call path. The poller's entry points are the ones
// the runtime exports to internal/poll by name (go:linkname on their definitions); their
// signatures are those of internal/poll/fd_poll_runtime.go. They are an internal detail of
// the runtime, so this file builds only with the Go release it was checked against (1.26):
// with any other, pollfd_other.go leaves the accept path to net (ownAccept is false), and
// nothing else changes. A new release is checked by reading fd_poll_runtime.go again and
// running this package's tests, then widening the build constraint.

//go:linkname runtime_pollServerInit internal/poll.runtime_pollServerInit
func runtime_pollServerInit()

//go:linkname runtime_pollOpen internal/poll.runtime_pollOpen
func runtime_pollOpen(fd uintptr) (uintptr, int)

//go:linkname runtime_pollClose internal/poll.runtime_pollClose
func runtime_pollClose(ctx uintptr)

//go:linkname runtime_pollWait internal/poll.runtime_pollWait
func runtime_pollWait(ctx uintptr, mode int) int

//go:linkname runtime_pollReset internal/poll.runtime_pollReset
func runtime_pollReset(ctx uintptr, mode int) int

//go:linkname runtime_pollSetDeadline internal/poll.runtime_pollSetDeadline
func runtime_pollSetDeadline(ctx uintptr, d int64, mode int)

//go:linkname runtime_pollUnblock internal/poll.runtime_pollUnblock
func runtime_pollUnblock(ctx uintptr)

const ownAccept = true

// The runtime's answers (internal/poll's pollNoError ... pollErrNotPollable).
const (
	pollErrClosing     = 1
	pollErrTimeout     = 2
	pollErrNotPollable = 3
)

var pollInit sync.Once

func pollErr(res int) error {
	switch res {
	case 0:
		return nil
	case pollErrClosing:
		return net.ErrClosed
	case pollErrTimeout:
		return os.ErrDeadlineExceeded
	case pollErrNotPollable:
		return syscall.EBADF
	}
	return syscall.EINVAL
}

// fdConn is an accepted TCP socket (non-blocking, close-on-exec) served by the runtime's
// poller. It is registered with the poller (epoll_ctl ADD) only when a call first finds it
// not ready (EAGAIN): a connection whose request is there at the accept and whose answer
// fits the socket's buffer never is, and its close then needs no epoll_ctl DEL either.
// Deadlines set before the registration are kept here and checked before each call (a
// passed one fails it, as net's does), and handed to the poller when it registers. They
// are kept on the monotonic clock (as net turns a deadline into a duration with t.Sub,
// which reads it), so that a step of the wall clock neither stretches nor shortens them.
//
// Its methods are syscall.RawConn's (Control, Read, Write: the functions given get the
// descriptor) and net.Conn's addresses, deadlines and Close; rawConn makes the reads and
// writes. As net's netFD: readers are served one at a time, writers too; Close wakes
// waiting calls, and the descriptor is closed when the last call using it has returned,
// so that a call never meets a descriptor number reused by another connection.
type fdConn struct {
	fd    int
	state atomic.Uint64  // closedBit | number of references (1 for being open, +1 per call)
	pd    atomic.Uintptr // the poller's descriptor; 0 until registered
	mu    sync.Mutex     // registration, deadlines, the local address
	rdl   atomic.Int64   // read deadline (monoDeadline; 0 none), for the time before registration
	wdl   atomic.Int64   // write deadline
	rmu   sync.Mutex     // one reader at a time (the poller allows one waiter per mode)
	wmu   sync.Mutex     // one writer at a time
	raddr net.Addr
	laddr net.Addr // from getsockname(2), made when asked
	lport int      // the listener's port: the connection's local port
}

const closedBit = 1 << 63

func newFdConn(fd int, raddr net.Addr, lport int) *fdConn {
	c := &fdConn{fd: fd, raddr: raddr, lport: lport}
	c.state.Store(1)
	return c
}

// incref takes a reference for a call; net.ErrClosed once Close was called.
func (c *fdConn) incref() error {
	for {
		v := c.state.Load()
		if v&closedBit != 0 {
			return net.ErrClosed
		}
		if c.state.CompareAndSwap(v, v+1) {
			return nil
		}
	}
}

// decref drops a reference; the last one after Close closes the descriptor.
func (c *fdConn) decref() {
	if c.state.Add(^uint64(0)) == closedBit {
		c.destroy()
	}
}

func (c *fdConn) destroy() {
	if pd := c.pd.Load(); pd != 0 {
		runtime_pollClose(pd)
	}
	// close(2) of a socket without SO_LINGER does not block: a raw call.
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(c.fd), 0, 0)
}

// Close wakes the calls waiting on the connection; the descriptor is closed once they
// have returned (at once when none runs).
func (c *fdConn) Close() error {
	c.mu.Lock()
	for {
		v := c.state.Load()
		if v&closedBit != 0 {
			c.mu.Unlock()
			return net.ErrClosed
		}
		if c.state.CompareAndSwap(v, v|closedBit) {
			break
		}
	}
	pd := c.pd.Load()
	c.mu.Unlock()
	if pd != 0 {
		runtime_pollUnblock(pd)
	}
	c.decref() // the reference of being open
	return nil
}

// register adds the socket to the poller (once) with the deadlines set so far.
func (c *fdConn) register() (uintptr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pd := c.pd.Load(); pd != 0 {
		return pd, nil
	}
	if c.state.Load()&closedBit != 0 {
		return 0, net.ErrClosed
	}
	pollInit.Do(runtime_pollServerInit)
	pd, errno := runtime_pollOpen(uintptr(c.fd))
	if errno != 0 {
		return 0, os.NewSyscallError("epoll_ctl", syscall.Errno(errno))
	}
	now := monoNow(time.Now())
	if d := c.rdl.Load(); d != 0 {
		runtime_pollSetDeadline(pd, relDeadline(d, now), 'r')
	}
	if d := c.wdl.Load(); d != 0 {
		runtime_pollSetDeadline(pd, relDeadline(d, now), 'w')
	}
	c.pd.Store(pd)
	return pd, nil
}

// monoBase is the origin of the stored deadlines: a time with the monotonic clock's
// reading, so that durations from it (Sub) are read on that clock.
var monoBase = time.Now()

// monoNow is now as nanoseconds since monoBase on the monotonic clock (now must carry
// its monotonic reading, as time.Now's does).
func monoNow(now time.Time) int64 { return int64(now.Sub(monoBase)) }

// monoDeadline is the deadline t (not zero) as nanoseconds since monoBase on the
// monotonic clock, reckoned from now: as net's t.Sub(now), a t with a monotonic reading
// (time.Now().Add(d)) is measured on that clock, one without (time.Unix, Round(0)) by
// the wall clock as it reads now. A deadline at or before monoBase is stored as -1
// (passed; 0 means none).
func monoDeadline(t, now time.Time) int64 {
	left := int64(t.Sub(now)) // saturated at ±292 years
	d := monoNow(now) + left
	switch {
	case left > 0 && d < 0: // a far deadline overflowed
		return 1<<63 - 1
	case d <= 0:
		return -1
	}
	return d
}

// relDeadline is what the poller takes: the time left from now (monoNow) to the stored
// deadline d (a passed deadline: -1; 0 would mean none).
func relDeadline(d, now int64) int64 {
	if left := d - now; left > 0 {
		return left
	}
	return -1
}

// passed says whether the stored deadline d (monoDeadline, 0 none) has passed.
func passed(d int64) bool {
	return d != 0 && monoNow(time.Now()) >= d
}

// Control runs f with the descriptor.
func (c *fdConn) Control(f func(fd uintptr)) error {
	if err := c.incref(); err != nil {
		return err
	}
	f(uintptr(c.fd))
	c.decref()
	return nil
}

// Read calls f until it returns true, waiting in the poller for input (or the deadline)
// each time it returns false; as syscall.RawConn's Read.
func (c *fdConn) Read(f func(fd uintptr) bool) error {
	return c.wait(f, 'r', &c.rmu, &c.rdl)
}

// Write is Read for output.
func (c *fdConn) Write(f func(fd uintptr) bool) error {
	return c.wait(f, 'w', &c.wmu, &c.wdl)
}

func (c *fdConn) wait(f func(fd uintptr) bool, mode int, mu *sync.Mutex, dl *atomic.Int64) error {
	if err := c.incref(); err != nil {
		return err
	}
	mu.Lock()
	err := c.waitLocked(f, mode, dl)
	mu.Unlock()
	c.decref()
	return err
}

func (c *fdConn) waitLocked(f func(fd uintptr) bool, mode int, dl *atomic.Int64) error {
	fd := uintptr(c.fd)
	pd := c.pd.Load()
	if pd == 0 {
		if passed(dl.Load()) {
			return os.ErrDeadlineExceeded
		}
		if f(fd) {
			return nil
		}
		var err error
		if pd, err = c.register(); err != nil {
			return err
		}
		// Readiness that came after f's try is reported by the registration itself
		// (epoll_ctl ADD looks at the socket): wait first.
	} else {
		if err := pollErr(runtime_pollReset(pd, mode)); err != nil {
			return err
		}
		if f(fd) {
			return nil
		}
	}
	for {
		if err := pollErr(runtime_pollWait(pd, mode)); err != nil {
			return err
		}
		if f(fd) {
			return nil
		}
	}
}

func (c *fdConn) setDeadline(t time.Time, r, w bool) error {
	if err := c.incref(); err != nil {
		return err
	}
	defer c.decref()
	var d int64
	if !t.IsZero() {
		d = monoDeadline(t, time.Now())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r {
		c.rdl.Store(d)
	}
	if w {
		c.wdl.Store(d)
	}
	if pd := c.pd.Load(); pd != 0 {
		var rel int64
		if !t.IsZero() {
			if rel = int64(time.Until(t)); rel == 0 {
				rel = -1
			}
		}
		mode := 0
		if r {
			mode += 'r'
		}
		if w {
			mode += 'w'
		}
		runtime_pollSetDeadline(pd, rel, mode)
	}
	return nil
}

func (c *fdConn) SetDeadline(t time.Time) error      { return c.setDeadline(t, true, true) }
func (c *fdConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(t, true, false) }
func (c *fdConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

func (c *fdConn) RemoteAddr() net.Addr { return c.raddr }

// LocalPort is the connection's local port (the listener's), known without a system call.
func (c *fdConn) LocalPort() int { return c.lport }

// LocalAddr is the connection's own address, from getsockname(2) at the first call.
func (c *fdConn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.laddr != nil {
		return c.laddr
	}
	var rsa syscall.RawSockaddrAny
	n := uint32(syscall.SizeofSockaddrAny)
	err := c.Control(func(fd uintptr) {
		_, _, e := syscall.RawSyscall(syscall.SYS_GETSOCKNAME, fd, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
		if e != 0 {
			n = 0
		}
	})
	if err != nil || n == 0 {
		return &net.TCPAddr{Port: c.lport} // closed: the port is still known
	}
	c.laddr = tcpAddr(&rsa)
	if c.laddr == nil {
		c.laddr = &net.TCPAddr{Port: c.lport}
	}
	return c.laddr
}

// CloseWrite sends the FIN (shutdown(2) SHUT_WR).
func (c *fdConn) CloseWrite() error {
	var e syscall.Errno
	if err := c.Control(func(fd uintptr) {
		_, _, e = syscall.RawSyscall(syscall.SYS_SHUTDOWN, fd, syscall.SHUT_WR, 0)
	}); err != nil {
		return err
	}
	if e != 0 {
		return os.NewSyscallError("shutdown", e)
	}
	return nil
}
