package lb

import (
	"fmt"
	"sort"
	"strings"
)

// ChainWanFilter is the LB's filter chain for what comes in from the wan (the clients,
// "the internet") on its way to the fabric: what a cloud security group in front of the
// nodes lets in, and nothing else.
const ChainWanFilter = "NETLAB-WAN-FILTER"

// WanFilter is what the wan may reach behind the LB.
type WanFilter struct {
	WanIface string   // the LB's wan interface
	VIPs     []string // every VIP: whatever the LB forwards for them is allowed
	NodeCIDR string   // the nodes' network
	// ExposeNodes lets clients reach each node's ingress ports and NodePort range
	// directly (Lab.spec.loadBalancer.exposeNodes, default true).
	ExposeNodes   bool
	NodeTCPPorts  []int  // the ingress ports (80, 443)
	NodePortRange string // "30000:32767", TCP and UDP
	// HealthPorts are kube-proxy's healthCheckNodePorts: in the NodePort range, but for
	// the LB's checks only, never for clients.
	HealthPorts []int
	// PodCIDR is allowed too when the scenario routes clients to the pods on purpose
	// (network.clientRoutesToPods); empty otherwise.
	PodCIDR string
}

// Render returns the iptables-restore --noflush input that (re)writes the chain whole; the
// jump to it from FORWARD is JumpArgs.
func (f WanFilter) Render() []byte {
	var b strings.Builder
	b.WriteString("*filter\n:" + ChainWanFilter + " - [0:0]\n")
	rule := func(comment, args string) {
		fmt.Fprintf(&b, "-A %s %s -m comment --comment %q -j RETURN\n", ChainWanFilter, args, comment)
	}
	rule("replies to connections already allowed", "-m conntrack --ctstate ESTABLISHED,RELATED")
	vips := append([]string(nil), f.VIPs...)
	sort.Strings(vips)
	for _, v := range vips {
		rule("to VIP "+v, "-m conntrack --ctstate DNAT --ctorigdst "+v+"/32")
	}
	hp := append([]int(nil), f.HealthPorts...)
	sort.Ints(hp)
	for _, p := range hp {
		fmt.Fprintf(&b, "-A %s -p tcp --dport %d -m comment --comment %q -j DROP\n", ChainWanFilter, p,
			"health check node port: for the LB only")
	}
	if f.ExposeNodes && f.NodeCIDR != "" {
		if len(f.NodeTCPPorts) > 0 {
			ports := make([]string, len(f.NodeTCPPorts))
			for i, p := range f.NodeTCPPorts {
				ports[i] = fmt.Sprint(p)
			}
			rule("node ingress ports", "-d "+f.NodeCIDR+" -p tcp -m multiport --dports "+strings.Join(ports, ","))
		}
		if f.NodePortRange != "" {
			rule("node NodePorts", "-d "+f.NodeCIDR+" -p tcp --dport "+f.NodePortRange)
			rule("node NodePorts", "-d "+f.NodeCIDR+" -p udp --dport "+f.NodePortRange)
		}
	}
	if f.PodCIDR != "" {
		rule("pods (network.clientRoutesToPods)", "-d "+f.PodCIDR)
	}
	fmt.Fprintf(&b, "-A %s -m comment --comment %q -j DROP\n", ChainWanFilter,
		"nothing else from the wan: metrics, health ports, pod and service networks")
	b.WriteString("COMMIT\n")
	return []byte(b.String())
}

// JumpArgs is the FORWARD rule (after the chain name) that sends the wan's traffic through
// the filter.
func (f WanFilter) JumpArgs() []string {
	return []string{"-i", f.WanIface, "-m", "comment", "--comment", "netlab wan filter", "-j", ChainWanFilter}
}
