package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/netlabdev/netlab/netlab/capture"
	"github.com/netlabdev/netlab/netlab/nftrace"
	"golang.org/x/sys/unix"
)

// Which rules acted: while the request runs, nf_tables tracing is switched on for its
// flow only (netlab/nftrace) in the sender's, the LB's and the nodes' namespaces — the
// sender's address and port, and on the nodes the SYNs they send to the service network
// (an ingress's own connection to a Service). Each hop then names the rules its flow's
// first packet matched there, in order, with their verdicts: kube-proxy's KUBE-SERVICES →
// KUBE-SVC-… → KUBE-SEP-… DNAT in iptables mode, the `ip kube-proxy` chains in nftables
// mode. A packet a rule drops ends the dial at once.

// TraceRule is a rule that acted on the first packet of one of the request's flows.
type TraceRule struct {
	Table    string `json:"table"`
	Chain    string `json:"chain"`
	Position int    `json:"position"` // 1 for the chain's first rule; 0 for a chain's policy
	Rule     string `json:"rule"`     // its text: iptables-save's (iptables mode) or nft's
	Verdict  string `json:"verdict"`  // accept, drop, continue, jump CHAIN, goto CHAIN, policy accept...
	Packet   string `json:"packet"`   // the packet it acted on, as it was at that point
}

// String is the rule as trace prints it.
func (r TraceRule) String() string {
	if r.Position == 0 {
		return fmt.Sprintf("%s %s: policy %s", r.Table, r.Chain, r.Verdict)
	}
	s := fmt.Sprintf("%s %s rule %d", r.Table, r.Chain, r.Position)
	if r.Rule != "" {
		s += ": " + r.Rule
	}
	return s + " → " + r.Verdict
}

// ruleTrace is one attempt's nf_tables tracing.
type ruleTrace struct {
	s      *nftrace.Session
	mu     sync.Mutex
	rules  map[string]map[uint64]nftrace.Rule // netns/table → handle → rule
	drop   *nftrace.Event                     // a rule dropped the sender's own packet
	events []nftrace.Event
}

// startRuleTrace switches tracing on for the sender's bound address, before it connects.
func (t *tracer) startRuleTrace(local netip.AddrPort) {
	targets := []nftrace.Target{{Object: t.from, Netns: t.fromNS}}
	seen := map[string]bool{t.fromNS: true}
	add := func(object, ns string, syns bool) {
		if ns != "" && !seen[ns] {
			seen[ns] = true
			targets = append(targets, nftrace.Target{Object: object, Netns: ns, LocalSYNs: syns})
		}
	}
	add("lb", t.p.LB.Netns, false)
	for _, n := range t.p.Nodes {
		add(n.Name, n.Netns, true)
	}
	proto := uint8(unix.IPPROTO_TCP)
	if t.u.Scheme == "udp" {
		proto = unix.IPPROTO_UDP
	}
	spec := nftrace.Spec{Peer: local, Proto: proto}
	spec.SYNsTo, _ = netip.ParsePrefix(t.p.Network.ServiceCIDR)
	rt := &ruleTrace{rules: map[string]map[uint64]nftrace.Rule{}}
	s, err := nftrace.Start(targets, spec, func(e nftrace.Event) {
		if e.Verdict != "drop" || e.Mine() || e.Src != local || (proto == unix.IPPROTO_TCP && e.TCPFlags&0x12 != 0x02) {
			return
		}
		rt.mu.Lock()
		first := rt.drop == nil
		if first {
			rt.drop = &e
		}
		rt.mu.Unlock()
		if first {
			go t.ruleDropWhileDialing(rt, e)
		}
	})
	if err != nil {
		t.tr.Notes = append(t.tr.Notes, "no rule trace: "+err.Error())
		return
	}
	rt.s = s
	t.rt = rt
}

// ruleDropWhileDialing ends a connection attempt whose first packet a rule dropped: the
// kernel will not send it again any better. A REJECT answers for itself (a reset or an
// ICMP error ends the dial with what the sender saw), so only silent drops are cut short.
func (t *tracer) ruleDropWhileDialing(rt *ruleTrace, e nftrace.Event) {
	r := rt.rule(e)
	if strings.Contains(strings.ToUpper(r.Rule), "REJECT") {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancelDial != nil {
		t.cancelDial(fmt.Errorf("dropped at %s by %s", e.Object, r))
	}
}

// routeSource is the address the sender's namespace sends to the target from.
func (t *tracer) routeSource() netip.Addr {
	nh, err := t.h.Get(t.fromNS)
	if err != nil {
		return netip.Addr{}
	}
	routes, err := nh.RouteGet(t.dst.AsSlice())
	if err != nil || len(routes) == 0 {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(routes[0].Src.To4())
	return a
}

// droppedByRule says whether the rule trace saw a rule drop the sender's first packet:
// then it knows where and why the request died, without the kernel's drop program.
func (t *tracer) droppedByRule() bool {
	if t.rt == nil {
		return false
	}
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	return t.rt.drop != nil
}

// stopRuleTrace removes the trace rules and keeps the events.
func (t *tracer) stopRuleTrace() {
	if t.rt == nil || t.rt.s == nil {
		return
	}
	t.rt.events = t.rt.s.Stop()
	if t.rt.s.Overflowed() {
		t.tr.Notes = append(t.tr.Notes, "some rule trace events were lost (socket buffer full)")
	}
	t.rt.s = nil
}

// rule describes the rule (or policy) of an event, looking its place and text up once
// per namespace and table.
func (rt *ruleTrace) rule(e nftrace.Event) TraceRule {
	tr := TraceRule{Table: e.Table, Chain: e.Chain, Verdict: e.Verdict,
		Packet: fmt.Sprintf("%s → %s %s", e.Src, e.Dst, protoName(e.Proto, e.TCPFlags))}
	if e.Target != "" {
		tr.Verdict += " " + e.Target
	}
	if e.Type == "policy" {
		return tr
	}
	rt.lookUp(map[string][]string{e.Netns: {e.Table}})
	rt.mu.Lock()
	rules := rt.rules[e.Netns+"/"+e.Table]
	rt.mu.Unlock()
	if r, ok := rules[e.Handle]; ok {
		tr.Position, tr.Rule = r.Position, r.Text
	} else {
		tr.Position = -1 // a rule deleted since (kube-proxy resynced)
	}
	return tr
}

// lookUp reads the rules of the tables named (netns → tables) it has not read yet, one
// namespace per goroutine.
func (rt *ruleTrace) lookUp(need map[string][]string) {
	var wg sync.WaitGroup
	for ns, tables := range need {
		var missing []string
		rt.mu.Lock()
		for _, tb := range tables {
			if _, ok := rt.rules[ns+"/"+tb]; !ok && !slices.Contains(missing, tb) {
				missing = append(missing, tb)
			}
		}
		rt.mu.Unlock()
		if len(missing) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _ := nftrace.Rules(ns, missing...)
			rt.mu.Lock()
			for _, tb := range missing {
				rt.rules[ns+"/"+tb] = got[tb]
			}
			rt.mu.Unlock()
		}()
	}
	wg.Wait()
}

func protoName(p, flags uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		var f []string
		for _, b := range []struct {
			bit  uint8
			name string
		}{{0x02, "SYN"}, {0x01, "FIN"}, {0x04, "RST"}, {0x08, "PSH"}, {0x10, "ACK"}} {
			if flags&b.bit != 0 {
				f = append(f, b.name)
			}
		}
		return "tcp " + strings.Join(f, "-")
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	}
	return fmt.Sprintf("proto %d", p)
}

// attachRules gives each hop the rules its flows' first packet matched in its namespace:
// the SYN (or a UDP flow's first datagram) through each hook, once per flow as the packet
// was addressed there (before and after a DNAT).
func (t *tracer) attachRules() {
	if t.rt == nil {
		return
	}
	type walk struct {
		events []nftrace.Event
		keep   bool
	}
	var walks []*walk
	cur := map[string]*walk{}  // netns/id → the walk its events belong to now
	shown := map[string]bool{} // netns, flow, hook's first chain → shown already
	for _, e := range t.rt.events {
		id := fmt.Sprintf("%s/%d", e.Netns, e.ID)
		if e.Hook {
			fl := capture.Flow{A: e.Src, B: e.Dst}.Key()
			first := e.Proto != unix.IPPROTO_TCP || e.TCPFlags&0x12 == 0x02
			key := fmt.Sprintf("%s %s %s %s %s", e.Netns, fl.A, fl.B, e.Table, e.Chain)
			w := &walk{keep: t.flows[fl] && first && !shown[key]}
			shown[key] = true
			cur[id] = w
			walks = append(walks, w)
		}
		w := cur[id]
		if w == nil || !w.keep || e.Mine() || (e.Type != "rule" && !(e.Type == "policy" && e.Verdict == "drop")) {
			continue
		}
		w.events = append(w.events, e)
	}
	need := map[string][]string{}
	for _, w := range walks {
		for _, e := range w.events {
			need[e.Netns] = append(need[e.Netns], e.Table)
		}
	}
	t.rt.lookUp(need)
	described := make([][]TraceRule, len(walks))
	for i, w := range walks {
		for _, e := range w.events {
			r := t.rt.rule(e)
			if r.Position < 0 && e.Verdict == "continue" {
				continue // the end of a chain, reported as a rule the kernel does not list
			}
			described[i] = append(described[i], r)
		}
	}
	for i, w := range walks {
		if len(described[i]) == 0 {
			continue
		}
		e := w.events[0]
		fl := capture.Flow{A: e.Src, B: e.Dst}.Key()
		step := t.stepOf(e.Netns, fl)
		if step == stepClient && e.Netns == t.entryNS {
			step = stepKubeProxy // a node sending: its own rules are kube-proxy's
		}
		h := t.hopFor(step, capture.Iface{Object: e.Object, Netns: e.Netns})
		h.Rules = append(h.Rules, described[i]...)
	}
	sort.SliceStable(t.tr.Hops, func(i, j int) bool { return t.tr.Hops[i].Step < t.tr.Hops[j].Step })
	for i := range t.tr.Hops {
		if h := &t.tr.Hops[i]; h.Step == stepKubeProxy && t.viaIngress && len(h.Rules) == 0 && t.echo.Pod != "" {
			h.Details = append(h.Details, "no rule traced: the ingress sent the request on a kept-alive connection to the Service, whose first packet met these rules before this trace")
		}
	}
}

// ruleDrop is the rule that dropped one of the request's packets, if one did.
func (t *tracer) ruleDrop() (nftrace.Event, TraceRule, bool) {
	if t.rt == nil {
		return nftrace.Event{}, TraceRule{}, false
	}
	for _, e := range t.rt.events {
		if e.Mine() || e.Verdict != "drop" || !t.flows[capture.Flow{A: e.Src, B: e.Dst}.Key()] {
			continue
		}
		return e, t.rt.rule(e), true
	}
	return nftrace.Event{}, TraceRule{}, false
}
