package ingress

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// CloseIdleConnectionsTo marks the addresses it is told are stale: their idle connections
// are closed at once, one busy at the mark is closed when it comes back instead of being
// pooled, and one dialled after the mark is pooled as usual. Other addresses keep theirs.
func TestPoolCloseIdleTo(t *testing.T) {
	addrs := make([]string, 3)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		addrs[i] = ln.Addr().String()
	}
	ctx := context.Background()
	p := newPool(time.Second, 4, nil)
	t.Cleanup(p.closeIdle)
	dial := func(addr string) *upConn {
		t.Helper()
		c, err := p.dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	closed := func(c *upConn) bool {
		_, err := c.nc.Write([]byte{0})
		return errors.Is(err, net.ErrClosed)
	}
	idle := map[string][]*upConn{}
	for _, a := range addrs {
		for range 2 {
			c := dial(a)
			idle[a] = append(idle[a], c)
			p.put(c)
		}
	}
	busy := dial(addrs[0]) // carrying a request while the endpoints change
	stale := map[string]bool{addrs[0]: true, addrs[2]: true}

	h := &Handler{pool: p}
	if n := h.CloseIdleConnectionsTo(func(addr string) bool { return stale[addr] }); n != 4 {
		t.Errorf("closed %d idle connections, want 4 (two to each stale address)", n)
	}
	for _, a := range addrs {
		if got, want := len(p.idle[a]), map[bool]int{true: 0, false: 2}[stale[a]]; got != want {
			t.Errorf("%s (stale %v): %d idle connections, want %d", a, stale[a], got, want)
		}
		for _, c := range idle[a] {
			if closed(c) != stale[a] {
				t.Errorf("%s (stale %v): an idle connection closed: %v", a, stale[a], closed(c))
			}
		}
	}
	p.put(busy)
	if !closed(busy) || len(p.idle[addrs[0]]) != 0 {
		t.Errorf("a connection busy at the mark went back to the pool (closed %v, %d idle)", closed(busy), len(p.idle[addrs[0]]))
	}
	fresh := dial(addrs[0])
	p.put(fresh)
	if closed(fresh) || len(p.idle[addrs[0]]) != 1 {
		t.Errorf("a connection dialled after the mark was not pooled (closed %v, %d idle)", closed(fresh), len(p.idle[addrs[0]]))
	}
	// A later mark that finds nothing stale leaves it pooled.
	if n := h.CloseIdleConnectionsTo(func(string) bool { return false }); n != 0 || len(p.idle[addrs[0]]) != 1 {
		t.Errorf("a mark with nothing stale closed %d, left %d idle", n, len(p.idle[addrs[0]]))
	}
}
