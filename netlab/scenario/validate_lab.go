package scenario

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lab checks the Lab object, in the order of its fields.
func (v *validator) lab() {
	l, w := &v.s.Lab, v.labAt
	// No '-' in lab names: nl-<lab>-<object> must parse back to its lab (down finds
	// objects by name), as netlab/plan.CheckLabName requires.
	switch name := l.Metadata.Name; {
	case name == "":
		v.errf(w, "metadata.name", "required")
	case !IsLabName(name):
		v.errf(w, "metadata.name", "must be lowercase letters and digits, starting with a letter (no '-': namespaces are named nl-<lab>-<object>), got %q", name)
	case len(name) > MaxLabName:
		v.errf(w, "metadata.name", "%q is %d bytes, longer than %d (namespaces are named nl-<lab>-<object>)", name, len(name), MaxLabName)
	}
	sp := &l.Spec

	// Parse the address plan first: clients and the LB need it.
	var cidrMsgs [4]string
	nets := []struct {
		field string
		val   string
		p     *netip.Prefix
	}{
		{"wanCIDR", sp.Network.WanCIDR, &v.wan},
		{"nodeCIDR", sp.Network.NodeCIDR, &v.node},
		{"podCIDR", sp.Network.PodCIDR, &v.pod},
		{"serviceCIDR", sp.Network.ServiceCIDR, &v.svc},
	}
	for i, n := range nets {
		*n.p, cidrMsgs[i] = parseCIDR(n.val)
		if cidrMsgs[i] != "" {
			continue
		}
		for _, m := range nets[:i] {
			if m.p.IsValid() && m.p.Overlaps(*n.p) {
				cidrMsgs[i] = fmt.Sprintf("%s overlaps spec.network.%s %s", n.val, m.field, *m.p)
				*n.p = netip.Prefix{}
				break
			}
		}
	}
	if v.wan.IsValid() {
		v.wanUsed[host(v.wan, 1)] = "the load balancer"
		if a := parseIP(sp.LoadBalancer.VIP); a.IsValid() && inNet(a, v.wan, "") == "" && a != host(v.wan, 1) {
			v.vip = a
			v.wanUsed[a] = "the ingress VIP (spec.loadBalancer.vip)"
		}
	}

	// Nodes.
	switch {
	case len(sp.Nodes) == 0:
		v.errf(w, "spec.nodes", "at least one node is required")
	case len(sp.Nodes) > MaxNodes:
		v.errf(w, "spec.nodes", "%d nodes, more than %d", len(sp.Nodes), MaxNodes)
	}
	for i, n := range sp.Nodes {
		f := fmt.Sprintf("spec.nodes[%d]", i)
		if v.label(w, f+".name", n.Name, MaxIfaceName, "it becomes an interface name") {
			if v.claim(w, f+".name", n.Name, w.obj+" "+f, "") {
				v.nodeIndex[n.Name] = i
			}
		}
		v.labels(w, f+".labels", n.Labels)
		if n.Weight != nil && *n.Weight < 0 {
			v.errf(w, f+".weight", "must be at least 0, got %d", *n.Weight)
		}
	}

	// Clients.
	clientIPs := map[netip.Addr]string{}
	for i, c := range sp.Clients {
		f := fmt.Sprintf("spec.clients[%d]", i)
		if v.label(w, f+".name", c.Name, MaxIfaceName, "it becomes an interface name") {
			v.claim(w, f+".name", c.Name, w.obj+" "+f, "")
		}
		if c.IP == "" {
			continue
		}
		a := parseIP(c.IP)
		switch {
		case !a.IsValid():
			v.errf(w, f+".ip", "must be an IPv4 address, got %q", c.IP)
		case !v.wan.IsValid():
			// reported at spec.network.wanCIDR
		case inNet(a, v.wan, "spec.network.wanCIDR") != "":
			v.errf(w, f+".ip", "%s", inNet(a, v.wan, "spec.network.wanCIDR"))
		case clientIPs[a] != "":
			v.errf(w, f+".ip", "%s is already used by %s", a, clientIPs[a])
		case v.wanUsed[a] != "":
			v.errf(w, f+".ip", "%s is %s", a, v.wanUsed[a])
		default:
			clientIPs[a] = fmt.Sprintf("client %q", c.Name)
		}
	}
	for a, f := range clientIPs {
		v.wanUsed[a] = "already used by " + f
	}

	// Network.
	nw := &sp.Network
	if nw.Mode != ModeHostGW && nw.Mode != ModeVXLAN {
		v.errf(w, "spec.network.mode", "must be %s or %s, got %q", ModeHostGW, ModeVXLAN, nw.Mode)
	}
	for i, n := range nets {
		if cidrMsgs[i] != "" {
			v.errf(w, "spec.network."+n.field, "%s", cidrMsgs[i])
		}
	}
	if v.node.IsValid() && len(sp.Nodes) > 0 {
		// The LB is .1, nodes are .11, .12, ...
		room := int64(size(v.node)) - 2 - (FirstNodeHost - 1)
		if int64(len(sp.Nodes)) > room {
			v.errf(w, "spec.network.nodeCIDR", "%s has room for %d nodes (from .%d), the lab has %d",
				v.node, max(room, 0), FirstNodeHost, len(sp.Nodes))
		}
	}
	if v.pod.IsValid() {
		m := nw.NodePodMaskSize
		switch {
		case m < v.pod.Bits() || m > 30:
			v.errf(w, "spec.network.nodePodMaskSize", "must be between %d (the prefix length of spec.network.podCIDR) and 30, got %d", v.pod.Bits(), m)
		default:
			// Node i (1-based) owns slice i; slice 0 stays unused (10.244.i.0/24 for node i).
			slices := uint64(1) << (m - v.pod.Bits())
			if uint64(len(sp.Nodes)) > slices-1 {
				v.errf(w, "spec.network.nodePodMaskSize", "spec.network.podCIDR %s has room for %d node slices of /%d (node i owns slice i, slice 0 is unused), the lab has %d nodes",
					v.pod, slices-1, m, len(sp.Nodes))
			} else {
				v.mask = m
			}
		}
	}

	if m := sp.KubeProxy.Mode; m != ProxyModeIPTables && m != ProxyModeNFTables {
		v.errf(w, "spec.kubeProxy.mode", "must be %s or %s, got %q", ProxyModeIPTables, ProxyModeNFTables, m)
	}

	// Load balancer.
	lb := &sp.LoadBalancer
	if a := parseIP(lb.VIP); !a.IsValid() {
		v.errf(w, "spec.loadBalancer.vip", "must be an IPv4 address, got %q", lb.VIP)
	} else if v.wan.IsValid() {
		if msg := inNet(a, v.wan, "spec.network.wanCIDR"); msg != "" {
			v.errf(w, "spec.loadBalancer.vip", "%s", msg)
		} else if a == host(v.wan, 1) {
			v.errf(w, "spec.loadBalancer.vip", "%s is the load balancer's own address on the wan", a)
		}
	}
	if msg := schedulerProblem(lb.Scheduler); msg != "" {
		v.errf(w, "spec.loadBalancer.scheduler", "%s", msg)
	}
	if lb.Persistence != nil {
		if msg := persistenceProblem(lb.Persistence.Duration); msg != "" {
			v.errf(w, "spec.loadBalancer.persistence", "%s", msg)
		}
	}
	hc := &lb.HealthCheck
	switch hc.Type {
	case "tcp":
	case "http":
		if !strings.HasPrefix(hc.Path, "/") {
			v.errf(w, "spec.loadBalancer.healthCheck.path", "must start with \"/\", got %q", hc.Path)
		}
	default:
		v.errf(w, "spec.loadBalancer.healthCheck.type", "must be tcp or http, got %q", hc.Type)
	}
	if hc.Ingress != "http" && hc.Ingress != "tcp" {
		v.errf(w, "spec.loadBalancer.healthCheck.ingress", "must be http or tcp, got %q", hc.Ingress)
	}
	if hc.Interval == nil || hc.Interval.Duration <= 0 {
		v.errf(w, "spec.loadBalancer.healthCheck.interval", "must be positive, got %s", durString(hc.Interval))
	}
	switch {
	case hc.Timeout == nil || hc.Timeout.Duration <= 0:
		v.errf(w, "spec.loadBalancer.healthCheck.timeout", "must be positive, got %s", durString(hc.Timeout))
	case hc.Interval != nil && hc.Interval.Duration > 0 && hc.Timeout.Duration > hc.Interval.Duration:
		v.errf(w, "spec.loadBalancer.healthCheck.timeout", "%s is longer than the interval %s", hc.Timeout.Duration, hc.Interval.Duration)
	}
	if hc.Rise < 1 {
		v.errf(w, "spec.loadBalancer.healthCheck.rise", "must be at least 1, got %d", hc.Rise)
	}
	if hc.Fall < 1 {
		v.errf(w, "spec.loadBalancer.healthCheck.fall", "must be at least 1, got %d", hc.Fall)
	}

	// Ingress agent.
	in := &sp.Ingress
	if in.ClassName == "" {
		v.errf(w, "spec.ingress.className", "required")
	} else if !isDNSName(in.ClassName) {
		v.errf(w, "spec.ingress.className", msgDNSName, in.ClassName)
	}
	if msg := upstreamProblem(in.Upstream); msg != "" {
		v.errf(w, "spec.ingress.upstream", "%s", msg)
	}
	if msg := workersProblem(in.Workers); msg != "" {
		v.errf(w, "spec.ingress.workers", "%s", msg)
	}
	ports := []struct {
		field string
		port  int
	}{{"httpPort", in.HTTPPort}, {"httpsPort", in.HTTPSPort}, {"metricsPort", in.MetricsPort}}
	for _, p := range ports {
		f := "spec.ingress." + p.field
		if p.port < 1 || p.port > 65535 {
			v.errf(w, f, "must be between 1 and 65535, got %d", p.port)
			continue
		}
		key := fmt.Sprintf("%d/TCP", p.port)
		if o, ok := v.nodePorts[key]; ok {
			v.errf(w, f, "%d is already used by %s", p.port, o)
			continue
		}
		v.nodePorts[key] = v.labAt.obj + " " + f
	}

	v.dns()
}

// IsLabName reports whether name is lowercase letters and digits starting with a letter
// (no '-': nl-<lab>-<object> must parse back to its lab).
func IsLabName(name string) bool {
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return name != ""
}

func durString(d *metav1.Duration) string {
	if d == nil {
		return "nothing"
	}
	return d.Duration.String()
}

// podCapacity checks that the pods fit in the nodes' pod CIDR slices. Pods pinned by
// nodeName or nodeSelector may land only on some nodes: for each such set of nodes, the
// pods that must land inside it must fit in it (a necessary condition the placement in
// netlab/plan then satisfies when it fills nodes in order).
func (v *validator) podCapacity() {
	nodes := len(v.s.Lab.Spec.Nodes)
	if v.mask == 0 || nodes == 0 || v.podsCapped {
		return
	}
	perNode := int64(1)<<(32-v.mask) - PodSliceReserved
	all := make([]int, nodes)
	for i := range all {
		all[i] = i
	}
	sets := [][]int{all}
	for _, g := range v.groups {
		if !slices.ContainsFunc(sets, func(s []int) bool { return slices.Equal(s, g.nodes) }) {
			sets = append(sets, g.nodes)
		}
	}
	for _, set := range sets {
		pods := int64(0)
		for _, g := range v.groups {
			if subset(g.nodes, set) {
				pods += int64(g.pods)
			}
		}
		room := perNode * int64(len(set))
		if pods <= room {
			continue
		}
		if len(set) == nodes {
			v.errf(v.labAt, "spec.network.podCIDR", "%d pods do not fit: %d nodes hold %d (%d per /%d slice)",
				pods, nodes, room, perNode, v.mask)
			continue
		}
		names := make([]string, len(set))
		for i, n := range set {
			names[i] = v.s.Lab.Spec.Nodes[n].Name
		}
		v.errf(v.labAt, "spec.network.nodePodMaskSize", "%d pods are pinned to %s, which hold %d (%d per /%d slice)",
			pods, strings.Join(names, ", "), room, perNode, v.mask)
	}
}

// subset reports whether every element of a (sorted) is in b (sorted).
func subset(a, b []int) bool {
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			return false
		}
	}
	return true
}

// wanCapacity checks that the wan CIDR holds the lb (.1), the clients, the ingress VIP and
// one VIP per LoadBalancer Service without a loadBalancerIP. The contract for the plan:
// those Services take the free addresses after the VIP, in order; clients without an ip
// then take the free addresses from .2.
func (v *validator) wanCapacity() {
	if !v.wan.IsValid() || !v.vip.IsValid() {
		return
	}
	fixed := len(v.wanUsed) // lb, VIP, explicit client IPs, loadBalancerIPs
	autoClients := 0
	for _, c := range v.s.Lab.Spec.Clients {
		if c.IP == "" {
			autoClients++
		}
	}
	hosts := int64(size(v.wan)) - 2
	need := int64(fixed + autoClients + v.lbServices)
	if need > hosts {
		v.errf(v.labAt, "spec.network.wanCIDR", "%s has %d host addresses, the lab needs %d (lb, VIP, %d clients, %d LoadBalancer Services)",
			v.wan, hosts, need, len(v.s.Lab.Spec.Clients), v.lbServices)
		return
	}
	// Clients without an ip take the free addresses from .2 (they may pass the VIP in a
	// small wan); the LoadBalancer Services need free addresses after the VIP.
	used := make(map[netip.Addr]bool, len(v.wanUsed)+autoClients)
	for a := range v.wanUsed {
		used[a] = true
	}
	a := host(v.wan, 2)
	for range autoClients {
		for used[a] {
			a = a.Next()
		}
		used[a] = true
	}
	free := 0
	for a := v.vip.Next(); v.wan.Contains(a) && a != broadcast(v.wan) && free < v.lbServices; a = a.Next() {
		if !used[a] {
			free++
		}
	}
	if free < v.lbServices {
		v.errf(v.labAt, "spec.loadBalancer.vip", "only %d free addresses follow %s in %s, %d LoadBalancer Services need one each",
			free, v.vip, v.wan, v.lbServices)
	}
}

// serviceCapacity checks that every Service can get a ClusterIP.
func (v *validator) serviceCapacity() {
	if !v.svc.IsValid() {
		return
	}
	// The allocator hands out .11 and up: .1 is kept for the kubernetes Service and .10
	// for the cluster DNS, as in a kubeadm cluster.
	if room := max(0, int64(size(v.svc))-2-DNSServiceHost); int64(len(v.s.Services)) > room {
		v.errf(v.labAt, "spec.network.serviceCIDR", "%s has room for %d ClusterIPs, the lab has %d Services",
			v.svc, room, len(v.s.Services))
	}
}
