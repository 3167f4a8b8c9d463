package nftables

import (
	"cmp"
	"reflect"
	"slices"
	"strings"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// Renderer is Render for a syncer that renders one node's table again and again: it
// keeps each Service port's chains, sets and elements from the call before and renders
// again only the ports whose Service or endpoints changed, as kube-proxy's nftables
// proxier does on a partial sync. A chain it did not render again is the very *Chain of
// the Ruleset before, which Diff then skips without comparing. Its result equals
// Render's.
type Renderer struct {
	node  kubeproxy.Node
	cache map[string]*fragment
}

// fragment is one Service port's share of the table.
type fragment struct {
	in kubeproxy.ServicePort // a deep copy of the port as given
	rs *Ruleset
}

// NewRenderer returns a Renderer for node.
func NewRenderer(node kubeproxy.Node) *Renderer {
	return &Renderer{node: node, cache: map[string]*fragment{}}
}

// Render returns what Render(node, in) returns.
func (r *Renderer) Render(in []kubeproxy.ServicePort) *Ruleset {
	rs := renderBase(r.node)
	shared := make(map[string]bool, len(rs.Containers))
	for n := range rs.Containers {
		shared[n] = true
	}
	// In kubeproxy.SortPorts' order (which decides between two ports writing the same
	// chain or element), each port's sort key made once.
	type sortKey struct {
		name, proto string
		i           int
	}
	order := make([]sortKey, len(in))
	for i := range in {
		order[i] = sortKey{in[i].ServicePortName(), strings.ToLower(in[i].Protocol), i}
	}
	slices.SortStableFunc(order, func(a, b sortKey) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.proto, b.proto))
	})
	next := make(map[string]*fragment, len(in))
	for _, o := range order {
		sp := &in[o.i]
		key := sp.Namespace + "/" + sp.Name + "/" + o.proto + "/" + sp.PortName
		f := r.cache[key]
		if f == nil || next[key] != nil || !reflect.DeepEqual(&f.in, sp) {
			f = r.renderFragment(sp)
		}
		if next[key] == nil {
			next[key] = f
		}
		merge(rs, f.rs, shared)
	}
	r.cache = next
	return rs
}

func (r *Renderer) renderFragment(sp *kubeproxy.ServicePort) *fragment {
	in := *sp
	in.LoadBalancerIPs = slices.Clone(sp.LoadBalancerIPs)
	in.ExternalIPs = slices.Clone(sp.ExternalIPs)
	in.LoadBalancerSourceRanges = slices.Clone(sp.LoadBalancerSourceRanges)
	in.Endpoints = slices.Clone(sp.Endpoints)
	rs := newRuleset()
	for _, n := range []string{SetClusterIPs, SetNodePortIPs, MapNoEndpointServices, MapNoEndpointNodePorts,
		MapFirewallIPs, MapServiceIPs, MapServiceNodePorts} {
		rs.container(n, false, "")
	}
	port := in
	port.Endpoints = slices.Clone(in.Endpoints)
	kubeproxy.SortEndpoints(port.Endpoints)
	renderPort(rs, r.node, &port)
	return &fragment{in: in, rs: rs}
}

// merge adds a port's fragment to rs as renderPort would have written it there: its
// elements into the shared sets and maps, its own chains and affinity sets by pointer
// (they are not changed afterwards), appended to when another port wrote the same chain.
func merge(rs, frag *Ruleset, shared map[string]bool) {
	for n, c := range frag.Chains {
		if old := rs.Chains[n]; old != nil {
			merged := *old
			merged.Rules = append(slices.Clip(old.Rules), c.Rules...)
			rs.Chains[n] = &merged
			continue
		}
		rs.Chains[n] = c
	}
	for n, c := range frag.Containers {
		if !shared[n] {
			rs.Containers[n] = c
			continue
		}
		dst := rs.Containers[n]
		for k, e := range c.Elements {
			dst.Elements[k] = e
		}
	}
}
