package ingress

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// The upstream side of the proxy: a purpose-built HTTP/1.1 client. Every upstream
// connection owns one bufio.Reader and one bufio.Writer for its whole life; a request is
// written and its response read on the handler's own goroutine (net/http's Transport uses
// two more goroutines per connection and hands every request and response between them
// over channels). Idle connections wait in a LIFO stack per address.

const (
	upstreamBufSize = 16 << 10
	// upstreamIdleTimeout closes pooled connections idle longer than this: below the
	// pods' own keep-alive timeout (the echo agent: 120 s; nginx: 75 s), so the proxy
	// closes first and never sends on a connection the upstream is closing.
	upstreamIdleTimeout = 60 * time.Second
	// upstreamPeekAfter: a connection idle at least this long is checked with a peek
	// before reuse. Under load connections go back to work within microseconds, and an
	// upstream closes a keep-alive connection only after seconds of idleness; what closes
	// one sooner (a pod being stopped) is found by the response read, and only an
	// idempotent request without body is then sent again.
	upstreamPeekAfter = 50 * time.Millisecond
	// headReadSize bounds each read while a response head is awaited. Heads are a few
	// hundred bytes; what the read takes beyond the head is body that must then be written
	// to the client from user space, as a send of its own once it and net/http's head
	// overflow the client connection's 4 KiB buffer. With 2 KiB the head and that part of
	// the body go out in one write, and the rest of a large body stays in the socket for
	// splice(2) (a 64 KiB response: one write and one splice to the client instead of two
	// writes and a splice). A small response (the echo's 0.7 KiB) still arrives in one read.
	headReadSize = 2 << 10
)

// upConn is one upstream connection.
type upConn struct {
	nc     net.Conn
	src    headLimited     // what br reads from: nc, each read bounded while a head is awaited
	rc     syscall.RawConn // for the liveness check; nil when the conn has none
	br     *bufio.Reader
	bw     *bufio.Writer
	addr   string
	idleAt time.Time
	reused bool // served a request before this one
	// born is the pool's epoch when the connection was dialled: one dialled before its
	// address's last stale mark is closed when it comes back (see pool.closeIdleTo).
	born uint64
	// deadline is the read deadline the connection has (zero: none). The wait for a
	// response head is bounded by re-arming it only when less than the timeout is left,
	// so a busy connection pays the runtime's timer update about once per timeout/16
	// instead of twice per request; the bound is then between the timeout and 17/16 of it.
	deadline time.Time
	peek     [1]byte
}

// pool holds idle upstream connections per address.
type pool struct {
	dialer  net.Dialer
	wrap    func(net.Conn) net.Conn // Options.WrapUpstream
	maxIdle int                     // per address
	mu      sync.Mutex
	idle    map[string][]*upConn
	// epoch counts closeIdleTo's marks; staleAt is, per address, the epoch of the last
	// mark that found it stale; dialled holds the addresses dialled since their last mark
	// (what a mark looks at: every address a connection may be open to).
	epoch   uint64
	staleAt map[string]uint64
	dialled map[string]struct{}
}

func newPool(dialTimeout time.Duration, maxIdle int, wrap func(net.Conn) net.Conn) *pool {
	return &pool{
		wrap:    wrap,
		dialer:  net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		maxIdle: maxIdle,
		idle:    map[string][]*upConn{},
		staleAt: map[string]uint64{},
		dialled: map[string]struct{}{},
	}
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, upstreamBufSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, upstreamBufSize) }}
)

// get returns an idle connection to addr that is still open, or dials a new one.
func (p *pool) get(ctx context.Context, addr string) (*upConn, error) {
	now := time.Now()
	for {
		p.mu.Lock()
		l := p.idle[addr]
		if len(l) == 0 {
			p.mu.Unlock()
			break
		}
		c := l[len(l)-1]
		l[len(l)-1] = nil
		p.idle[addr] = l[:len(l)-1]
		p.mu.Unlock()
		if idle := now.Sub(c.idleAt); idle < upstreamIdleTimeout && (idle < upstreamPeekAfter && c.br.Buffered() == 0 || c.alive()) {
			c.reused = true
			return c, nil
		}
		c.close()
	}
	return p.dial(ctx, addr)
}

func (p *pool) dial(ctx context.Context, addr string) (*upConn, error) {
	// The epoch is read before the dial: a mark that comes while it is under way makes
	// the new connection stale too (it may have gone by the old rules).
	p.mu.Lock()
	born := p.epoch
	p.dialled[addr] = struct{}{}
	p.mu.Unlock()
	nc, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if p.wrap != nil {
		nc = p.wrap(nc)
	}
	c := &upConn{nc: nc, addr: addr, born: born}
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.src.nc = nc
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(&c.src)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset(nc)
	return c, nil
}

// put returns a connection whose exchange ended cleanly to the pool, unless it was
// dialled before its address was last marked stale.
func (p *pool) put(c *upConn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	l := p.idle[c.addr]
	if len(l) >= p.maxIdle || c.born < p.staleAt[c.addr] {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle[c.addr] = append(l, c)
	p.mu.Unlock()
}

// closeIdle closes every idle connection.
func (p *pool) closeIdle() {
	p.mu.Lock()
	old := p.idle
	p.idle = map[string][]*upConn{}
	p.mu.Unlock()
	for _, l := range old {
		for _, c := range l {
			c.close()
		}
	}
}

// closeIdleTo marks stale every address dialled since its last mark that stale reports,
// closes the idle connections to them, and returns how many it closed. The connections
// to them that are busy now are closed when they come back (put), so none dialled before
// the mark carries another request. stale is called with the pool locked.
func (p *pool) closeIdleTo(stale func(addr string) bool) int {
	var gone []*upConn
	p.mu.Lock()
	p.epoch++
	for addr := range p.dialled {
		if !stale(addr) {
			continue
		}
		p.staleAt[addr] = p.epoch
		delete(p.dialled, addr)
		gone = append(gone, p.idle[addr]...)
		delete(p.idle, addr)
	}
	p.mu.Unlock()
	for _, c := range gone {
		c.close()
	}
	return len(gone)
}

// close closes the connection and recycles its buffers.
func (c *upConn) close() {
	_ = c.nc.Close()
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
	if c.bw != nil {
		c.bw.Reset(nil)
		writers.Put(c.bw)
		c.bw = nil
	}
}

// headLimited reads from a connection; while max > 0, no read asks for more than max.
type headLimited struct {
	nc  net.Conn
	max int
}

func (l *headLimited) Read(p []byte) (int, error) {
	if l.max > 0 && len(p) > l.max {
		p = p[:l.max]
	}
	return l.nc.Read(p)
}

// armDeadline makes sure the connection's reads end no sooner than d from now.
func (c *upConn) armDeadline(now time.Time, d time.Duration) {
	if !c.deadline.IsZero() && c.deadline.Sub(now) >= d {
		return
	}
	c.deadline = now.Add(d + d/16)
	_ = c.nc.SetReadDeadline(c.deadline)
}

// clearDeadline removes the read deadline (bodies and upgraded streams take their time).
func (c *upConn) clearDeadline() {
	if c.deadline.IsZero() {
		return
	}
	c.deadline = time.Time{}
	_ = c.nc.SetReadDeadline(time.Time{})
}

// alive reports whether an idle connection can carry a request: nothing unread in its
// buffer, and the kernel has neither an EOF nor a reset nor stray bytes for it (one
// non-blocking MSG_PEEK). An upstream that closed an idle connection is found here, so
// the request goes on a fresh one instead of failing (which, for a POST, could not be
// retried).
func (c *upConn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.rc == nil {
		return true
	}
	c.clearDeadline() // an expired one would fail the peek
	if p, ok := c.nc.(peeker); ok {
		_, err := p.Peek(false)
		return err == syscall.EAGAIN
	}
	ok := true
	err := c.rc.Read(func(fd uintptr) bool {
		n, _, e := syscall.Recvfrom(int(fd), c.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = errors.Is(e, syscall.EAGAIN) && n <= 0
		return true
	})
	return err == nil && ok
}

// peeker is a connection that looks at its next byte without taking it (netlab/rawio's:
// a raw recvfrom(2), which keeps the goroutine's P; see rawio's Peek): 1 when input waits, 0
// at the peer's end; without wait, (0, syscall.EAGAIN) when nothing has arrived.
type peeker interface {
	Peek(wait bool) (int, error)
}
