package lab

import (
	"strings"

	"github.com/netlabdev/netlab/netlab/iptables"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/plan"
)

// checkNFTTable verifies, in every node of an nftables-mode lab, that table ip
// kube-proxy holds kube-proxy's base chains with their hooks and priorities, and that no
// iptables chain of kube-proxy's iptables mode (KUBE-*) is there. It returns the problems.
func checkNFTTable(p *plan.Plan) []string {
	var bad []string
	for _, n := range p.Nodes {
		out, err := kernel.Run(n.Netns, nil, "nft", "list", "chains")
		if err != nil {
			bad = append(bad, n.Name+" ("+err.Error()+")")
			continue
		}
		for _, missing := range nftables.MissingBaseChains(out) {
			bad = append(bad, n.Name+" "+missing)
		}
		for _, table := range []string{"filter", "nat"} {
			save, err := kernel.Save(n.Netns, false, table)
			if err != nil {
				continue // no iptables at all is fine
			}
			d, err := iptables.Parse(save)
			if err != nil {
				bad = append(bad, n.Name+" "+table+": "+err.Error())
				continue
			}
			for _, name := range d.ChainNames(table) {
				if strings.HasPrefix(name, "KUBE-") {
					bad = append(bad, n.Name+" has iptables chain "+table+"/"+name)
				}
			}
		}
	}
	return bad
}
