package kubeproxy

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// UDPServing is what a node's UDP Services serve, as kube-proxy's conntrack clean-up
// needs it. UDP has no connection to end: once a conntrack entry carries a client's flow
// to an endpoint, every later datagram of that flow follows the entry, not the rules.
// When the endpoint goes, the flow would keep going to it (and get "port unreachable")
// until the entry times out; when a Service without endpoints gets one, the flow would
// stay un-NATed and keep being rejected. kube-proxy therefore deletes, after a sync, the
// UDP entries to a Service's address whose reply does not come from one of the Service's
// serving endpoints (its conntrack.CleanStaleEntries). UDPServing answers that question
// for one flow (Stale).
type UDPServing struct {
	nodeIP netip.Addr
	// byDst: a Service's ClusterIP, load-balancer or external IP and port → the IPs of
	// its serving endpoints; nil when it has none (its flows are left alone).
	byDst map[netip.AddrPort]map[netip.Addr]bool
	// byNodePort: a UDP NodePort → the same.
	byNodePort map[uint16]map[netip.Addr]bool
	key        string
}

// NewUDPServing collects the UDP Service ports of ports for node. As kube-proxy does, the
// endpoints a flow may keep going to are every serving one of the port, by IP: traffic
// policies, readiness against serving-terminating and the node do not enter (the rules
// decide where new flows go; a flow to a pod that still serves is left to finish).
func NewUDPServing(node Node, ports []ServicePort) *UDPServing {
	u := &UDPServing{byDst: map[netip.AddrPort]map[netip.Addr]bool{}, byNodePort: map[uint16]map[netip.Addr]bool{}}
	u.nodeIP, _ = netip.ParseAddr(node.IP)
	var keys []string
	for i := range ports {
		sp := &ports[i]
		if !strings.EqualFold(sp.Protocol, "UDP") {
			continue
		}
		var serving map[netip.Addr]bool
		for _, ep := range sp.Endpoints {
			if a, err := netip.ParseAddr(ep.IP); err == nil && ep.IsServing() {
				if serving == nil {
					serving = map[netip.Addr]bool{}
				}
				serving[a] = true
			}
		}
		add := func(ip string) {
			if a, err := netip.ParseAddr(ip); err == nil {
				u.byDst[netip.AddrPortFrom(a, uint16(sp.Port))] = serving
			}
		}
		add(sp.ClusterIP)
		for _, ip := range sp.LoadBalancerIPs {
			add(ip)
		}
		for _, ip := range sp.ExternalIPs {
			add(ip)
		}
		if sp.NodePort != 0 {
			u.byNodePort[uint16(sp.NodePort)] = serving
		}
		k := sp.ServicePortName() + "=" + sp.ClusterIP + ":" + strconv.Itoa(int(sp.Port)) + "," +
			strconv.Itoa(int(sp.NodePort)) + "," + strings.Join(sp.LoadBalancerIPs, ",") + "," +
			strings.Join(sp.ExternalIPs, ",") + ">" + setString(serving)
		keys = append(keys, k)
	}
	sort.Strings(keys)
	u.key = strings.Join(keys, ";")
	return u
}

func setString(s map[netip.Addr]bool) string {
	out := make([]string, 0, len(s))
	for a := range s {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// Key identifies what the rules do with UDP: two UDPServing with the same key make the
// same flows stale, so a sync that leaves it unchanged needs no clean-up.
func (u *UDPServing) Key() string { return u.key }

// Empty says whether the node has no UDP Service port at all.
func (u *UDPServing) Empty() bool { return len(u.byDst) == 0 && len(u.byNodePort) == 0 }

// Stale says whether a UDP conntrack entry, with the original direction's destination
// origDst and the reply direction's source replySrc (where the entry sends the flow: the
// endpoint after DNAT, or origDst itself when it was not translated), carries a flow to a
// Service somewhere that no longer serves it.
func (u *UDPServing) Stale(origDst, replySrc netip.AddrPort) bool {
	if eps, ok := u.byDst[origDst]; ok {
		return eps != nil && !eps[replySrc.Addr()]
	}
	eps, ok := u.byNodePort[origDst.Port()]
	if !ok {
		return false
	}
	translated := origDst != replySrc
	// A NodePort answers on the node's own address; a flow through it was translated.
	// An untranslated flow to another address (a pod's port that happens to have the
	// same number) is not the Service's.
	if !translated && origDst.Addr() != u.nodeIP {
		return false
	}
	return eps != nil && !eps[replySrc.Addr()]
}

// StaleSince is Stale, and also true for a flow to an address or NodePort that prev
// served and u no longer does (a UDP Service or port removed): its entries would carry
// the flow to the old endpoints until they time out. prev may be nil.
func (u *UDPServing) StaleSince(prev *UDPServing, origDst, replySrc netip.AddrPort) bool {
	if u.Stale(origDst, replySrc) {
		return true
	}
	if prev == nil {
		return false
	}
	if _, ok := u.byDst[origDst]; ok {
		return false
	}
	if _, ok := prev.byDst[origDst]; ok {
		return true
	}
	if _, ok := u.byNodePort[origDst.Port()]; ok {
		return false
	}
	if _, ok := prev.byNodePort[origDst.Port()]; ok {
		return origDst != replySrc || origDst.Addr() == prev.nodeIP
	}
	return false
}
