package rawio

import (
	"encoding/binary"
	"net"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// The accept path of the agent's own (Listener, on a *net.TCPListener).
//
// net's Accept makes, per connection: accept4(2) through the runtime's blocking-call path,
// a netFD with a finalizer, getsockname(2) for the local address, setsockopt(2) for
// TCP_NODELAY, and the poller's registration (epoll_ctl ADD); its Close an epoll_ctl DEL
// and close(2) through the blocking-call path again. With a connection per request
// (Connection: close) that is about a tenth of the ingress's user time. Here: a raw
// accept4 (SOCK_NONBLOCK|SOCK_CLOEXEC) on the listener's descriptor, in the listener's
// own RawConn.Read (so the wait for a connection, the listener's close and its deadline
// stay net's); the client's address from accept4's sockaddr; the local address only when
// asked (its port is the listener's); the poller's registration only when a call finds
// the socket not ready (pollfd.go); TCP_NODELAY only once a connection sends more than
// its last answer (rawConn's nodelay: a response followed by the close needs none, the
// FIN's push ignores Nagle), as nginx sets it when a connection goes keep-alive (and for
// SSL, unbuffered and WebSocket proxying: the streamed and upgraded connections here get it
// before their second send).

// acceptListener accepts with a raw accept4(2) on a TCP listener's socket. It takes the
// socket over from net: net's RawConn of a listener offers no wait, so it keeps a
// duplicate of the descriptor, registered with the poller as its own, and closes net's
// (which would otherwise be woken by every connection too). Its Close closes the socket.
type acceptListener struct {
	tl    *net.TCPListener
	fc    *fdConn // the duplicate descriptor
	lport int
}

func newAcceptListener(tl *net.TCPListener) (net.Listener, bool) {
	if !ownAccept {
		return nil, false
	}
	a, ok := tl.Addr().(*net.TCPAddr)
	if !ok {
		return nil, false
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, false
	}
	dup := -1
	if err := rc.Control(func(fd uintptr) {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if e == 0 {
			dup = int(r)
		}
	}); err != nil || dup < 0 {
		return nil, false
	}
	_ = tl.Close() // the duplicate keeps the socket; tl still says its Addr
	return &acceptListener{tl: tl, fc: newFdConn(dup, nil, a.Port), lport: a.Port}, true
}

// Addr is the listener's address.
func (l *acceptListener) Addr() net.Addr { return l.tl.Addr() }

// Close closes the listener: an Accept waiting returns net.ErrClosed.
func (l *acceptListener) Close() error { return l.fc.Close() }

// Accept waits for a connection (in the poller, on the listener's descriptor) and
// returns it with raw socket calls. Errors are net's: *net.OpError "accept" around the
// system call's error (EMFILE and the like are Temporary, for the caller's back-off);
// ECONNABORTED (a connection reset while queued) and EINTR are retried, as net does.
func (l *acceptListener) Accept() (net.Conn, error) {
	var rsa syscall.RawSockaddrAny
	nfd := -1
	var aerr error
	err := l.fc.Read(func(fd uintptr) bool {
		for {
			n := uint32(syscall.SizeofSockaddrAny)
			r, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, fd, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)),
				syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
			switch e {
			case 0:
				nfd = int(r)
				return true
			case syscall.EINTR, syscall.ECONNABORTED:
			case syscall.EAGAIN:
				return false
			default:
				aerr = os.NewSyscallError("accept4", e)
				return true
			}
		}
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
	}
	raddr := tcpAddr(&rsa)
	if raddr == nil {
		raddr = &net.TCPAddr{}
	}
	fc := newFdConn(nfd, raddr, l.lport)
	return wrapFd(fc), nil
}

// tcpAddr is the address in a sockaddr_in or sockaddr_in6 as net gives it (an IPv4
// client of a dual-stack listener as its IPv4 address, a zone by its interface's name);
// nil for another family.
func tcpAddr(rsa *syscall.RawSockaddrAny) *net.TCPAddr {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		ip := make(net.IP, net.IPv4len)
		copy(ip, sa.Addr[:])
		return &net.TCPAddr{IP: ip, Port: int(port(sa.Port))}
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		ip := make(net.IP, net.IPv6len)
		copy(ip, sa.Addr[:])
		a := &net.TCPAddr{IP: ip, Port: int(port(sa.Port))}
		if sa.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				a.Zone = ifi.Name
			} else {
				a.Zone = strconv.Itoa(int(sa.Scope_id))
			}
		}
		return a
	}
	return nil
}

// port is a sockaddr's port (network byte order in memory).
func port(p uint16) uint16 {
	var b [2]byte
	*(*uint16)(unsafe.Pointer(&b[0])) = p
	return binary.BigEndian.Uint16(b[:])
}
