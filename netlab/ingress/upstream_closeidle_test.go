package ingress

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// CloseIdleConnectionsTo closes the idle connections to the addresses it is told are
// stale, and only those: the others stay pooled and open.
func TestPoolCloseIdleTo(t *testing.T) {
	p := newPool(time.Second, 4, nil)
	peers := map[string][]net.Conn{}
	for _, addr := range []string{"10.96.0.11:80", "10.96.0.12:80", "10.244.1.2:8080"} {
		for range 2 {
			ours, theirs := net.Pipe()
			t.Cleanup(func() { ours.Close(); theirs.Close() })
			p.put(&upConn{nc: ours, addr: addr})
			peers[addr] = append(peers[addr], theirs)
		}
	}
	stale := map[string]bool{"10.96.0.11:80": true, "10.244.1.2:8080": true}
	h := &Handler{pool: p}
	if n := h.CloseIdleConnectionsTo(func(addr string) bool { return stale[addr] }); n != 4 {
		t.Errorf("closed %d connections, want 4 (two to each stale address)", n)
	}
	for addr, conns := range peers {
		if got := len(p.idle[addr]); stale[addr] && got != 0 || !stale[addr] && got != 2 {
			t.Errorf("%s: %d idle connections left (stale %v)", addr, got, stale[addr])
		}
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
			if closed != stale[addr] {
				t.Errorf("%s: the peer's read gave %v; closed %v, want %v", addr, err, closed, stale[addr])
			}
		}
	}
}
