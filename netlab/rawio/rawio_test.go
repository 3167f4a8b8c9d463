package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair returns the two ends of a TCP connection on 127.0.0.1: the accepted one
// wrapped as the agent's listener wraps it, and the dialled one as it is.
func tcpPair(t *testing.T) (*rawConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listener(ln)
	defer l.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rc, ok := a.(*rawConn)
	if !ok {
		t.Fatalf("Listener accepted a %T, want *rawConn", a)
	}
	t.Cleanup(func() { rc.Close(); d.Close() })
	return rc, d.(*net.TCPConn)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// Writes larger than the socket buffers wait for the peer and arrive intact; reads return
// what arrived, then io.EOF; an expired deadline is a timeout error, as net's own.
func TestRawConnReadWrite(t *testing.T) {
	rc, peer := tcpPair(t)
	data := pattern(8 << 20)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	if n, err := rc.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if err := rc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("peer read %d bytes, intact %v", len(b), bytes.Equal(b, data))
	}

	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	peer.CloseWrite()
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadAll: %q, %v", b, err)
	}

	rc2, _ := tcpPair(t)
	rc2.SetReadDeadline(time.Unix(1, 0))
	_, err = rc2.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout net.Error", err)
	}

	// Close ends the connection cleanly: the peer reads what was written, then EOF.
	rc3, peer3 := tcpPair(t)
	if _, err := rc3.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := rc3.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(peer3); err != nil || string(b) != "bye" {
		t.Fatalf("after Close the peer read %q, %v", b, err)
	}
}

// ReadFrom splices a body of known length from an upstream socket to the client's: all
// of it when it all comes, what came when the upstream closes early (the caller sees
// what is missing in the LimitedReader), and an error when the client has gone.
func TestRawConnSplice(t *testing.T) {
	client, clientPeer := tcpPair(t)
	upFar, upNear := tcpPair(t) // the proxy holds upNear; upFar plays the upstream
	data := pattern(3 << 20)
	go func() { _, _ = upFar.Write(data) }()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(data))
		n, _ := io.ReadFull(clientPeer, b)
		got <- b[:n]
	}()
	// The source wrapped too, as the agent's upstream connections are.
	lr := &io.LimitedReader{R: Wrap(upNear), N: int64(len(data))}
	if n, err := client.ReadFrom(lr); err != nil || n != int64(len(data)) || lr.N != 0 {
		t.Fatalf("ReadFrom: %d, %v, %d left", n, err, lr.N)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("client read %d bytes, intact %v", len(b), bytes.Equal(b, data))
	}

	// The upstream sends 100 KiB of a promised 1 MiB and closes.
	go func() { _, _ = upFar.Write(data[:100<<10]); upFar.CloseWrite() }()
	go func() {
		b := make([]byte, 100<<10)
		n, _ := io.ReadFull(clientPeer, b)
		got <- b[:n]
	}()
	lr = &io.LimitedReader{R: upNear, N: 1 << 20}
	if n, err := client.ReadFrom(lr); err != nil || n != 100<<10 || lr.N != 1<<20-100<<10 {
		t.Fatalf("ReadFrom of a cut body: %d, %v, %d left", n, err, lr.N)
	}
	if b := <-got; !bytes.Equal(b, data[:100<<10]) {
		t.Fatalf("client read %d bytes of the cut body", len(b))
	}

	// The client has gone: the splice out fails.
	client2, clientPeer2 := tcpPair(t)
	up2Far, up2Near := tcpPair(t)
	clientPeer2.SetLinger(0)
	clientPeer2.Close()
	go func() { _, _ = up2Far.Write(data) }()
	lr = &io.LimitedReader{R: up2Near, N: int64(len(data))}
	if n, err := client2.ReadFrom(lr); err == nil {
		t.Fatalf("ReadFrom to a closed client: %d bytes, no error", n)
	}

	// Anything else is copied.
	go func() { _, _ = client.ReadFrom(bytes.NewReader([]byte("plain copy"))); client.CloseWrite() }()
	if b, err := io.ReadAll(clientPeer); err != nil || string(b) != "plain copy" {
		t.Fatalf("copied: %q, %v", b, err)
	}
}

// A held write goes out ahead of the spliced body (and is not counted as body); without a
// splice after it, the next write or ReleaseHeld sends it.
func TestRawConnHeldWrite(t *testing.T) {
	client, clientPeer := tcpPair(t)
	upFar, upNear := tcpPair(t)
	data := pattern(200 << 10)
	go func() { _, _ = upFar.Write(data) }()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 4+len(data))
		n, _ := io.ReadFull(clientPeer, b)
		got <- b[:n]
	}()
	client.HoldNextWrite()
	if n, err := client.Write([]byte("HEAD")); n != 4 || err != nil {
		t.Fatalf("held Write: %d, %v", n, err)
	}
	lr := &io.LimitedReader{R: Wrap(upNear), N: int64(len(data))}
	if n, err := client.ReadFrom(lr); err != nil || n != int64(len(data)) || lr.N != 0 {
		t.Fatalf("ReadFrom: %d, %v, %d left", n, err, lr.N)
	}
	if err := client.ReleaseHeld(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, append([]byte("HEAD"), data...)) {
		t.Fatalf("client read %d bytes: head and body intact %v", len(b), bytes.Equal(b, append([]byte("HEAD"), data...)))
	}

	client.HoldNextWrite()
	client.Write([]byte("one "))
	client.Write([]byte("two "))
	client.HoldNextWrite()
	client.Write([]byte("three"))
	if err := client.ReleaseHeld(); err != nil {
		t.Fatal(err)
	}
	client.CloseWrite()
	if b, err := io.ReadAll(clientPeer); err != nil || string(b) != "one two three" {
		t.Fatalf("read %q, %v", b, err)
	}
}

// Writev sends both buffers in order, whole, also when they are larger than the socket
// buffers (partial writes resume mid-buffer); held bytes go first.
func TestRawConnWritev(t *testing.T) {
	rc, peer := tcpPair(t)
	a, b := pattern(3000), bytes.Repeat([]byte("0123456789"), 600<<10)
	got := make(chan []byte, 1)
	go func() {
		d, _ := io.ReadAll(peer)
		got <- d
	}()
	rc.HoldNextWrite()
	if _, err := rc.Write([]byte("held:")); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Writev(a, b); err != nil || n != int64(len(a)+len(b)) {
		t.Fatalf("Writev: %d, %v", n, err)
	}
	if n, err := rc.Writev(nil, []byte("end")); err != nil || n != 3 {
		t.Fatalf("Writev of one buffer: %d, %v", n, err)
	}
	rc.CloseWrite()
	want := append(append(append([]byte("held:"), a...), b...), "end"...)
	if d := <-got; !bytes.Equal(d, want) {
		t.Fatalf("peer read %d bytes, want %d, intact %v", len(d), len(want), bytes.Equal(d, want))
	}
}

// A last write (Write or Writev, large or small) is sent whole and the FIN of the close
// after it ends the stream. The write right after LastWrite is held in the socket for
// that FIN (MSG_MORE: its bytes are queued, not sent), and only that one: a later write
// goes out at once and takes the held bytes with it.
func TestRawConnLastWrite(t *testing.T) {
	for _, size := range []int{700, 3 << 20} {
		for _, vec := range []bool{false, true} {
			rc, peer := tcpPair(t)
			body := pattern(size)
			got := make(chan []byte, 1)
			go func() {
				d, _ := io.ReadAll(peer)
				got <- d
			}()
			rc.LastWrite()
			var err error
			if vec {
				_, err = rc.Writev([]byte("head:"), body)
			} else {
				_, err = rc.Write(append([]byte("head:"), body...))
			}
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
			if d := <-got; !bytes.Equal(d, append([]byte("head:"), body...)) {
				t.Errorf("size %d, writev %v: peer read %d bytes, intact %v", size, vec, len(d), false)
			}
		}
	}
	for _, vec := range []bool{false, true} {
		rc, peer := tcpPair(t)
		rc.LastWrite()
		start := time.Now()
		var err error
		if vec {
			_, err = rc.Writev([]byte("o"), []byte("ne"))
		} else {
			_, err = rc.Write([]byte("one"))
		}
		if err != nil {
			t.Fatal(err)
		}
		held := unsent(t, rc)
		// The kernel sends a held segment on its own once its probe timer fires (200 ms
		// at the least): a check that came later than that has nothing to see.
		if time.Since(start) < 100*time.Millisecond && held != 3 {
			t.Errorf("writev %v: the marked write left %d bytes unsent, want all 3 held for the FIN", vec, held)
		}
		if _, err := rc.Write([]byte("two")); err != nil { // not marked: sent at once
			t.Fatal(err)
		}
		if n := unsent(t, rc); n != 0 {
			t.Errorf("writev %v: %d bytes unsent after an unmarked write, want 0", vec, n)
		}
		_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 6)
		if _, err := io.ReadFull(peer, b); err != nil || string(b) != "onetwo" {
			t.Errorf("writev %v: after a marked write, an unmarked one: read %q, %v", vec, b, err)
		}
	}
}

// unsent is the number of bytes in c's send queue not sent yet (SIOCOUTQNSD).
func unsent(t *testing.T, c *rawConn) int {
	t.Helper()
	var n int
	var err error
	if cerr := c.rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD) }); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Reads and writes allocate nothing (each connection makes its system-call functions
// once), and two goroutines reading one connection at once still both get their bytes.
func TestRawConnReuse(t *testing.T) {
	rc, peer := tcpPair(t)
	one, buf := []byte("x"), make([]byte, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := rc.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a write and a read allocate %v times, want 0", allocs)
	}

	got := make(chan string, 2)
	for range 2 {
		go func() {
			b := make([]byte, 1)
			_, err := rc.Read(b)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(b)
		}()
	}
	if _, err := peer.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	first := <-got
	if _, err := peer.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if b := first + <-got; b != "ab" && b != "ba" {
		t.Errorf("two readers at once read %q, want a and b", b)
	}
}

// Peek looks without taking: nothing yet (EAGAIN, or a wait until the deadline), input
// (1, and a read still gets it), the peer's end (0).
func TestRawConnPeek(t *testing.T) {
	c, peer := tcpPair(t)
	if n, err := c.Peek(false); n != 0 || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("peek with nothing sent: %d, %v; want 0, EAGAIN", n, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if n, err := c.Peek(true); n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("waiting peek past the deadline: %d, %v; want a timeout", n, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = peer.Write([]byte("x"))
	}()
	if n, err := c.Peek(true); n != 1 || err != nil {
		t.Fatalf("waiting peek for input: %d, %v; want 1", n, err)
	}
	if n, err := c.Peek(false); n != 1 || err != nil {
		t.Fatalf("peek with input waiting: %d, %v; want 1", n, err)
	}
	b := make([]byte, 4)
	if n, err := c.Read(b); n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("read after the peeks: %d %q, %v; want the byte peeked", n, b[:n], err)
	}
	_ = peer.Close()
	if n, err := c.Peek(true); n != 0 || err != nil {
		t.Fatalf("peek at the peer's end: %d, %v; want 0, nil", n, err)
	}
}
