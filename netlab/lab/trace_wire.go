package lab

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/capture"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"golang.org/x/sys/unix"
)

// The packets of a trace: one packet socket per lab namespace the request may cross
// (sender, LB, nodes, pods), each with a kernel filter narrowed to the lab's addresses and
// the ports the request can use before and after each rewrite. After the request, the
// packets of its flows (found from conntrack and the pod's echo) are kept and each is
// given to the hop of the namespace it was seen in.

// captureTargets are the namespaces a request may cross, with their object names.
func (t *tracer) captureTargets() []capture.Target {
	seen := map[string]bool{}
	var out []capture.Target
	add := func(object, ns string) {
		if ns != "" && !seen[ns] && kernel.NetnsExists(ns) {
			seen[ns] = true
			out = append(out, capture.Target{Object: object, Netns: ns})
		}
	}
	add(t.from, t.fromNS)
	add("lb", t.p.LB.Netns)
	for _, n := range t.p.Nodes {
		add(n.Name, n.Netns)
	}
	for _, pod := range t.p.Pods {
		add(pod.Name, pod.Netns)
	}
	return out
}

// flowFilter keeps the lab's own addresses and the ports a request uses: the target's,
// every Service's port, NodePort and target port, the ingress's, and VXLAN's.
func (t *tracer) flowFilter() ([]capture.RawFilter, error) {
	p := t.p
	var nets []netip.Prefix
	addr := func(s string) {
		if a, err := netip.ParseAddr(plan.Addr(s)); err == nil {
			nets = append(nets, netip.PrefixFrom(a, 32))
		}
	}
	cidr := func(s string) {
		if pr, err := netip.ParsePrefix(s); err == nil {
			nets = append(nets, pr)
		}
	}
	for _, c := range p.Clients {
		addr(c.IP)
	}
	addr(p.LB.WanIP)
	addr(p.LB.FabricIP)
	for _, v := range p.LB.VIPs {
		addr(v.IP)
	}
	for _, n := range p.Nodes {
		addr(n.IP)
		addr(n.Gateway)
	}
	cidr(p.Network.PodCIDR)
	cidr(p.Network.ServiceCIDR)
	nets = append(nets, netip.PrefixFrom(t.dst, 32))

	ports := []uint16{t.target.Port(), uint16(p.Ingress.HTTPPort), uint16(p.Ingress.HTTPSPort)}
	for vx := range capture.VXLANPorts {
		ports = append(ports, vx)
	}
	for _, v := range p.LB.VIPs {
		ports = append(ports, uint16(v.Port), uint16(v.NodePort))
	}
	for _, s := range p.Services {
		for _, sp := range s.Ports {
			ports = append(ports, uint16(sp.Port), uint16(sp.NodePort))
		}
		for _, e := range s.Endpoints {
			ports = append(ports, uint16(e.Port))
		}
	}
	for _, pod := range p.Pods {
		for _, cp := range pod.Ports {
			ports = append(ports, uint16(cp.Port))
		}
	}
	if prog, err := capture.FlowFilter(nets, ports); err == nil {
		return prog, nil
	}
	// A big lab has more ports than one filter holds: keep the addresses only.
	return capture.FlowFilter(nets, nil)
}

func (t *tracer) startCapture() error {
	prog, err := t.flowFilter()
	if err != nil {
		return err
	}
	s, err := capture.Start(t.captureTargets(), prog)
	if err != nil {
		return err
	}
	t.session = s
	return nil
}

// stopCapture waits a moment for the last packets (the connection's close) and keeps
// every packet read.
func (t *tracer) stopCapture() {
	if t.session == nil {
		return
	}
	t.packets = t.session.Collect(30 * time.Millisecond)
	t.ifaces = t.session.Ifaces()
}

// failureFlows adds, for a request that got no answer, what the nodes' conntrack knows of
// it: the NAT the first packet met before it died.
func (t *tracer) failureFlows() {
	if t.tr.Error == "" || !t.local.IsValid() {
		return
	}
	// A socket that never connected was bound to no address in particular: its source is
	// what routing chose, as its first packet shows.
	for _, p := range t.packets {
		if !p.Outgoing || t.ifaces[p.Iface].Netns != t.fromNS {
			continue
		}
		if s := capture.Decode(p.Data); s.Dst == t.target && s.Src.Port() == t.local.Port() {
			t.local = s.Src
			t.addFlow(t.local, t.target)
			break
		}
	}
	for _, n := range t.p.Nodes {
		flows, err := t.h.Flows(n.Netns)
		if err != nil {
			continue
		}
		for _, f := range flows {
			if f.OrigSrc == t.local {
				t.addFlow(f.OrigSrc, f.OrigDst)
				t.addFlow(f.OrigSrc, f.ReplySrc)
				t.addFlow(f.ReplyDst, f.ReplySrc)
				if t.entryNS == "" {
					t.setEntry(n.Name)
				}
			}
		}
	}
}

// wirePacket is a captured packet of the traced request.
type wirePacket struct {
	capture.Packet
	sum  capture.Summary
	flow capture.Flow
}

// requestPackets are the captured packets that belong to the request's flows, in time
// order.
func (t *tracer) requestPackets() []wirePacket {
	var out []wirePacket
	for _, p := range t.packets {
		s := capture.Decode(p.Data)
		if !s.Src.IsValid() {
			continue
		}
		fl := s.FlowOf()
		if t.flows[fl] {
			out = append(out, wirePacket{Packet: p, sum: s, flow: fl})
		}
	}
	return out
}

// attachPackets gives each of the request's packets to the hop of the namespace it was
// seen in, making a hop where the request went but none was written (a failed request).
func (t *tracer) attachPackets() {
	t.failureFlows()
	if t.session == nil {
		return
	}
	pkts := t.requestPackets()
	if len(pkts) == 0 {
		t.tr.Notes = append(t.tr.Notes, "no packet of this request was captured")
		return
	}
	t0 := pkts[0].Time
	for _, wp := range pkts {
		ifc := t.ifaces[wp.Iface]
		step := t.stepOf(ifc.Netns, wp.flow)
		h := t.hopFor(step, ifc)
		h.Packets = append(h.Packets, TracePacket{
			Time: capture.Since(wp.Packet, t0), Interface: ifc.Label(), Direction: capture.Direction(wp.Packet),
			Src: wp.sum.Src.String(), Dst: wp.sum.Dst.String(), Proto: wp.sum.Proto, Flags: wp.sum.Flags,
			Len: wp.sum.Len, Encap: wp.sum.Encap,
		})
		if wp.sum.Proto == "icmp" {
			last := &h.Packets[len(h.Packets)-1]
			last.Src, last.Dst = wp.sum.Src.Addr().String(), wp.sum.Dst.Addr().String()
		}
	}
	sort.SliceStable(t.tr.Hops, func(i, j int) bool { return t.tr.Hops[i].Step < t.tr.Hops[j].Step })
}

// stepOf is the article's step a packet seen in a namespace belongs to.
func (t *tracer) stepOf(ns string, fl capture.Flow) int {
	switch {
	case ns == t.fromNS:
		return stepClient
	case ns == t.p.LB.Netns:
		return stepLB
	case ns == t.entryNS:
		if t.viaIngress && !t.inner[fl] {
			return stepIngress
		}
		return stepKubeProxy
	}
	for _, pod := range t.p.Pods {
		if pod.Netns == ns {
			return stepPod
		}
	}
	return stepNetwork
}

// hopFor returns the hop of a step, making one for the namespace when there is none.
func (t *tracer) hopFor(step int, ifc capture.Iface) *Hop {
	for i := range t.tr.Hops {
		if t.tr.Hops[i].Step == step {
			return &t.tr.Hops[i]
		}
	}
	h := Hop{Step: step, Object: ifc.Object, Namespace: ifc.Netns, Packets: []TracePacket{},
		Watch: fmt.Sprintf("netlab capture %s", ifc.Object)}
	switch step {
	case stepClient:
		h.Component, h.Summary = "client", "the sender"
	case stepLB:
		h.Component, h.Summary = "load balancer", "lb routes it (the nodes' gateway; no virtual service for this address)"
	case stepIngress:
		h.Component, h.Summary = "ingress", "on "+ifc.Object
	case stepKubeProxy:
		h.Component, h.Summary = "kube-proxy", "on "+ifc.Object+": the packets after kube-proxy's rules"
		h.Watch = "netlab rules " + ifc.Object
	case stepNetwork:
		h.Component, h.Summary = "network", "on "+ifc.Object
	case stepPod:
		h.Component, h.Summary = "pod", "pod "+ifc.Object+": no answer"
	}
	t.tr.Hops = append(t.tr.Hops, h)
	return &t.tr.Hops[len(t.tr.Hops)-1]
}

// writePcap writes the request's packets as pcapng, every captured interface described.
func (t *tracer) writePcap(w io.Writer) error {
	if t.session == nil || len(t.ifaces) == 0 {
		return fmt.Errorf("no packets captured for the pcap file")
	}
	pw, err := capture.NewWriter(w, t.ifaces, false)
	if err != nil {
		return err
	}
	for _, wp := range t.requestPackets() {
		if err := pw.Write(wp.Packet, t.ifaces); err != nil {
			return err
		}
	}
	return pw.Close()
}

// findDrop ends a failed trace with where the request died, from its packets: the first
// reset or ICMP error and where it came from, else the last place the request was seen.
func (t *tracer) findDrop(sendErr error, kernelDrops []LabDrop) {
	pkts := t.requestPackets()
	d := &TraceDrop{Reason: "no answer"}
	t.tr.Drop = d
	if kd, ok := t.kernelDrop(kernelDrops); ok {
		d.Object, d.Namespace, d.Interface, d.Reason = kd.Object, kd.Namespace, kd.Interface, kd.Reason
		d.Detail = fmt.Sprintf("the kernel dropped %s → %s %s", kd.Src, kd.Dst, kd.Proto)
		if kd.Reason == "OTHERHOST" {
			d.Detail = fmt.Sprintf("%s → %s reached only hosts it was not for (flooded by a bridge)", kd.Src, kd.Dst)
			if n := t.downNode(); n != "" {
				d.Detail += fmt.Sprintf(": %s is off the fabric (its eth0 is down)", n)
			}
		}
		if strings.HasPrefix(kd.Reason, "NETFILTER") {
			if e, r, ok := t.ruleDrop(); ok && e.Netns == kd.Namespace {
				d.Rule = r.String()
			} else if dst, err := netip.ParseAddrPort(kd.Dst); err == nil {
				d.Rule = netfilterRule(kd.Namespace, dst)
			}
		}
		return
	}
	if e, r, ok := t.ruleDrop(); ok {
		// No kernel drop reasons (no BPF), but the rule trace saw a rule drop it.
		d.Object, d.Namespace, d.Reason, d.Rule = e.Object, e.Netns, "NETFILTER_DROP", r.String()
		d.Interface = t.ifaceLabel(e.Object, e.Netns, e.Iif)
		d.Detail = fmt.Sprintf("a rule dropped %s", r.Packet)
		return
	}
	if errors.Is(sendErr, unix.ENETUNREACH) && len(pkts) == 0 {
		// The sender's own routing table refused it: no packet ever left.
		d.Object, d.Namespace, d.Reason = t.from, t.fromNS, "IP_NOROUTE"
		d.Detail = fmt.Sprintf("%s has no route to %s", t.from, t.dst)
		if t.dst.IsValid() && t.inPodCIDR(t.dst) {
			d.Detail += ": pod addresses are reachable only inside the cluster"
		}
		return
	}
	for _, wp := range pkts {
		ifc := t.ifaces[wp.Iface]
		switch {
		case strings.Contains(wp.sum.Flags, "RST"):
			d.Object, d.Namespace, d.Interface = ifc.Object, ifc.Netns, ifc.Label()
			d.Reason = "TCP_RESET"
			d.Detail = fmt.Sprintf("%s answered the SYN to %s with a reset: nothing listens there", ifc.Object, wp.sum.Src)
			return
		case wp.sum.Proto == "icmp" && wp.sum.Quoted != nil:
			d.Object, d.Namespace, d.Interface = ifc.Object, ifc.Netns, ifc.Label()
			d.Reason = "ICMP " + wp.sum.Flags
			d.Detail = fmt.Sprintf("%s rejected %s → %s", ifc.Object, wp.sum.Quoted.Src, wp.sum.Quoted.Dst)
			return
		}
	}
	// Nothing came back: the last place a packet from the sender was seen.
	for i := len(pkts) - 1; i >= 0; i-- {
		wp := pkts[i]
		ifc := t.ifaces[wp.Iface]
		d.Object, d.Namespace, d.Interface = ifc.Object, ifc.Netns, ifc.Label()
		d.Detail = fmt.Sprintf("last seen %s %s, %s → %s", capture.Direction(wp.Packet), ifc.Label(), wp.sum.Src, wp.sum.Dst)
		return
	}
	d.Object, d.Namespace = t.from, t.fromNS
	d.Detail = "no packet of the request was seen"
}

// ifaceLabel names an interface of a namespace by index: <object>/<ifname>.
func (t *tracer) ifaceLabel(object, ns string, index uint32) string {
	if index == 0 {
		return ""
	}
	nh, err := t.h.Get(ns)
	if err != nil {
		return ""
	}
	l, err := nh.LinkByIndex(int(index))
	if err != nil {
		return ""
	}
	return object + "/" + l.Attrs().Name
}

func (t *tracer) inPodCIDR(a netip.Addr) bool {
	pr, err := netip.ParsePrefix(t.p.Network.PodCIDR)
	return err == nil && pr.Contains(a)
}
