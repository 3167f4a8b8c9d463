// Package rawio wraps TCP connections so that their socket calls are raw system calls:
// read(2), write(2), splice(2) from another such connection, and the FIN by shutdown(2)
// before close(2). The ingress agent uses it for its plain-HTTP client connections and its
// upstream connections (netlab/ingress stays pure: it takes the wrapper as an option).
package rawio

import (
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Why.
//
// In a lab every send on a socket runs the packet's whole path synchronously in the
// sender's system call: veth, bridge, netfilter (kube-proxy's rules), and the receiving
// socket's wake-up; 30–150 µs here. Go's runtime takes a goroutine that has been in a
// system call for longer than sysmon's tick (20 µs and up) to be blocked in it: it hands
// the P to another thread, which wakes (futex), finds nothing to do, spins (nanosleep)
// and parks again, and the returning thread must get the P back. With the agent's one P
// (and no idle P, so sysmon always takes it) that was a good part of its ~3 context
// switches per request (nginx: ~1). A call on a non-blocking socket cannot block, so the
// proxy's socket calls on plain TCP connections, client and upstream, are made as raw
// system calls: the P stays with the goroutine, as an nginx worker keeps its CPU.
// Reads, writes, and the splice of a body from the upstream socket to the client's.
// Waiting for a socket (EAGAIN) still goes through Go's netpoller, deadlines included;
// errors are *net.OpError as net's own, EOF is io.EOF.

// Listener wraps a plain-TCP listener so that the connections it accepts read and write
// with raw system calls and splice bodies from upstream connections the same way. TLS listeners
// are not wrapped (crypto/tls writes records through the connection anyway, but the
// splice path does not apply to it).
//
// A *net.TCPListener gets the accept path of the agent's own (accept.go): a raw accept4(2)
// on its descriptor and connections served by the runtime's poller without net's netFD;
// other listeners (and builds without that path) accept through net. The listener
// returned owns the socket: ln is closed (its Addr stays), and the returned listener's
// Close closes the socket.
func Listener(ln net.Listener) net.Listener {
	if tl, ok := ln.(*net.TCPListener); ok {
		if al, ok := newAcceptListener(tl); ok {
			return al
		}
	}
	return rawListener{ln}
}

// Wrap returns c with raw socket calls when it is a *net.TCPConn, else c as it is.
func Wrap(c net.Conn) net.Conn { return wrapConn(c) }

type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrapConn(c), nil
}

// wrapConn returns c as a rawConn when it is a TCP connection, else c.
func wrapConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	c2 := &rawConn{base: tc, rc: rc}
	c2.rop.fn, c2.wop.fn = c2.rop.read, c2.wop.write
	return c2
}

// wrapFd returns an accepted socket of the accept path as a rawConn, TCP_NODELAY left
// for later (nodelay).
func wrapFd(fc *fdConn) *rawConn {
	c := &rawConn{base: fc, rc: fc, lazyNoDelay: true, lport: fc.LocalPort()}
	c.rop.fn, c.wop.fn = c.rop.read, c.wop.write
	return c
}

// baseConn is what a rawConn takes from the connection under it (a *net.TCPConn, or the
// accept path's fdConn): addresses, deadlines, the half and the full close.
type baseConn interface {
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	CloseWrite() error
	Close() error
}

// rawConn is a TCP connection whose Read, Write and ReadFrom use raw system calls.
type rawConn struct {
	base  baseConn
	rc    syscall.RawConn
	lport int // the local port when known without a system call (the accept path's), else 0
	// lazyNoDelay: TCP_NODELAY is not set yet (the accept path's connections). It is set
	// (noDelaySet) before any call that follows a send other than the close: a response
	// that ends its connection goes out with the FIN, which the kernel pushes regardless of
	// Nagle, so a connection per request never needs it; a keep-alive connection, a
	// streamed or upgraded one gets it before its next read or send.
	lazyNoDelay bool
	sent        atomic.Bool
	noDelaySet  atomic.Bool
	holdNext    bool   // HoldNextWrite: the next Write is kept in held
	held        []byte // bytes written but not sent yet
	last        bool   // LastWrite: the next send is the last before the FIN
	// The connection's own read and write operations: the function each hands to the
	// RawConn is made once, with the connection, instead of a closure (and its captured
	// results) on the heap at every call.
	rop, wop ioOp
}

// ioOp is one read or write on a socket: its arguments and results, and the function
// that makes the system call, bound to them once. An ioOp serves one call at a time: a
// call that finds the connection's own busy (two goroutines reading at once) takes a
// fresh one.
type ioOp struct {
	busy atomic.Bool
	fn   func(fd uintptr) bool
	p    []byte    // read: the buffer
	bufs [2][]byte // write: what is left to send, in order
	vec  bool      // write: both buffers with writev(2)
	more bool      // write: with MSG_MORE (LastWrite)
	n    int64     // bytes read or sent
	err  error     // the system call's own error (EAGAIN and EINTR are not errors)
	iov  [2]syscall.Iovec
	msg  syscall.Msghdr
}

func newReadOp() *ioOp {
	o := new(ioOp)
	o.fn = o.read
	return o
}

func newWriteOp() *ioOp {
	o := new(ioOp)
	o.fn = o.write
	return o
}

// take returns own when no other call uses it, else a fresh op made by mk.
func take(own *ioOp, mk func() *ioOp) *ioOp {
	if own.busy.CompareAndSwap(false, true) {
		return own
	}
	o := mk()
	o.busy.Store(true)
	return o
}

// done makes o free for the next call.
func (o *ioOp) done() {
	o.p, o.bufs, o.err = nil, [2][]byte{}, nil
	o.iov, o.msg = [2]syscall.Iovec{}, syscall.Msghdr{}
	o.busy.Store(false)
}

// read reads what has arrived into o.p; false (to wait in the netpoller) on EAGAIN.
func (o *ioOp) read(fd uintptr) bool {
	p := o.p
	for {
		m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			o.n = int64(m)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			o.err = os.NewSyscallError("read", e)
			return true
		}
	}
}

// write sends all of o.bufs, o.n counting what went: one buffer with write(2) (sendto(2)
// with MSG_MORE), both with writev(2) (sendmsg(2)); false (to wait in the netpoller)
// whenever the socket's buffer is full.
func (o *ioOp) write(fd uintptr) bool {
	flags := uintptr(0)
	if o.more {
		flags = syscall.MSG_MORE | syscall.MSG_NOSIGNAL
	}
	for {
		var m uintptr
		var e syscall.Errno
		if o.vec {
			k := 0
			for _, p := range o.bufs {
				if len(p) > 0 {
					o.iov[k].Base = &p[0]
					o.iov[k].SetLen(len(p))
					k++
				}
			}
			if k == 0 {
				return true
			}
			if flags != 0 {
				o.msg.Iov = &o.iov[0]
				*(*uintptr)(unsafe.Pointer(&o.msg.Iovlen)) = uintptr(k) // size_t: 64 or 32 bits, as uintptr
				m, _, e = syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&o.msg)), flags)
			} else {
				m, _, e = syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&o.iov[0])), uintptr(k))
			}
		} else {
			p := o.bufs[0]
			if len(p) == 0 {
				return true
			}
			chunk := min(len(p), 1<<30)
			if flags != 0 {
				m, _, e = syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(chunk), flags, 0, 0)
			} else {
				m, _, e = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(chunk))
			}
		}
		switch e {
		case 0:
			o.n += int64(m)
			for i := range o.bufs {
				d := min(int(m), len(o.bufs[i]))
				o.bufs[i] = o.bufs[i][d:]
				m -= uintptr(d)
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			name := "write"
			if o.vec {
				name = "writev"
			}
			o.err = os.NewSyscallError(name, e)
			return true
		}
	}
}

func (c *rawConn) LocalAddr() net.Addr                { return c.base.LocalAddr() }
func (c *rawConn) RemoteAddr() net.Addr               { return c.base.RemoteAddr() }
func (c *rawConn) SetDeadline(t time.Time) error      { return c.base.SetDeadline(t) }
func (c *rawConn) SetReadDeadline(t time.Time) error  { return c.base.SetReadDeadline(t) }
func (c *rawConn) SetWriteDeadline(t time.Time) error { return c.base.SetWriteDeadline(t) }

// CloseWrite sends the FIN: shutdown(2) SHUT_WR.
func (c *rawConn) CloseWrite() error { return c.base.CloseWrite() }

// SyscallConn is the connection's syscall.RawConn.
func (c *rawConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// LocalPort is the connection's local port when known without a system call (an
// accepted connection's is its listener's), else 0.
func (c *rawConn) LocalPort() int { return c.lport }

// nodelay sets TCP_NODELAY (raw setsockopt(2)) on a connection that has sent and does
// not have it yet (see lazyNoDelay); setting it also pushes a segment Nagle held.
func (c *rawConn) nodelay() {
	if !c.lazyNoDelay || !c.sent.Load() || c.noDelaySet.Load() || !c.noDelaySet.CompareAndSwap(false, true) {
		return
	}
	_ = c.rc.Control(func(fd uintptr) {
		one := int32(1)
		_, _, _ = syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY,
			uintptr(unsafe.Pointer(&one)), 4, 0)
	})
}

// didSend records a send for nodelay.
func (c *rawConn) didSend() {
	if c.lazyNoDelay && !c.sent.Load() {
		c.sent.Store(true)
	}
}

// LastWrite says that the next Write or Writev carries the connection's last bytes and
// that Close (or CloseWrite) follows at once: it is sent with MSG_MORE, so its last
// partial segment waits in the socket and the FIN of the shutdown goes out in the same
// packet — one trip through the packet path (veth, bridge, netfilter, the peer's
// wake-up) instead of two for a response that ends its connection. Without a close
// after it the kernel would hold that segment up to 200 ms.
func (c *rawConn) LastWrite() { c.last = true }

// HoldNextWrite makes the next Write keep its bytes instead of sending them, so that a
// ReadFrom right after sends them with the body's first splice: one send through the
// packet path for a response's head and body instead of two (net/http writes the head
// with one Write of at most its 4 KiB buffer just before it calls ReadFrom). Any other
// call sends held bytes first; ReleaseHeld sends what is still held.
func (c *rawConn) HoldNextWrite() { c.holdNext = true }

// ReleaseHeld ends a HoldNextWrite: held bytes that no ReadFrom took are sent now.
func (c *rawConn) ReleaseHeld() error {
	c.holdNext = false
	return c.flushHeld()
}

func (c *rawConn) flushHeld() error {
	if len(c.held) == 0 {
		return nil
	}
	b := c.held
	c.held = c.held[:0]
	_, err := c.send(b)
	return err
}

func (c *rawConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Close sends the FIN with a raw shutdown(2) first: the packet path then runs without
// the runtime handing the P away, and the close(2) that follows has nothing left to send
// (unless data from the client is still unread, when it resets the connection as a plain
// close would).
func (c *rawConn) Close() error {
	_ = c.rc.Control(func(fd uintptr) {
		_, _, _ = syscall.RawSyscall(syscall.SYS_SHUTDOWN, fd, syscall.SHUT_WR, 0)
	})
	return c.base.Close()
}

// Peek looks at the connection's next byte without taking it, with a raw recvfrom(2)
// (MSG_PEEK|MSG_DONTWAIT): 1 when input waits, 0 at the peer's end. With wait it waits in
// the netpoller (deadlines included) until either; without, nothing there yet is
// (0, syscall.EAGAIN). syscall.Recvfrom would enter the runtime's system-call state, where
// sysmon may hand the goroutine's P to another thread (netlab/ingress's checks of an idle
// upstream connection and of a client during a long request peek this way).
func (c *rawConn) Peek(wait bool) (int, error) {
	c.nodelay()
	var b [1]byte
	n := 0
	var perr error
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				n = int(m)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				if wait {
					return false
				}
				perr = syscall.EAGAIN
				return true
			default:
				perr = os.NewSyscallError("recvfrom", e)
				return true
			}
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil && err != syscall.EAGAIN {
		return 0, c.opError("read", err)
	}
	return n, err
}

// Read reads what has arrived, up to len(p), waiting in the netpoller (deadlines
// included) when nothing has; io.EOF at the peer's end.
func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > 1<<30 {
		p = p[:1<<30]
	}
	c.nodelay()
	o := take(&c.rop, newReadOp)
	o.p, o.n = p, 0
	err := c.rc.Read(o.fn)
	n := int(o.n)
	if err == nil {
		err = o.err
	}
	o.done()
	if err != nil {
		return n, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p (a short write only with an error), waiting in the netpoller
// whenever the socket's buffer is full; after HoldNextWrite it keeps p instead.
func (c *rawConn) Write(p []byte) (int, error) {
	if c.holdNext {
		c.holdNext = false
		c.held = append(c.held[:0], p...)
		return len(p), nil
	}
	if err := c.flushHeld(); err != nil {
		return 0, err
	}
	return c.send(p)
}

func (c *rawConn) send(p []byte) (int, error) {
	c.nodelay()
	o := take(&c.wop, newWriteOp)
	o.bufs[0], o.vec, o.n, o.more = p, false, 0, c.last
	c.last = false
	err := c.rc.Write(o.fn)
	c.didSend()
	n := int(o.n)
	if err == nil {
		err = o.err
	}
	o.done()
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// Writev writes a and then b with one writev(2) (all of both: a short write only with an
// error), waiting in the netpoller whenever the socket's buffer is full: a response's head
// and a large body go out as one send through the packet path instead of two. Held bytes
// go first.
func (c *rawConn) Writev(a, b []byte) (int64, error) {
	if err := c.flushHeld(); err != nil {
		return 0, err
	}
	c.nodelay()
	o := take(&c.wop, newWriteOp)
	o.bufs, o.vec, o.n, o.more = [2][]byte{a, b}, true, 0, c.last
	c.last = false
	err := c.rc.Write(o.fn)
	c.didSend()
	n := o.n
	if err == nil {
		err = o.err
	}
	o.done()
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// ReadFrom takes what net/http's HTTP/1 ResponseWriter hands its connection: a body of
// known length from an upstream connection (an *io.LimitedReader over a connection with a
// syscall.RawConn: a wrapped one or a *net.TCPConn) is spliced socket to socket;
// anything else is copied through a buffer and written with Write.
func (c *rawConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok && lr.N > 0 {
		if sc, ok := lr.R.(syscall.Conn); ok {
			if src, err := sc.SyscallConn(); err == nil {
				n, err := c.splice(src, lr.N)
				lr.N -= n
				return n, err
			}
		}
	}
	if err := c.flushHeld(); err != nil {
		return 0, err
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(writerOnly{c}, r, *buf)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

type writerOnly struct{ io.Writer }

// splice moves up to n bytes from src's socket to c's through a pipe: into the pipe as
// much as has arrived (waiting in the netpoller when nothing has), out of it all of it
// (waiting when the client's socket buffer is full). It returns early, with no error, at
// src's EOF. Held bytes go first, written into the pipe ahead of the body (a pipe write
// of at most PIPE_BUF bytes is whole or nothing); more than that are sent on their own.
func (c *rawConn) splice(src syscall.RawConn, n int64) (int64, error) {
	p := getPipe()
	if p == nil {
		return 0, c.opError("splice", syscall.ENOMEM)
	}
	c.nodelay()
	defer c.didSend()
	skip := 0 // held bytes at the head of the pipe: sent, but not part of the body
	if h := c.held; len(h) > 0 {
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p.w), uintptr(unsafe.Pointer(&h[0])), uintptr(len(h)))
		if e == 0 && int(m) == len(h) {
			skip = len(h)
			p.data = skip
			c.held = c.held[:0]
		} else if err := c.flushHeld(); err != nil {
			putPipe(p)
			return 0, err
		}
	}
	var written int64
	var err error
	for written < n {
		max := n - written
		if free := int64(pipeSize - p.data); max > free {
			max = free
		}
		var in int
		var serr error
		wait := false // nothing arrived yet, and held bytes in the pipe go out first
		rerr := src.Read(func(fd uintptr) bool {
			for {
				m, _, e := syscall.RawSyscall6(syscall.SYS_SPLICE, fd, 0, uintptr(p.w), 0, uintptr(max), spliceNonblock|spliceMove)
				switch e {
				case 0:
					in = int(m)
					return true
				case syscall.EINTR:
				case syscall.EAGAIN:
					if p.data > 0 {
						wait = true
						return true
					}
					return false
				default:
					serr = os.NewSyscallError("splice", e)
					return true
				}
			}
		})
		if rerr == nil {
			rerr = serr
		}
		if rerr != nil {
			err = &net.OpError{Op: "read", Net: "tcp", Err: rerr}
			break
		}
		p.data += in
		werr := c.rc.Write(func(fd uintptr) bool {
			for p.data > 0 {
				m, _, e := syscall.RawSyscall6(syscall.SYS_SPLICE, uintptr(p.r), 0, fd, 0, uintptr(p.data), spliceNonblock|spliceMove)
				switch e {
				case 0:
					p.data -= int(m)
					if skip > 0 {
						s := min(skip, int(m))
						skip -= s
						m -= uintptr(s)
					}
					written += int64(m)
				case syscall.EINTR:
				case syscall.EAGAIN:
					return false
				default:
					serr = os.NewSyscallError("splice", e)
					return true
				}
			}
			return true
		})
		if werr == nil {
			werr = serr
		}
		if werr != nil {
			err = c.opError("write", werr)
			break
		}
		if in == 0 && !wait {
			break // the upstream's EOF: the caller sees what is missing
		}
	}
	putPipe(p)
	return written, err
}

const (
	spliceMove     = 0x1 // SPLICE_F_MOVE
	spliceNonblock = 0x2 // SPLICE_F_NONBLOCK
	// pipeSize is what each splice moves at most: the pipe's capacity, set with
	// F_SETPIPE_SZ (a 64 KiB body then goes in one splice each way; the default pipe
	// holds 16 pages).
	pipeSize = 256 << 10
)

// pipe is a pair of pipe descriptors kept for splicing; data is what it holds.
type pipe struct {
	r, w    int
	data    int
	cleanup runtime.Cleanup
}

func closePipe(fds [2]int) {
	_ = syscall.Close(fds[0])
	_ = syscall.Close(fds[1])
}

// close closes the pipe now (its cleanup is then not needed).
func (p *pipe) close() {
	p.cleanup.Stop()
	closePipe([2]int{p.r, p.w})
}

var pipes = sync.Pool{}

func getPipe() *pipe {
	if p, ok := pipes.Get().(*pipe); ok {
		return p
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil
	}
	// A smaller pipe (the limit in /proc/sys/fs/pipe-max-size, or memory) only means
	// more rounds of splicing: the size asked is a wish.
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[0]), syscall.F_SETPIPE_SZ, pipeSize)
	p := &pipe{r: fds[0], w: fds[1]}
	// The pool drops pipes at garbage collections: their descriptors go with them.
	p.cleanup = runtime.AddCleanup(p, closePipe, fds)
	return p
}

// putPipe keeps an empty pipe for the next splice; one still holding data is closed.
func putPipe(p *pipe) {
	if p.data != 0 {
		p.close()
		return
	}
	pipes.Put(p)
}
