package rawio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// skipWithoutOwnAccept skips tests of the accept path in builds that leave it to net.
func skipWithoutOwnAccept(t *testing.T) {
	t.Helper()
	if !ownAccept {
		t.Skip("this Go release has no own accept path (pollfd_other.go)")
	}
}

func listen(t *testing.T, network, addr string) (net.Listener, *acceptListener) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	l := Listener(ln)
	al, ok := l.(*acceptListener)
	if !ok {
		ln.Close()
		t.Fatalf("Listener of a *net.TCPListener is a %T, want the accept path's", l)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, al
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// The client's address comes from accept4's sockaddr and reads as net's would (an IPv4
// client of a dual-stack listener as its IPv4 address); the local address and port are
// the ones the client dialled.
func TestAcceptAddresses(t *testing.T) {
	skipWithoutOwnAccept(t)
	for _, tc := range []struct{ network, listen, dial string }{
		{"tcp", "127.0.0.1:0", "127.0.0.1"},
		{"tcp", ":0", "127.0.0.1"}, // dual-stack wildcard, as the agent binds without --listen
		{"tcp6", "[::1]:0", "::1"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			l, al := listen(t, tc.network, tc.listen)
			port := l.Addr().(*net.TCPAddr).Port
			d, err := net.Dial("tcp", net.JoinHostPort(tc.dial, fmt.Sprint(port)))
			if err != nil {
				t.Skipf("dial %s: %v", tc.dial, err)
			}
			defer d.Close()
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got, want := c.RemoteAddr().String(), d.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr %q, want the client's %q", got, want)
			}
			if got, want := c.LocalAddr().String(), d.RemoteAddr().String(); got != want {
				t.Errorf("LocalAddr %q, want the address dialled %q", got, want)
			}
			if got := c.(*rawConn).LocalPort(); got != port || al.lport != port {
				t.Errorf("LocalPort %d, want the listener's %d", got, port)
			}
		})
	}
}

// Many connections at once: each is served (its bytes read, an answer sent, the close
// seen by the client as the end), and none leaves a descriptor behind.
func TestAcceptManyConnections(t *testing.T) {
	skipWithoutOwnAccept(t)
	l, _ := listen(t, "tcp", "127.0.0.1:0")
	before := openFDs(t)
	const n = 200
	var srv sync.WaitGroup
	srv.Add(1)
	go func() {
		defer srv.Done()
		var conns sync.WaitGroup
		for range n {
			c, err := l.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				b := make([]byte, 16)
				k, err := c.Read(b)
				if err != nil {
					t.Error(err)
					return
				}
				c.(*rawConn).LastWrite()
				if _, err := c.Write(append([]byte("re:"), b[:k]...)); err != nil {
					t.Error(err)
				}
			}()
		}
		conns.Wait()
	}()
	var cl sync.WaitGroup
	for i := range n {
		cl.Add(1)
		go func() {
			defer cl.Done()
			d, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer d.Close()
			msg := fmt.Sprint(i)
			if _, err := d.Write([]byte(msg)); err != nil {
				t.Error(err)
				return
			}
			b, err := io.ReadAll(d)
			if err != nil || string(b) != "re:"+msg {
				t.Errorf("connection %d read %q, %v; want %q and the end", i, b, err, "re:"+msg)
			}
		}()
	}
	cl.Wait()
	srv.Wait()
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after %d connections closed, %d before", after, n, before)
	}
}

// Close of the listener ends an Accept that waits (net.ErrClosed) and the port stops
// listening: the duplicate descriptor the wait used is closed with it.
func TestAcceptListenerClose(t *testing.T) {
	skipWithoutOwnAccept(t)
	before := openFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listener(ln)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it wait (it fails the same way if it has not)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	var oe *net.OpError
	if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "accept" {
		t.Fatalf("Accept after Close: %v; want an accept error with net.ErrClosed", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Close: %v; want refused", err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the listener's close, %d before", after, before)
	}
}

// A connection reset while queued (the client's RST before the accept) does not stop the
// accept: it is handed over and its read says so, and the next connection comes as usual.
func TestAcceptResetConnection(t *testing.T) {
	skipWithoutOwnAccept(t)
	l, _ := listen(t, "tcp", "127.0.0.1:0")
	d, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = d.(*net.TCPConn).SetLinger(0)
	_ = d.Close() // RST
	time.Sleep(20 * time.Millisecond)
	d2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, err := d2.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("Accept: %v", err)
		}
		b := make([]byte, 4)
		n, err := c.Read(b)
		c.Close()
		if err != nil {
			if !errors.Is(err, syscall.ECONNRESET) && err != io.EOF {
				t.Fatalf("read of the reset connection: %v; want a reset", err)
			}
			continue // the reset one; Linux hands it over
		}
		if string(b[:n]) != "hi" {
			t.Fatalf("read %q, want the second connection's", b[:n])
		}
		return
	}
}

// Out of descriptors: Accept returns at once with a Temporary error (EMFILE), which is
// what the serving loop backs off on instead of spinning, and the connection waits in the
// queue until descriptors are free again.
func TestAcceptOutOfDescriptors(t *testing.T) {
	skipWithoutOwnAccept(t)
	l, _ := listen(t, "tcp", "127.0.0.1:0")
	d, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(openFDs(t) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	var fill []int
	release := func() {
		for _, fd := range fill {
			_ = syscall.Close(fd)
		}
		fill = nil
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	defer release()
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	_, err = l.Accept()
	var ne net.Error
	if !errors.Is(err, syscall.EMFILE) || !errors.As(err, &ne) || !ne.Temporary() { //nolint:staticcheck // Temporary is what servers back off on
		t.Fatalf("Accept without descriptors: %v; want a Temporary EMFILE", err)
	}
	release()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept once descriptors are free: %v", err)
	}
	c.Close()
}

// Close of a connection wakes a read that waits (net.ErrClosed), closes the descriptor
// once that read has returned, and a second Close says it is closed.
func TestFdConnCloseWakesReader(t *testing.T) {
	skipWithoutOwnAccept(t)
	before := openFDs(t)
	rc, peer := tcpPair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := rc.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a read waiting at Close: %v; want net.ErrClosed", err)
	}
	if err := rc.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v; want net.ErrClosed", err)
	}
	if _, err := rc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v; want net.ErrClosed", err)
	}
	peer.Close()
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after both ends closed, %d before", after, before)
	}
}

// Deadlines set before the socket is registered with the poller hold as net's: a passed
// one fails a read even with input waiting; one in the future bounds a wait.
func TestFdConnDeadlines(t *testing.T) {
	skipWithoutOwnAccept(t)
	rc, peer := tcpPair(t)
	if _, err := peer.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	_ = rc.SetReadDeadline(time.Now().Add(-time.Second))
	var ne net.Error
	b := make([]byte, 8)
	if _, err := rc.Read(b); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v; want a timeout", err)
	}
	_ = rc.SetReadDeadline(time.Time{})
	if n, err := rc.Read(b); err != nil || string(b[:n]) != "abc" {
		t.Fatalf("read without a deadline: %q, %v", b[:n], err)
	}
	_ = rc.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := rc.Read(b); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read waiting past the deadline: %v; want a timeout", err)
	}
	// A deadline moved to the past wakes a read that waits (how the ingress interrupts).
	_ = rc.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := rc.Read(b)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = rc.SetReadDeadline(time.Unix(1, 0))
	if err := <-errc; !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a waiting read after its deadline moved to the past: %v; want a timeout", err)
	}
}

func noDelay(t *testing.T, c *rawConn) int {
	t.Helper()
	v := -1
	_ = c.rc.Control(func(fd uintptr) {
		v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	})
	return v
}

// TCP_NODELAY is set once a connection does anything after a send but close: an answer
// followed by the close never needs it (the FIN's push ignores Nagle); a keep-alive
// connection has it before it reads its next request.
func TestAcceptNoDelayLater(t *testing.T) {
	skipWithoutOwnAccept(t)
	rc, peer := tcpPair(t)
	b := make([]byte, 8)
	if _, err := peer.Write([]byte("req1")); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(b); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Write([]byte("resp1")); err != nil {
		t.Fatal(err)
	}
	if v := noDelay(t, rc); v != 0 {
		t.Fatalf("TCP_NODELAY %d after a read and one send, want 0 (not set yet)", v)
	}
	if _, err := io.ReadFull(peer, b[:5]); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write([]byte("req2")); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(b); err != nil {
		t.Fatal(err)
	}
	if v := noDelay(t, rc); v != 1 {
		t.Fatalf("TCP_NODELAY %d on a connection reading its next request, want 1", v)
	}
	// Upstream connections (Wrap of net's) keep net's setting.
	w, ok := Wrap(peer).(*rawConn)
	if !ok || noDelay(t, w) != 1 {
		t.Errorf("a wrapped net connection: TCP_NODELAY not as net sets it")
	}
}

// BenchmarkAcceptClose is a connection per request over loopback, in one process: the
// client dials and sends a line, the server accepts, reads it, answers (the last write)
// and closes, the client reads to the end. "net" accepts through net (the wrapper of the
// third pass), "own" through the accept path; cpu-µs/conn is the process's CPU time
// (user + system, both ends) per connection, which a loaded machine disturbs less than
// the time per operation.
func BenchmarkAcceptClose(b *testing.B) {
	for _, own := range []bool{false, true} {
		name := "net"
		if own {
			name = "own"
			if !ownAccept {
				continue
			}
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var l net.Listener = rawListener{ln}
			if own {
				l = Listener(ln)
			}
			defer l.Close()
			addr := ln.Addr().String()
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 64)
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					if _, err := c.Read(buf); err == nil {
						c.(*rawConn).LastWrite()
						_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
					}
					_ = c.Close()
				}
			}()
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			buf := make([]byte, 256)
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for range b.N {
				d, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.Write(req); err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := d.Read(buf); err != nil {
						break
					}
				}
				d.Close()
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) +
				syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/conn")
			_ = l.Close()
			<-done
		})
	}
}

// Close racing with reads, writes, peeks and deadline changes on other goroutines, many
// times: every call returns, nothing is closed twice (a descriptor closed twice would
// close another connection's), and no descriptor is left.
func TestFdConnCloseRace(t *testing.T) {
	skipWithoutOwnAccept(t)
	l, _ := listen(t, "tcp", "127.0.0.1:0")
	before := openFDs(t)
	for range 200 {
		d, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c := a.(*rawConn)
		var wg sync.WaitGroup
		wg.Add(4)
		go func() { defer wg.Done(); _, _ = c.Read(make([]byte, 16)) }()
		go func() { defer wg.Done(); _, _ = c.Peek(true) }()
		go func() {
			defer wg.Done()
			for range 8 {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(time.Hour))
			_ = c.SetWriteDeadline(time.Now().Add(time.Hour))
		}()
		_ = c.Close()
		wg.Wait()
		_ = d.Close()
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after 200 connections closed under racing calls, %d before", after, before)
	}
}

// A write deadline on the accept path's connections: set before the poller's registration
// (handed to it at the first EAGAIN) and after it, a write to a peer that does not read
// ends with a timeout.
func TestFdConnWriteDeadline(t *testing.T) {
	skipWithoutOwnAccept(t)
	rc, _ := tcpPair(t) // the peer never reads
	big := make([]byte, 64<<20)
	fc, ok := rc.rc.(*fdConn)
	if !ok {
		t.Fatalf("accepted connection on %T, want *fdConn", rc.rc)
	}
	for _, when := range []string{"before the registration", "after it"} {
		if (fc.pd.Load() != 0) != (when == "after it") {
			t.Fatalf("%s: registered %v", when, fc.pd.Load() != 0)
		}
		_ = rc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := rc.Write(big)
			done <- result{n, err}
		}()
		select {
		case r := <-done:
			if !errors.Is(r.err, os.ErrDeadlineExceeded) {
				t.Fatalf("write to a peer that does not read, deadline set %s: %d bytes, %v; want os.ErrDeadlineExceeded", when, r.n, r.err)
			}
			var ne net.Error
			if !errors.As(r.err, &ne) || !ne.Timeout() {
				t.Fatalf("write past its deadline (%s): %v is not a net.Error with Timeout", when, r.err)
			}
			if r.n >= len(big) {
				t.Fatalf("write past its deadline (%s) wrote all %d bytes", when, r.n)
			}
		case <-time.After(20 * time.Second):
			_ = rc.Close() // ends the write
			t.Fatalf("write with a deadline set %s still blocked after 20s", when)
		}
	}
}
