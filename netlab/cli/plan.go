package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
)

func newPlan(g *globals) *cobra.Command {
	var files []string
	var rules bool
	cmd := &cobra.Command{
		Use:   "plan [-f FILE ...] [--name LAB] [--rules] [-o table|wide|json|yaml]",
		Short: "Print everything a lab would be, without root: namespaces, links, addresses, routes, processes, rules",
		Long: `Print everything a lab would be, without root. The table lists namespaces, links,
addresses, routes, Services and processes; --rules (or -o wide) adds every node's
kube-proxy rules as iptables-restore input, as they will be with every pod ready.`,
		Example: `  netlab plan -f scenarios/three-nodes.yaml
  netlab plan --rules | less
  netlab plan -o json | jq .pods`,
		Args: cobra.NoArgs,
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		p, err := loadPlan(g, files, g.name)
		if err != nil {
			return err
		}
		return o.print(g.out, p, func(w io.Writer, wide bool) error {
			printPlan(w, p)
			if rules || wide {
				return printNodeRules(w, p)
			}
			return nil
		})
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "scenario file (repeatable); default: the embedded default lab")
	cmd.Flags().BoolVar(&rules, "rules", false, "with the table: every node's kube-proxy rules (iptables-restore input, every pod ready)")
	return cmd
}

// printNodeRules prints, per node, the iptables-restore input kube-proxy will write there.
func printNodeRules(out io.Writer, p *plan.Plan) error {
	for _, n := range p.Nodes {
		b, err := p.NodeRules(n.Name)
		if err != nil {
			return err
		}
		if p.NFTables() {
			fmt.Fprintf(out, "\n# kube-proxy (nftables mode) table ip kube-proxy on %s (%s), as nft commands\n", n.Name, n.Netns)
		} else {
			fmt.Fprintf(out, "\n# kube-proxy rules on %s (%s), as `iptables-restore --noflush` input\n", n.Name, n.Netns)
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func printPlan(out io.Writer, p *plan.Plan) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "LAB %s  (network %s: wan %s, nodes %s, pods %s, services %s; kube-proxy %s mode)\n\n", p.Lab, p.Network.Mode,
		p.Network.WanCIDR, p.Network.NodeCIDR, p.Network.PodCIDR, p.Network.ServiceCIDR, cmpOr(p.KubeProxy.Mode, "iptables"))
	fmt.Fprintf(w, "NAMESPACE\tWHAT\n")
	for _, s := range p.Switches {
		fmt.Fprintf(w, "%s\tswitch: bridge %s\n", s.Netns, s.Bridge)
	}
	fmt.Fprintf(w, "%s\tload balancer: eth0 %s (wan), eth1 %s (fabric), VIP %s\n", p.LB.Netns, p.LB.WanIP, p.LB.FabricIP, p.LB.VIP)
	for _, n := range p.Nodes {
		fmt.Fprintf(w, "%s\tnode: eth0 %s, cni0 %s, pods %s\n", n.Netns, n.IP, n.Gateway, n.PodCIDR)
	}
	for _, c := range p.Clients {
		fmt.Fprintf(w, "%s\tclient: eth0 %s\n", c.Netns, c.IP)
	}
	for _, pod := range p.Pods {
		var ports []string
		for _, cp := range pod.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", cp.Port, cp.Protocol))
		}
		fmt.Fprintf(w, "%s\tpod %s/%s on %s: eth0 %s (node side %s), ports %s\n", pod.Netns, pod.Namespace, pod.Name, pod.Node, pod.IP, pod.HostVeth, strings.Join(ports, ","))
	}
	fmt.Fprintf(w, "\nLINK (veth)\t\n")
	for _, l := range p.Links {
		fmt.Fprintf(w, "%s %s\t<-> %s %s%s\n", l.A.Netns, l.A.Name, l.B.Netns, l.B.Name, masterOf(l.B.Master))
	}
	fmt.Fprintf(w, "\nROUTE\t\n")
	for _, r := range p.Routes {
		fmt.Fprintf(w, "%s\t%s via %s\n", r.Netns, r.Dst, r.Via)
	}
	if len(p.Services) > 0 {
		fmt.Fprintf(w, "\nSERVICE\tTYPE\tCLUSTER-IP\tPORTS\tENDPOINTS\n")
		for _, s := range p.Services {
			var ports, eps []string
			for _, sp := range s.Ports {
				ports = append(ports, fmt.Sprintf("%d->%s/%s nodePort %d", sp.Port, sp.TargetPort, sp.Protocol, sp.NodePort))
			}
			for _, e := range s.Endpoints {
				if e.Port == 0 { // a headless Service without ports
					eps = append(eps, e.IP)
					continue
				}
				eps = append(eps, fmt.Sprintf("%s:%d", e.IP, e.Port))
			}
			fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Type, s.ClusterIP, strings.Join(ports, ", "), strings.Join(eps, ","))
		}
	}
	if d := p.DNS; d != nil {
		fmt.Fprintf(w, "\nCLUSTER DNS\tService %s %s, domain %s, %d DNS pods; resolv.conf of every pod and node: nameserver %s, ndots:5\n",
			d.Service, d.ServiceIP, d.ClusterDomain, d.Replicas, d.ServiceIP)
	}
	fmt.Fprintf(w, "\nPROCESS\tNAMESPACE\tARGS\n")
	for _, pr := range p.Processes {
		fmt.Fprintf(w, "%s %s\t%s\tnetlab %s\n", pr.Role, pr.Name, pr.Netns, strings.Join(pr.Args, " "))
	}
	for _, wn := range p.Warnings {
		fmt.Fprintf(w, "\nwarning: %s", wn)
	}
	w.Flush()
}

func masterOf(m string) string {
	if m == "" {
		return ""
	}
	return " (on bridge " + m + ")"
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
