package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// nftRuleIndex says which Service port and endpoint each per-service chain and affinity
// set of kube-proxy's nftables table belongs to.
func nftRuleIndex(ports []kubeproxy.ServicePort) map[string]owner {
	idx := map[string]owner{}
	for _, sp := range ports {
		ns, n, proto, pn := sp.Namespace, sp.Name, strings.ToLower(sp.Protocol), sp.PortName
		name := sp.ServicePortName()
		idx[nftables.ServiceChain(ns, n, proto, pn)] = owner{sp.ServiceName(), name, "cluster traffic policy"}
		idx[nftables.LocalChain(ns, n, proto, pn)] = owner{sp.ServiceName(), name, "local traffic policy"}
		idx[nftables.ExternalChain(ns, n, proto, pn)] = owner{sp.ServiceName(), name, "external destinations"}
		idx[nftables.FirewallChain(ns, n, proto, pn)] = owner{sp.ServiceName(), name, "loadBalancerSourceRanges"}
		for _, ep := range sp.Endpoints {
			state := "ready"
			if !ep.Ready {
				state = "not ready"
			}
			what := fmt.Sprintf("endpoint %s %s on %s (%s)", ep.Pod, ep.String(), ep.Node, state)
			idx[nftables.EndpointChain(ns, n, proto, pn, ep.String())] = owner{sp.ServiceName(), name, what}
			idx[nftables.AffinitySet(ns, n, proto, pn, ep.String())] = owner{sp.ServiceName(), name, "client affinity to " + what}
		}
	}
	return idx
}

// printNFTRules prints the node's table ip kube-proxy (nft list) with every per-service
// chain, set and verdict-map element annotated with its Service port and pod. kube-proxy's
// nftables rules carry no counter statements, so the packet counts shown per endpoint
// chain are the node's conntrack entries DNATed to that endpoint (connections, packets).
func printNFTRules(g *globals, ns string, ports []kubeproxy.ServicePort, service string) error {
	out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
	if err != nil {
		return err
	}
	idx := nftRuleIndex(ports)
	type count struct{ conns, pkts uint64 }
	perEndpoint := map[string]count{}
	h := kernel.NewHandles()
	defer h.Close()
	if flows, err := h.Flows(ns); err == nil {
		for _, f := range flows {
			if f.ReplySrc.Addr() != f.OrigDst.Addr() || f.ReplySrc.Port() != f.OrigDst.Port() {
				c := perEndpoint[f.ReplySrc.String()]
				c.conns++
				c.pkts += f.Packets
				perEndpoint[f.ReplySrc.String()] = c
			}
		}
	}
	endpointOf := map[string]string{}
	for _, sp := range ports {
		for _, ep := range sp.Endpoints {
			endpointOf[nftables.EndpointChain(sp.Namespace, sp.Name, sp.Protocol, sp.PortName, ep.String())] = ep.String()
		}
	}
	fmt.Fprintf(g.out, "# table ip %s (kube-proxy nftables mode); counts per endpoint chain are conntrack connections DNATed to it\n", nftables.Table)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	skipping := false
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "chain" || f[0] == "set" || f[0] == "map") {
			o, mine := idx[f[1]]
			skipping = service != "" && (!mine || !serviceMatches(o.service, service))
			if skipping {
				continue
			}
			note := ""
			if mine {
				note = "    # " + o.port + ": " + o.what
				if ep, ok := endpointOf[f[1]]; ok {
					c := perEndpoint[ep]
					if ap, err := netip.ParseAddrPort(ep); err == nil {
						c = perEndpoint[ap.String()]
					}
					note += fmt.Sprintf(" [%d connections, %d packets]", c.conns, c.pkts)
				}
			}
			fmt.Fprintln(g.out, line+note)
			continue
		}
		if skipping {
			if strings.TrimSpace(line) == "}" {
				skipping = false
			}
			continue
		}
		// Verdict-map elements and rules that go to a per-service chain.
		note := ""
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "goto" || f[i] == "jump" {
				if o, ok := idx[strings.TrimRight(f[i+1], ",")]; ok {
					note = "    # -> " + o.port + " " + o.what
				}
			}
		}
		if service != "" && note != "" && !strings.Contains(note, service) {
			continue
		}
		fmt.Fprintln(g.out, line+note)
	}
	return nil
}
