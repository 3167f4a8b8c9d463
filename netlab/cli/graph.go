package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
)

func newGraph(g *globals) *cobra.Command {
	var output string
	var files []string
	cmd := &cobra.Command{
		Use:   "graph [--name LAB | -f FILE] [-o text|dot|mermaid|svg]",
		Short: "Draw the lab: clients, LB, nodes, pods and the wires between them (text, Graphviz dot, Mermaid or SVG)",
		Example: `  netlab graph
  netlab graph -o dot | dot -Tpng > lab.png
  netlab graph -o mermaid > lab.mmd          # GitHub and GitLab render it in markdown
  netlab graph -o svg > lab.svg              # through Graphviz's dot, when installed
  netlab graph -f scenarios/three-nodes.yaml   # a plan, without root`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p *plan.Plan
			var err error
			if len(files) > 0 {
				p, err = loadPlan(g, files, g.name)
			} else {
				var name string
				if name, err = g.labName(); err == nil {
					p, err = lab.LoadPlan(name)
				}
			}
			if err != nil {
				return err
			}
			switch output {
			case "dot":
				writeDot(g.out, p)
			case "mermaid":
				writeMermaid(g.out, p)
			case "svg":
				return writeSVG(cmd.Context(), g.out, p)
			case "text", "":
				writeTextGraph(g.out, p)
			default:
				return fmt.Errorf("unknown output %q (text, dot, mermaid or svg)", output)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "draw a scenario's plan instead of a running lab")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, dot, mermaid or svg")
	return cmd
}

func podsOn(p *plan.Plan, node string) []plan.Pod {
	var out []plan.Pod
	for _, pod := range p.Pods {
		if pod.Node == node {
			out = append(out, pod)
		}
	}
	return out
}

func writeTextGraph(w io.Writer, p *plan.Plan) {
	fmt.Fprintf(w, "lab %s (%s)\n\n", p.Lab, p.Network.Mode)
	fmt.Fprintf(w, "wan %s  [bridge \"wan\" in %s]\n", p.Network.WanCIDR, plan.NetnsName(p.Lab, "wan"))
	for _, c := range p.Clients {
		fmt.Fprintf(w, "├── client %-10s %-16s %s\n", c.Name, plan.Addr(c.IP), c.Netns)
	}
	var vips []string
	seen := map[string]bool{}
	for _, v := range p.LB.VIPs {
		if !seen[v.IP] {
			seen[v.IP] = true
			vips = append(vips, v.IP)
		}
	}
	fmt.Fprintf(w, "└── lb %s (eth0)  VIPs %s  %s\n", plan.Addr(p.LB.WanIP), strings.Join(vips, ", "), p.LB.Netns)
	fmt.Fprintf(w, "    │  L4, scheduler %s, health %s every %s\n", p.LB.Scheduler, p.LB.HealthCheck.Type, p.LB.HealthCheck.Interval)
	fmt.Fprintf(w, "    └── %s (eth1) ── fabric %s  [bridge \"fabric\" in %s]\n", plan.Addr(p.LB.FabricIP), p.Network.NodeCIDR, plan.NetnsName(p.Lab, "fabric"))
	for i, n := range p.Nodes {
		last := i == len(p.Nodes)-1
		branch, pipe := "├──", "│  "
		if last {
			branch, pipe = "└──", "   "
		}
		fmt.Fprintf(w, "        %s node %s %s (eth0)  %s\n", branch, n.Name, plan.Addr(n.IP), n.Netns)
		fmt.Fprintf(w, "        %s   ingress :%d/:%d, kube-proxy; cni0 %s, pods %s\n", pipe, p.Ingress.HTTPPort, p.Ingress.HTTPSPort, plan.Addr(n.Gateway), n.PodCIDR)
		pods := podsOn(p, n.Name)
		for j, pod := range pods {
			b := "├──"
			if j == len(pods)-1 {
				b = "└──"
			}
			fmt.Fprintf(w, "        %s   %s pod %-12s %-14s %s (node side %s)\n", pipe, b, pod.Name, plan.Addr(pod.IP), pod.Netns, pod.HostVeth)
		}
	}
	if len(p.Services) > 0 {
		fmt.Fprintf(w, "\nServices (kube-proxy rules on every node):\n")
		for _, s := range p.Services {
			pods := map[string]bool{}
			var names []string
			for _, e := range s.Endpoints {
				if !pods[e.Pod] {
					pods[e.Pod] = true
					names = append(names, e.Pod)
				}
			}
			extra := ""
			if s.LoadBalancerIP != "" {
				extra = " ← LB " + s.LoadBalancerIP
			}
			fmt.Fprintf(w, "  %s/%s %s %s → %s%s\n", s.Namespace, s.Name, s.Type, s.ClusterIP, strings.Join(names, ", "), extra)
		}
	}
}

func writeDot(w io.Writer, p *plan.Plan) {
	q := func(s string) string {
		s = strings.ReplaceAll(strings.ReplaceAll(s, `"`, `\"`), "\n", `\n`)
		return `"` + s + `"`
	}
	fmt.Fprintf(w, "graph %s {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n", q("netlab "+p.Lab))
	fmt.Fprintf(w, "  wan [shape=ellipse, label=%s];\n  fabric [shape=ellipse, label=%s];\n",
		q("wan\n"+p.Network.WanCIDR), q("fabric\n"+p.Network.NodeCIDR))
	for _, c := range p.Clients {
		fmt.Fprintf(w, "  %s [label=%s];\n  %s -- wan;\n", q("client/"+c.Name), q(c.Name+"\n"+plan.Addr(c.IP)), q("client/"+c.Name))
	}
	fmt.Fprintf(w, "  lb [label=%s];\n  wan -- lb [label=%s];\n  lb -- fabric [label=%s];\n",
		q("lb ("+p.LB.Scheduler+")\nVIP "+p.LB.VIP), q(plan.Addr(p.LB.WanIP)), q(plan.Addr(p.LB.FabricIP)))
	for _, n := range p.Nodes {
		id := q("node/" + n.Name)
		fmt.Fprintf(w, "  subgraph %s {\n    label=%s;\n    %s [label=%s];\n", q("cluster_"+n.Name), q(n.Name+" "+n.PodCIDR), id,
			q(n.Name+"\n"+plan.Addr(n.IP)+"\ningress + kube-proxy"))
		for _, pod := range podsOn(p, n.Name) {
			fmt.Fprintf(w, "    %s [shape=component, label=%s];\n    %s -- %s [label=\"cni0\"];\n",
				q("pod/"+pod.Name), q(pod.Name+"\n"+plan.Addr(pod.IP)), id, q("pod/"+pod.Name))
		}
		fmt.Fprintf(w, "  }\n  fabric -- %s;\n", id)
	}
	fmt.Fprintln(w, "}")
}

// writeMermaid draws the same picture as writeDot as a Mermaid flowchart.
func writeMermaid(w io.Writer, p *plan.Plan) {
	id := func(kind, name string) string {
		return kind + "_" + strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(name)
	}
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, "#quot;") + `"` }
	fmt.Fprintf(w, "flowchart LR\n")
	fmt.Fprintf(w, "  wan([%s])\n  fabric([%s])\n", q("wan<br>"+p.Network.WanCIDR), q("fabric<br>"+p.Network.NodeCIDR))
	for _, c := range p.Clients {
		fmt.Fprintf(w, "  %s[%s] --- wan\n", id("client", c.Name), q(c.Name+"<br>"+plan.Addr(c.IP)))
	}
	fmt.Fprintf(w, "  lb[%s]\n  wan ---|%s| lb\n  lb ---|%s| fabric\n",
		q("lb ("+p.LB.Scheduler+")<br>VIP "+p.LB.VIP), q(plan.Addr(p.LB.WanIP)), q(plan.Addr(p.LB.FabricIP)))
	for _, n := range p.Nodes {
		nid := id("node", n.Name)
		fmt.Fprintf(w, "  subgraph %s[%s]\n    %s[%s]\n", id("cluster", n.Name), q(n.Name+" "+n.PodCIDR), nid,
			q(n.Name+"<br>"+plan.Addr(n.IP)+"<br>ingress + kube-proxy"))
		for _, pod := range podsOn(p, n.Name) {
			fmt.Fprintf(w, "    %s ---|cni0| %s[[%s]]\n", nid, id("pod", pod.Name), q(pod.Name+"<br>"+plan.Addr(pod.IP)))
		}
		fmt.Fprintf(w, "  end\n  fabric --- %s\n", nid)
	}
}

// writeSVG renders the dot graph with Graphviz, which netlab does not carry itself.
func writeSVG(ctx context.Context, w io.Writer, p *plan.Plan) error {
	dot, err := exec.LookPath("dot")
	if err != nil {
		return errors.New("-o svg needs Graphviz's dot (apt install graphviz); without it: netlab graph -o dot > lab.dot, or -o mermaid")
	}
	var src, stderr bytes.Buffer
	writeDot(&src, p)
	cmd := exec.CommandContext(ctx, dot, "-Tsvg")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &src, w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dot -Tsvg: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
