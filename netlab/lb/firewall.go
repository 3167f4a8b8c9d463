package lb

import (
	"net/netip"
	"strconv"
	"strings"
)

// PrefixFW names the filter chain of a virtual service with source ranges.
const PrefixFW = "NETLAB-FW-"

// FWChain is the filter chain that drops a virtual service's clients outside its
// SourceRanges.
func FWChain(vs VirtualService) string { return PrefixFW + hash16("fw", vs.Key()) }

// sourceFirewall writes the LB's side of loadBalancerSourceRanges, as a cloud load
// balancer's firewall applies them: new connections to the VIP:port (matched on conntrack's
// original destination, so after the DNAT to a node too) from a source outside every
// range are dropped in NETLAB-LB-FILTER. Nothing is written without ranges.
func sourceFirewall(filter *tableBuf, vs VirtualService, want map[string]bool) {
	if len(vs.SourceRanges) == 0 {
		return
	}
	fw := FWChain(vs)
	want[fw] = true
	filter.declare(fw)
	proto := strings.ToLower(vs.proto())
	filter.add(ChainFilter, "-p", proto, "-m", "conntrack", "--ctstate", "NEW", "--ctorigdst", vs.VIP+"/32", "--ctorigdstport", strconv.Itoa(vs.Port),
		"-m", "comment", "--comment", vs.label()+" loadBalancerSourceRanges", "-j", fw)
	for _, r := range vs.SourceRanges {
		filter.add(fw, "-s", r, "-j", "RETURN")
	}
	filter.add(fw, "-m", "comment", "--comment", vs.label()+" source outside loadBalancerSourceRanges", "-j", "DROP")
}

// invalidSourceRanges reports the ranges that are not IPv4 CIDRs.
func invalidSourceRanges(rs []string) []string {
	var bad []string
	for _, r := range rs {
		if p, err := netip.ParsePrefix(r); err != nil || !p.Addr().Is4() {
			bad = append(bad, r)
		}
	}
	return bad
}
