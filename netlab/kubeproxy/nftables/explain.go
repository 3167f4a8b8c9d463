package nftables

import (
	"fmt"
	"strings"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// FlowPath names what kube-proxy's nftables table on node does with a new connection:
// the chains it enters and the verdict-map elements it matches, in order, up to the
// endpoint chain that DNATs it to endpoint ("ip:port"), or to the rule that drops or
// rejects it when endpoint is "". It renders the table from ports and traces pkt through
// it (what `netlab trace` shows on its kube-proxy hop in nftables mode).
func FlowPath(node kubeproxy.Node, ports []kubeproxy.ServicePort, pkt Packet, endpoint string) ([]string, error) {
	outs, err := Trace(Render(node, ports), pkt, Env{LocalIPs: []string{node.IP}})
	if err != nil {
		return nil, err
	}
	for _, o := range outs {
		if (endpoint != "" && o.DNAT == endpoint) || (endpoint == "" && o.Verdict != "ACCEPT") {
			return interesting(o), nil
		}
	}
	var got []string
	for _, o := range outs {
		got = append(got, o.Verdict+" "+o.DNAT)
	}
	return nil, fmt.Errorf("no path of %s → %s:%d/%s on %s ends at %q (outcomes: %s)", pkt.Src, pkt.Dst, pkt.DPort, pkt.Proto,
		node.Name, endpoint, strings.Join(got, ", "))
}

// interesting drops the base and check chains every packet crosses without effect,
// keeping the service dispatch: services, map elements, per-service chains, and the
// final rule of a drop.
func interesting(o Outcome) []string {
	var out []string
	for _, p := range o.Path {
		switch p {
		case ChainFilterPreroutingPreDNAT, ChainFilterOutputPreDNAT, ChainFilterInput, ChainFilterForward, ChainFilterOutput,
			ChainNATPrerouting, ChainNATOutput, ChainNATPostrouting, ChainMarkMasq, ChainMasquerading,
			ChainFirewallCheck, ChainServiceEndpointsCheck, ChainNodePortEndpointsCheck, ChainClusterIPsCheck:
			continue
		}
		out = append(out, p)
	}
	if o.Rule != "" {
		out = append(out, o.Verdict+" by "+o.Rule)
	}
	if o.Masquerade {
		out = append(out, ChainMasquerading+": masquerade")
	}
	return out
}
