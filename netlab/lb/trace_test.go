package lb

// The tests here trace rendered rules through the test model of a namespace's iptables
// (internal/iptablestest): fakeKernel applies iptables-restore --noflush input the way the
// kernel does, and tracer walks new connections through the result, keeping the state
// the real matches keep (statistic nth counters per rule, xt_recent lists, the mark).
//
// Address plan used by the tests in this package:
//   VIPs            203.0.113.100 (:80, :443), 203.0.113.101 (:8080, UDP :53)
//   clients         203.0.113.2 .. 203.0.113.254
//   real servers    172.18.0.11 node-1, 172.18.0.12 node-2, 172.18.0.13 node-3,
//                   172.18.0.14 node-4

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/netlabdev/netlab/netlab/internal/iptablestest"
)

// fakeKernel is the LB namespace's rules.
type fakeKernel struct {
	t testing.TB
	*iptablestest.Kernel
}

func newFakeKernel(t testing.TB) *fakeKernel {
	return &fakeKernel{t: t, Kernel: iptablestest.NewKernel()}
}

// declare creates an empty chain, as a leftover of an earlier apply.
func (k *fakeKernel) declare(table, chain string) {
	k.t.Helper()
	if err := k.Restore([]byte("*" + table + "\n:" + chain + " - [0:0]\nCOMMIT\n")); err != nil {
		k.t.Fatal(err)
	}
}

// restore applies iptables-restore --noflush input; with jumps it then appends the
// missing JumpRules, as the agent does.
func (k *fakeKernel) restore(data []byte, jumps bool) {
	k.t.Helper()
	if err := k.Restore(data); err != nil {
		k.t.Fatalf("restore: %v", err)
	}
	if !jumps {
		return
	}
	for _, j := range JumpRules() {
		if !k.Has(j.Table, j.Chain, j.Args) {
			if err := k.Insert(j.Table, j.Chain, len(k.Rules(j.Table, j.Chain))+1, j.Args); err != nil {
				k.t.Fatalf("jump %v: %v", j, err)
			}
		}
	}
}

// chains lists every non-built-in chain (what the agent passes to Render as existing).
func (k *fakeKernel) chains() []string { return k.UserChains() }

// conn is the first packet of a new connection from a client to a VIP.
type conn struct {
	src   string
	dst   string
	dport int
	proto string // "tcp" (default) or "udp"
}

// verdict is what happened to a new connection.
type verdict struct {
	dnat   string // "ip:port" the connection was DNATed to
	rs     string // the NETLAB-RS chain that did it
	reject string // --reject-with of the REJECT that hit it
}

// tracer sends connections from the wan (203.0.113.0/24, the VIPs' network, is the LB's
// own) through the kernel. A random statistic match needs a random source (Rand).
type tracer struct {
	t testing.TB
	*iptablestest.Tracer
}

func newTracer(t testing.TB, k *fakeKernel) *tracer {
	tr, err := iptablestest.NewTracer(k.Kernel, "203.0.113.0/24")
	if err != nil {
		t.Fatal(err)
	}
	tr.Rand = func() uint32 { t.Fatal("random statistic used without a random source"); return 0 }
	tr.HMark = func(src netip.Addr, rnd, mod, offset uint32) uint32 { return hmarkHash(src.As4(), rnd, mod, offset) }
	return &tracer{t: t, Tracer: tr}
}

// newConn traces the first packet of a connection arriving from the wan.
func (tr *tracer) newConn(c conn) verdict {
	tr.t.Helper()
	if c.proto == "" {
		c.proto = "tcp"
	}
	outs, err := tr.Trace(iptablestest.Packet{Src: c.src, Dst: c.dst, DPort: c.dport, Proto: c.proto})
	if err != nil {
		tr.t.Fatalf("trace %+v: %v", c, err)
	}
	if len(outs) != 1 {
		tr.t.Fatalf("trace %+v: %d outcomes, want 1: %+v", c, len(outs), outs)
	}
	return verdict{dnat: outs[0].DNAT, rs: outs[0].DNATChain, reject: outs[0].RejectWith}
}

// apply renders vss against the kernel's current chains and restores the result.
func apply(t testing.TB, k *fakeKernel, vss []VirtualService) []byte {
	t.Helper()
	out, err := Render(vss, k.chains())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	k.restore(out, true)
	return out
}

// backendOf names the backend a verdict went to, or "REJECT <how>" / "none".
func backendOf(vs VirtualService, v verdict) string {
	if v.reject != "" {
		return "REJECT " + v.reject
	}
	for _, b := range vs.Backends {
		if b.Addr() == v.dnat {
			return b.Name
		}
	}
	if v.dnat != "" {
		return fmt.Sprintf("unknown %s", v.dnat)
	}
	return "none"
}
