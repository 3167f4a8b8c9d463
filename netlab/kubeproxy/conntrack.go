package kubeproxy

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// UDPServing is what a node's rules do with UDP Service traffic, as kube-proxy's conntrack
// clean-up needs it. UDP has no connection to end: once a conntrack entry carries a
// client's flow to an endpoint, every later datagram of that flow follows the entry, not
// the rules. When the endpoint leaves, the flow would keep going to it (and get "port
// unreachable") until the entry times out; when a Service without endpoints gets one,
// the flow would stay un-NATed and keep being rejected. kube-proxy therefore deletes, after
// a sync, the UDP entries to a Service's address whose reply does not come from one of the
// endpoints the rules now use. UDPServing answers that question for one flow (Stale).
type UDPServing struct {
	nodeIP netip.Addr
	// byDst: a Service's ClusterIP, load-balancer or external IP and port → the endpoints
	// its rules on this node send to.
	byDst map[netip.AddrPort]map[netip.AddrPort]bool
	// byNodePort: a UDP NodePort → the endpoints its rules send to.
	byNodePort map[uint16]map[netip.AddrPort]bool
	key        string
}

// NewUDPServing collects the UDP Service ports of ports as node's rules program them:
// the endpoints each address sends to are those kube-proxy's rules use (ready ones, else
// serving terminating ones; the local ones for a Local traffic policy).
func NewUDPServing(node Node, ports []ServicePort) *UDPServing {
	u := &UDPServing{byDst: map[netip.AddrPort]map[netip.AddrPort]bool{}, byNodePort: map[uint16]map[netip.AddrPort]bool{}}
	u.nodeIP, _ = netip.ParseAddr(node.IP)
	var keys []string
	for i := range ports {
		sp := &ports[i]
		if !strings.EqualFold(sp.Protocol, "UDP") {
			continue
		}
		cluster, local, _, _ := categorize(sp, node.Name)
		internal := endpointSet(cluster)
		if sp.InternalLocal {
			internal = endpointSet(local)
		}
		// External addresses: the local endpoints for a Local policy, but a pod's traffic
		// to them short-circuits to the cluster's, so both count as in use.
		external := endpointSet(append(append([]Endpoint(nil), cluster...), local...))
		add := func(ip string, eps map[netip.AddrPort]bool) {
			if a, err := netip.ParseAddr(ip); err == nil {
				u.byDst[netip.AddrPortFrom(a, uint16(sp.Port))] = eps
			}
		}
		add(sp.ClusterIP, internal)
		for _, ip := range sp.LoadBalancerIPs {
			add(ip, external)
		}
		for _, ip := range sp.ExternalIPs {
			add(ip, external)
		}
		if sp.NodePort != 0 {
			u.byNodePort[uint16(sp.NodePort)] = external
		}
		k := sp.ServicePortName() + "=" + sp.ClusterIP + ":" + strconv.Itoa(int(sp.Port)) + "," +
			strconv.Itoa(int(sp.NodePort)) + "," + strings.Join(sp.LoadBalancerIPs, ",") + "," +
			strings.Join(sp.ExternalIPs, ",") + ">" + setString(internal) + "|" + setString(external)
		keys = append(keys, k)
	}
	sort.Strings(keys)
	u.key = strings.Join(keys, ";")
	return u
}

func endpointSet(eps []Endpoint) map[netip.AddrPort]bool {
	out := make(map[netip.AddrPort]bool, len(eps))
	for _, ep := range eps {
		if a, err := netip.ParseAddr(ep.IP); err == nil {
			out[netip.AddrPortFrom(a, uint16(ep.Port))] = true
		}
	}
	return out
}

func setString(s map[netip.AddrPort]bool) string {
	out := make([]string, 0, len(s))
	for ap := range s {
		out = append(out, ap.String())
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
// Service somewhere the rules no longer send it.
func (u *UDPServing) Stale(origDst, replySrc netip.AddrPort) bool {
	if eps, ok := u.byDst[origDst]; ok {
		return !eps[replySrc]
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
	return !eps[replySrc]
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
