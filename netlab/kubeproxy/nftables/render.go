package nftables

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// Chain is one chain of the table. Rules are the rule texts as nft reads them after
// "add rule ip kube-proxy CHAIN " (a trailing `comment "..."` included).
type Chain struct {
	Name string
	// Base is the base chain's hook spec ("type filter hook input priority 0"), "" for a
	// regular chain.
	Base    string
	Comment string
	Rules   []string
}

// Element is one element of a set or map. Key and Value are in nft syntax
// ("172.30.0.41 . tcp . 80", "goto service-..."); Value is "" in a set.
type Element struct {
	Key, Value, Comment string
}

// Container is a set or a map.
type Container struct {
	Name string
	Map  bool
	// Spec is what goes between the braces of "add set|map": type, flags, timeout, comment.
	Spec     string
	Elements map[string]Element
}

// Ruleset is the whole table as kube-proxy's nftables mode wants it on one node.
type Ruleset struct {
	Chains     map[string]*Chain
	Containers map[string]*Container
}

func newRuleset() *Ruleset {
	return &Ruleset{Chains: map[string]*Chain{}, Containers: map[string]*Container{}}
}

func (rs *Ruleset) chain(name string) *Chain {
	c := rs.Chains[name]
	if c == nil {
		c = &Chain{Name: name}
		rs.Chains[name] = c
	}
	return c
}

func (rs *Ruleset) rule(chain string, words ...string) {
	c := rs.chain(chain)
	c.Rules = append(c.Rules, strings.Join(words, " "))
}

func (rs *Ruleset) container(name string, isMap bool, spec string) *Container {
	c := &Container{Name: name, Map: isMap, Spec: spec, Elements: map[string]Element{}}
	rs.Containers[name] = c
	return c
}

// element adds an element; a port's fragment (see Model) holds only the shared sets and
// maps it adds to, made here on first use.
func (rs *Ruleset) element(container, key, value, comment string) {
	c := rs.Containers[container]
	if c == nil {
		c = rs.container(container, false, "")
	}
	c.Elements[key] = Element{Key: key, Value: value, Comment: comment}
}

// SortedChains returns the chain names in order.
func (rs *Ruleset) SortedChains() []string {
	names := make([]string, 0, len(rs.Chains))
	for n := range rs.Chains {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func quote(s string) string { return `"` + s + `"` }

func withComment(rule, comment string) string { return rule + " comment " + quote(comment) }

type baseChain struct{ name, typ, hook, priority string }

// kube-proxy's base chains: filtering before DNAT (-110) for the firewall, after it (0)
// for the endpoint checks, and the NAT hooks at dstnat (-100) and srcnat (100).
var baseChains = []baseChain{
	{ChainFilterPreroutingPreDNAT, "filter", "prerouting", "-110"},
	{ChainFilterOutputPreDNAT, "filter", "output", "-110"},
	{ChainFilterInput, "filter", "input", "0"},
	{ChainFilterForward, "filter", "forward", "0"},
	{ChainFilterOutput, "filter", "output", "0"},
	{ChainNATPrerouting, "nat", "prerouting", "-100"},
	{ChainNATOutput, "nat", "output", "-100"},
	{ChainNATPostrouting, "nat", "postrouting", "100"},
}

// jumpChains are the rules from base chains to kube-proxy's top-level chains, in order.
var jumpChains = []struct{ dst, src, match string }{
	{ChainNodePortEndpointsCheck, ChainFilterInput, "ct state new"},
	{ChainServiceEndpointsCheck, ChainFilterInput, "ct state new"},
	{ChainServiceEndpointsCheck, ChainFilterForward, "ct state new"},
	{ChainServiceEndpointsCheck, ChainFilterOutput, "ct state new"},
	{ChainFirewallCheck, ChainFilterPreroutingPreDNAT, "ct state new"},
	{ChainFirewallCheck, ChainFilterOutputPreDNAT, "ct state new"},
	{ChainServices, ChainNATOutput, ""},
	{ChainServices, ChainNATPrerouting, ""},
	{ChainMasquerading, ChainNATPostrouting, ""},
	{ChainClusterIPsCheck, ChainFilterForward, "ct state new"},
	{ChainClusterIPsCheck, ChainFilterOutput, "ct state new"},
}

const addrType = "ipv4_addr"

// Render returns the table kube-proxy's nftables mode writes on node for ports.
func Render(node kubeproxy.Node, in []kubeproxy.ServicePort) *Ruleset {
	rs := renderBase(node)
	ports := slices.Clone(in)
	for i := range ports {
		ports[i].Endpoints = slices.Clone(ports[i].Endpoints)
		kubeproxy.SortEndpoints(ports[i].Endpoints)
	}
	kubeproxy.SortPorts(ports)
	for i := range ports {
		renderPort(rs, node, &ports[i])
	}
	return rs
}

// renderBase is the part of the table that does not depend on the Services: base
// chains and their jumps, the top-level chains, sets and maps (empty but for the
// node's address in nodeport-ips).
func renderBase(node kubeproxy.Node) *Ruleset {
	rs := newRuleset()
	for _, bc := range baseChains {
		rs.chain(bc.name).Base = "type " + bc.typ + " hook " + bc.hook + " priority " + bc.priority
	}
	for _, j := range jumpChains {
		rs.chain(j.dst)
		words := []string{"jump", j.dst}
		if j.match != "" {
			words = append([]string{j.match}, words...)
		}
		rs.rule(j.src, words...)
	}
	for _, c := range []string{ChainServices, ChainClusterIPsCheck, ChainMasquerading, ChainMarkMasq} {
		rs.chain(c)
	}
	rs.rule(ChainMarkMasq, "mark set mark or", MasqMark)
	rs.rule(ChainMasquerading, "mark and", MasqMark, "== 0 return")
	rs.rule(ChainMasquerading, "mark set mark xor", MasqMark)
	rs.rule(ChainMasquerading, "masquerade fully-random")

	rs.container(SetClusterIPs, false, "type "+addrType+" ; comment "+quote("Active ClusterIPs")+" ;")
	rs.rule(ChainClusterIPsCheck, withComment("ip daddr @"+SetClusterIPs+" reject", "Reject traffic to invalid ports of ClusterIPs"))
	if node.ServiceCIDR != "" {
		rs.rule(ChainClusterIPsCheck, withComment("ip daddr { "+node.ServiceCIDR+" } drop", "Drop traffic to unallocated ClusterIPs"))
	}
	// NodePorts answer on the node's primary address, kube-proxy's nftables default
	// (--nodeport-addresses primary).
	rs.container(SetNodePortIPs, false, "type "+addrType+" ; comment "+quote("IPs that accept NodePort traffic")+" ;")
	if node.IP != "" {
		rs.element(SetNodePortIPs, node.IP, "", "")
	}
	vmapType := "type " + addrType + " . inet_proto . inet_service : verdict ; comment "
	portType := "type inet_proto . inet_service : verdict ; comment "
	rs.container(MapNoEndpointServices, true, vmapType+quote("vmap to drop or reject packets to services with no endpoints")+" ;")
	rs.container(MapNoEndpointNodePorts, true, portType+quote("vmap to drop or reject packets to service nodeports with no endpoints")+" ;")
	rs.chain(ChainReject).Comment = "helper for @no-endpoint-services / @no-endpoint-nodeports"
	rs.rule(ChainReject, "reject")
	rs.rule(ChainServiceEndpointsCheck, "ip daddr . meta l4proto . th dport vmap @"+MapNoEndpointServices)
	rs.rule(ChainNodePortEndpointsCheck, "ip daddr @"+SetNodePortIPs+" meta l4proto . th dport vmap @"+MapNoEndpointNodePorts)
	rs.container(MapFirewallIPs, true, vmapType+quote("destinations that are subject to LoadBalancerSourceRanges")+" ;")
	rs.rule(ChainFirewallCheck, "ip daddr . meta l4proto . th dport vmap @"+MapFirewallIPs)
	rs.container(MapServiceIPs, true, vmapType+quote("ClusterIP, ExternalIP and LoadBalancer IP traffic")+" ;")
	rs.container(MapServiceNodePorts, true, portType+quote("NodePort traffic")+" ;")
	rs.rule(ChainServices, "ip daddr . meta l4proto . th dport vmap @"+MapServiceIPs)
	rs.rule(ChainServices, "ip daddr @"+SetNodePortIPs+" meta l4proto . th dport vmap @"+MapServiceNodePorts)
	return rs
}

func renderPort(rs *Ruleset, node kubeproxy.Node, sp *kubeproxy.ServicePort) {
	proto := strings.ToLower(sp.Protocol)
	name := sp.ServicePortName()
	port := strconv.Itoa(int(sp.Port))
	// One hash for the port's chains and one per endpoint (ServiceChain, EndpointChain
	// and the like each hash their name again).
	base := portBase(sp.Namespace, sp.Name, proto, sp.PortName)
	svcChain, localChain := PrefixService+base, PrefixLocal+base
	extChain, fwChain := PrefixExternal+base, PrefixFirewall+base
	type epKey struct {
		ip   string
		port int32
	}
	epBases := make(map[epKey]string, len(sp.Endpoints))
	epBase := func(ep kubeproxy.Endpoint) string {
		k := epKey{ep.IP, ep.Port}
		b, ok := epBases[k]
		if !ok {
			b = endpointBase(sp.Namespace, sp.Name, proto, sp.PortName, ep.String())
			epBases[k] = b
		}
		return b
	}
	epChain := func(ep kubeproxy.Endpoint) string { return PrefixEndpoint + epBase(ep) }
	affSet := func(ep kubeproxy.Endpoint) string { return PrefixAffinity + epBase(ep) }

	cluster, local, reachable, hasEndpoints := kubeproxy.Categorize(sp, node.Name)
	usesClusterChain := len(cluster) > 0 && sp.UsesClusterEndpoints()
	usesLocalChain := len(local) > 0 && sp.UsesLocalEndpoints()

	internalChain, hasInternal := svcChain, hasEndpoints
	if sp.InternalLocal {
		internalChain = localChain
		if len(local) == 0 {
			hasInternal = false
		}
	}
	externalPolicyChain, hasExternal := svcChain, hasEndpoints
	if sp.ExternalPolicyLocal() {
		externalPolicyChain = localChain
		if len(local) == 0 {
			hasExternal = false
		}
	}
	usesExtChain := hasEndpoints && sp.ExternallyAccessible()

	var intVerdict, extVerdict string
	if !hasEndpoints {
		intVerdict, extVerdict = "goto "+ChainReject, "goto "+ChainReject
	} else {
		if !hasInternal {
			intVerdict = "drop"
		}
		if !hasExternal {
			extVerdict = "drop"
		}
	}

	key := func(ip string) string { return ip + " . " + proto + " . " + port }
	rs.element(SetClusterIPs, sp.ClusterIP, "", "")
	if hasInternal {
		rs.element(MapServiceIPs, key(sp.ClusterIP), "goto "+internalChain, "")
	} else {
		rs.element(MapNoEndpointServices, key(sp.ClusterIP), intVerdict, name)
	}
	for _, ip := range sp.ExternalIPs {
		if hasEndpoints {
			rs.element(MapServiceIPs, key(ip), "goto "+extChain, "")
		}
		if !hasExternal {
			rs.element(MapNoEndpointServices, key(ip), extVerdict, name)
		}
	}
	ranges := sourceRanges(sp.LoadBalancerSourceRanges)
	usesFW := len(sp.LoadBalancerIPs) > 0 && len(ranges) > 0
	for _, ip := range sp.LoadBalancerIPs {
		if hasEndpoints {
			rs.element(MapServiceIPs, key(ip), "goto "+extChain, "")
		}
		if usesFW {
			rs.element(MapFirewallIPs, key(ip), "goto "+fwChain, "")
		}
	}
	if !hasExternal {
		for _, ip := range sp.LoadBalancerIPs {
			rs.element(MapNoEndpointServices, key(ip), extVerdict, name)
		}
	}
	if sp.NodePort != 0 {
		npKey := proto + " . " + strconv.Itoa(int(sp.NodePort))
		if hasEndpoints {
			rs.element(MapServiceNodePorts, npKey, "goto "+extChain, "")
		}
		if !hasExternal {
			rs.element(MapNoEndpointNodePorts, npKey, extVerdict, name)
		}
	}

	if hasInternal && node.ClusterCIDR != "" {
		// Off-cluster traffic to the ClusterIP is masqueraded: it may bounce to another node.
		rs.rule(internalChain, "ip daddr", sp.ClusterIP, "ip saddr !=", node.ClusterCIDR, "jump", ChainMarkMasq)
	}
	if usesExtChain {
		rs.chain(extChain)
		if !sp.ExternalPolicyLocal() {
			rs.rule(extChain, "jump", ChainMarkMasq)
		} else if usesClusterChain {
			// Pods and the node itself reach the Service's external addresses under the
			// Cluster policy, as if they went out to the load balancer and came back.
			if node.ClusterCIDR != "" {
				rs.rule(extChain, withComment("ip saddr "+node.ClusterCIDR+" goto "+svcChain, "short-circuit pod traffic"))
			}
			rs.rule(extChain, withComment("fib saddr type local jump "+ChainMarkMasq, "masquerade local traffic"))
			rs.rule(extChain, withComment("fib saddr type local goto "+svcChain, "short-circuit local traffic"))
		}
		if hasExternal {
			rs.rule(extChain, "goto", externalPolicyChain)
		}
	}
	if usesFW {
		srcs := strings.Join(ranges, " , ")
		if node.IP != "" && containsAddr(ranges, node.IP) {
			// The node's own requests to a VIP it holds come from the VIP.
			srcs += " , " + strings.Join(sp.LoadBalancerIPs, " , ")
		}
		rs.rule(fwChain, "ip saddr != {", srcs, "} drop")
	}
	affinity := sp.AffinityClientIP
	if affinity {
		for _, ep := range reachable {
			rs.container(affSet(ep), false, "type "+addrType+" ; flags dynamic,timeout ; timeout "+
				strconv.Itoa(int(sp.AffinitySeconds))+"s ;")
		}
	}
	toEndpoints := func(chain string, eps []kubeproxy.Endpoint) {
		rs.chain(chain)
		if affinity {
			for _, ep := range eps {
				rs.rule(chain, "ip saddr @"+affSet(ep), "goto", epChain(ep))
			}
		}
		elems := make([]string, len(eps))
		for i, ep := range eps {
			elems[i] = strconv.Itoa(i) + " : goto " + epChain(ep)
		}
		rs.rule(chain, "numgen random mod", strconv.Itoa(len(eps)), "vmap {", strings.Join(elems, " , "), "}")
	}
	if usesClusterChain {
		toEndpoints(svcChain, cluster)
	}
	if usesLocalChain {
		toEndpoints(localChain, local)
	}
	for _, ep := range reachable {
		c := epChain(ep)
		rs.rule(c, "ip saddr", ep.IP, "jump", ChainMarkMasq)
		if affinity {
			rs.rule(c, "update @"+affSet(ep), "{ ip saddr }")
		}
		rs.rule(c, "meta l4proto", proto, "dnat to", ep.String())
	}
}

// sourceRanges parses loadBalancerSourceRanges as kube-proxy does (spaces trimmed,
// invalid entries skipped) into canonical CIDRs.
func sourceRanges(in []string) []string {
	var out []string
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil || !p.Addr().Is4() {
			continue
		}
		out = append(out, p.Masked().String())
	}
	return out
}

func containsAddr(cidrs []string, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}
