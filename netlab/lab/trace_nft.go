package lab

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// kubeProxyRulePath is the kube-proxy hop's line naming the rules a traced connection
// took on node, in the lab's mode: iptables chains, or in nftables mode the chains and
// verdict-map elements of table ip kube-proxy (traced over the node's rendered table).
func kubeProxyRulePath(p *plan.Plan, node string, f kernel.Flow, svc *plan.Service, spn, proto string, endpoint netip.AddrPort) string {
	if !p.NFTables() {
		return "iptables: " + strings.Join(chainPath(svc, spn, proto, svcKind(svc, f.OrigDst), endpoint.String()), " → ")
	}
	n, err := p.ProxyNode(node)
	if err != nil {
		return "nftables: " + err.Error()
	}
	ports := p.ServicePorts(nil)
	if ef, err := rundir.ForLab(p.Lab).ReadEndpoints(); err == nil {
		ports = ef.Ports
	}
	pkt := nftables.Packet{Src: f.OrigSrc.Addr().String(), Dst: f.OrigDst.Addr().String(), DPort: int(f.OrigDst.Port()),
		Proto: strings.ToLower(proto), FromLocalProcess: f.OrigSrc.Addr().String() == n.IP}
	path, err := nftables.FlowPath(n, ports, pkt, endpoint.String())
	if err != nil {
		return "nftables: " + err.Error()
	}
	return "nftables: " + strings.Join(path, " → ")
}

// masqChains names the rules that masquerade, in the lab's kube-proxy mode.
func masqChains(p *plan.Plan) string {
	if p.NFTables() {
		return nftables.ChainMarkMasq + ", " + nftables.ChainMasquerading
	}
	return "KUBE-MARK-MASQ, KUBE-POSTROUTING"
}

// nftDropElement finds, in a node of an nftables-mode lab, the verdict-map element of
// kube-proxy's table that drops or rejects dst (a Service without endpoints, or without
// local ones): "nftables: no-endpoint-services: 10.96.0.12 . tcp . 80 : goto reject-chain".
// "" when the namespace has no such table or element.
func nftDropElement(ns string, dst netip.AddrPort) string {
	out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
	if err != nil {
		return ""
	}
	svcKey := dst.Addr().String() + " . "
	portKey := " . " + strconv.Itoa(int(dst.Port()))
	inMap := ""
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "map" {
			inMap = f[1]
		}
		if inMap != nftables.MapNoEndpointServices && inMap != nftables.MapNoEndpointNodePorts && inMap != nftables.MapFirewallIPs {
			continue
		}
		el := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "elements = {"))
		el = strings.TrimRight(el, ", }")
		if !strings.Contains(el, portKey+" ") {
			continue
		}
		if inMap != nftables.MapNoEndpointNodePorts && !strings.HasPrefix(el, svcKey) {
			continue
		}
		return "nftables: " + inMap + ": " + el
	}
	return ""
}
