package lab

import (
	"net/netip"
	"strings"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/plan"
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
	if ef, err := ReadEndpoints(EndpointsPath(p.Lab)); err == nil {
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
