package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/netlabdev/netlab/netlab/capture"
	"github.com/netlabdev/netlab/netlab/drops"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
)

// The kernel's drops during a trace: the lab's drop program runs while the request does,
// and a failed request ends with the drop of its own flow, with the kernel's reason and,
// for a netfilter drop, the rule that rejected or dropped it.

type traceDrops struct {
	w    *DropWatcher
	mu   sync.Mutex
	seen []LabDrop
	done chan struct{}
}

func (t *tracer) startDrops() {
	w, err := WatchDrops(t.labName)
	if err != nil {
		t.dropsNote = "no kernel drop reasons: " + err.Error()
		if errors.Is(err, drops.ErrUnsupported) {
			t.dropsNote = "no kernel drop reasons: " + firstLine([]byte(err.Error()))
		}
		return
	}
	d := &traceDrops{w: w, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			ld, err := w.Next()
			if err != nil {
				return
			}
			d.mu.Lock()
			d.seen = append(d.seen, ld)
			d.mu.Unlock()
			t.dropWhileDialing(ld)
		}
	}()
	t.drops = d
}

// dropWhileDialing ends a connection attempt whose packet the kernel dropped for good
// (not a flooded copy): waiting for the dial's timeout would only repeat the drop.
func (t *tracer) dropWhileDialing(ld LabDrop) {
	src, err := netip.ParseAddrPort(ld.Src)
	if err != nil || ld.Reason == "OTHERHOST" || uint32(src.Port()) != t.localPort.Load() {
		return
	}
	if a := objectIP(t.p, t.from); a.IsValid() && src.Addr() != a && !t.nodeAddr(src.Addr(), t.from) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancelDial != nil {
		t.cancelDial(fmt.Errorf("dropped by the kernel at %s: %s", ld.Object, ld.Reason))
	}
}

// nodeAddr says whether a is one of a node's own addresses (its cni0 gateway: a node
// sending to its pods uses that).
func (t *tracer) nodeAddr(a netip.Addr, node string) bool {
	for _, n := range t.p.Nodes {
		if n.Name == node && plan.Addr(n.Gateway) == a.String() {
			return true
		}
	}
	return false
}

// stopDrops unloads the program (after the capture's settling time, so the drops of the
// request's last packets are in) and keeps what it reported.
func (t *tracer) stopDrops() []LabDrop {
	d := t.drops
	if d == nil {
		return nil
	}
	t.drops = nil
	d.w.Close()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen
}

// kernelDrop is the first drop of one of the request's flows the kernel reported. A copy
// dropped as OTHERHOST (a frame a bridge flooded to a host it was not for) counts only
// when nothing else was dropped.
func (t *tracer) kernelDrop(seen []LabDrop) (LabDrop, bool) {
	var flooded *LabDrop
	for i, d := range seen {
		src, err1 := netip.ParseAddrPort(d.Src)
		dst, err2 := netip.ParseAddrPort(d.Dst)
		if err1 != nil || err2 != nil {
			continue
		}
		if !t.flows[capture.Flow{A: src, B: dst}.Key()] {
			continue
		}
		if d.Reason == "OTHERHOST" {
			if flooded == nil {
				flooded = &seen[i]
			}
			continue
		}
		return d, true
	}
	if flooded != nil {
		return *flooded, true
	}
	return LabDrop{}, false
}

// downNode names a node whose fabric link is down and that owns one of the request's
// destinations: a flooded frame had nowhere else to go.
func (t *tracer) downNode() string {
	for _, n := range t.p.Nodes {
		ip, err := netip.ParseAddr(plan.Addr(n.IP))
		if err != nil {
			continue
		}
		mine := false
		for fl := range t.flows {
			if fl.A.Addr() == ip || fl.B.Addr() == ip {
				mine = true
			}
		}
		if up, err := t.h.LinkUp(n.Netns, "eth0"); mine && err == nil && !up {
			return n.Name
		}
	}
	return ""
}

// netfilterRule finds the REJECT or DROP rule in a namespace that matches a destination
// and has counted packets: the one that acted on the request.
func netfilterRule(ns string, dst netip.AddrPort) string {
	var best string
	for _, table := range []string{"filter", "nat", "mangle", "raw"} {
		out, err := kernel.Save(ns, true, table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, "-j REJECT") && !strings.Contains(line, "-j DROP") {
				continue
			}
			if strings.HasPrefix(line, "[0:0]") {
				continue // never matched
			}
			port := fmt.Sprintf("--dport %d", dst.Port())
			addr := "-d " + dst.Addr().String() + "/32"
			if strings.Contains(line, port) && (strings.Contains(line, addr) || !strings.Contains(line, "-d ")) {
				if _, rule, ok := strings.Cut(line, "] "); ok {
					return table + ": " + rule
				}
			}
			if best == "" && strings.Contains(line, addr) {
				if _, rule, ok := strings.Cut(line, "] "); ok {
					best = table + ": " + rule
				}
			}
		}
	}
	if best == "" {
		best = nftDropElement(ns, dst)
	}
	return best
}
