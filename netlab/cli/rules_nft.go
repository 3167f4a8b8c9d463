package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// nftLine is one line of `nft list table ip kube-proxy` as `netlab rules` shows it in
// nftables mode.
type nftLine struct {
	Line    string `json:"line"`
	Service string `json:"service,omitempty"` // "ns/name" the chain, set or element belongs to
	Note    string `json:"note,omitempty"`
	// Connections and Packets: conntrack entries DNATed to an endpoint chain's endpoint
	// (kube-proxy's nftables rules carry no counter statements).
	Connections *uint64 `json:"connections,omitempty"`
	Packets     *uint64 `json:"packets,omitempty"`
}

type nftOwner struct{ service, port, what, endpoint string }

// nftOwners says which Service port and endpoint each per-service chain and affinity set
// of kube-proxy's nftables table belongs to.
func nftOwners(ports []kubeproxy.ServicePort) map[string]nftOwner {
	idx := map[string]nftOwner{}
	for _, sp := range ports {
		ns, n, proto, pn := sp.Namespace, sp.Name, sp.Protocol, sp.PortName
		name, svc := sp.ServicePortName(), sp.ServiceName()
		idx[nftables.ServiceChain(ns, n, proto, pn)] = nftOwner{svc, name, "cluster traffic policy", ""}
		idx[nftables.LocalChain(ns, n, proto, pn)] = nftOwner{svc, name, "local traffic policy", ""}
		idx[nftables.ExternalChain(ns, n, proto, pn)] = nftOwner{svc, name, "external destinations", ""}
		idx[nftables.FirewallChain(ns, n, proto, pn)] = nftOwner{svc, name, "loadBalancerSourceRanges", ""}
		for _, ep := range sp.Endpoints {
			state := "ready"
			if !ep.Ready {
				state = "not ready"
			}
			what := fmt.Sprintf("endpoint %s %s on %s (%s)", ep.Pod, ep.String(), ep.Node, state)
			idx[nftables.EndpointChain(ns, n, proto, pn, ep.String())] = nftOwner{svc, name, what, ep.String()}
			idx[nftables.AffinitySet(ns, n, proto, pn, ep.String())] = nftOwner{svc, name, "client affinity to " + what, ""}
		}
	}
	return idx
}

// nftRules reads the node's table ip kube-proxy and annotates every per-service chain, set
// and verdict-map element with its Service port and pod; endpoint chains get the node's
// conntrack counts for their endpoint. service keeps one Service's objects only.
func nftRules(ns string, ports []kubeproxy.ServicePort, service string) ([]nftLine, error) {
	out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
	if err != nil {
		return nil, err
	}
	idx := nftOwners(ports)
	type count struct{ conns, pkts uint64 }
	perEndpoint := map[string]count{}
	h := kernel.NewHandles()
	defer h.Close()
	if flows, err := h.Flows(ns); err == nil {
		for _, f := range flows {
			if f.ReplySrc != f.OrigDst { // DNATed: the reply comes from the endpoint
				c := perEndpoint[f.ReplySrc.String()]
				c.conns++
				c.pkts += f.Packets
				perEndpoint[f.ReplySrc.String()] = c
			}
		}
	}
	var lines []nftLine
	skipping := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		f := strings.Fields(text)
		if len(f) >= 2 && (f[0] == "chain" || f[0] == "set" || f[0] == "map") {
			o, mine := idx[f[1]]
			skipping = service != "" && (!mine || !kubeproxy.ServiceMatches(o.service, service))
			if skipping {
				continue
			}
			l := nftLine{Line: text}
			if mine {
				l.Service, l.Note = o.service, o.port+": "+o.what
				if o.endpoint != "" {
					c := perEndpoint[o.endpoint]
					l.Connections, l.Packets = &c.conns, &c.pkts
				}
			}
			lines = append(lines, l)
			continue
		}
		if skipping {
			if strings.TrimSpace(text) == "}" {
				skipping = false
			}
			continue
		}
		// Verdict-map elements and rules that go to a per-service chain.
		l := nftLine{Line: text}
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "goto" || f[i] == "jump" {
				if o, ok := idx[strings.TrimRight(f[i+1], ",")]; ok {
					l.Service, l.Note = o.service, "-> "+o.port+" "+o.what
				}
			}
		}
		if service != "" && l.Service != "" && !kubeproxy.ServiceMatches(l.Service, service) {
			continue
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// writeNFTRules prints the table as nft lists it, each annotation after its line.
func writeNFTRules(w io.Writer, lines []nftLine, wide bool) error {
	fmt.Fprintf(w, "# table ip %s (kube-proxy nftables mode): endpoint chains show the node's conntrack connections DNATed to them\n", nftables.Table)
	for _, l := range lines {
		fmt.Fprint(w, l.Line)
		note := l.Note
		if l.Connections != nil {
			note += fmt.Sprintf(" [%d connections, %d packets]", *l.Connections, *l.Packets)
		}
		if wide && l.Service != "" {
			note = l.Service + " | " + note
		}
		if note != "" {
			fmt.Fprintf(w, "    # %s", note)
		}
		fmt.Fprintln(w)
	}
	return nil
}
