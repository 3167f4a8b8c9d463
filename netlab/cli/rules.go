package cli

import (
	"fmt"
	"io"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
)

func newRules(g *globals) *cobra.Command {
	var filter kubeproxy.RuleFilter
	cmd := &cobra.Command{
		Use:   "rules [--name LAB] NODE [--service NAME] [--all] [-o table|wide|json|yaml]",
		Short: "Show a node's live kube-proxy rules with packet counters, annotated with their Service and pod",
		Long: `Show the filter and nat rules kube-proxy keeps on NODE (iptables-save -c inside the
node's namespace), each chain and rule annotated with the Service port and the pod it
belongs to. In nftables mode: the table ip kube-proxy (nft list), its per-service chains,
sets and verdict-map elements annotated the same way, with per-endpoint conntrack counts.
--service keeps only one Service's rules (NAME or NAMESPACE/NAME).`,
		Args:              cobra.ExactArgs(1),
		PreRunE:           needRoot,
		ValidArgsFunction: completeObjects(g, "node"),
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name, err := g.labName()
		if err != nil {
			return err
		}
		p, err := lab.LoadPlan(name)
		if err != nil {
			return err
		}
		var ns string
		for _, n := range p.Nodes {
			if n.Name == args[0] {
				ns = n.Netns
			}
		}
		if ns == "" {
			return fmt.Errorf("lab %s has no node %q", name, args[0])
		}
		ports := p.ServicePorts(nil)
		if ef, err := rundir.ForLab(name).ReadEndpoints(); err == nil {
			ports = ef.Ports
		}
		if p.NFTables() {
			lines, err := nftRules(ns, ports, filter.Service)
			if err != nil {
				return err
			}
			return o.print(g.out, lines, func(w io.Writer, wide bool) error { return writeNFTRules(w, lines, wide) })
		}
		tables := []string{"filter", "nat"}
		rules := []kubeproxy.AnnotatedRule{}
		for _, table := range tables {
			out, err := kernel.Save(ns, true, table)
			if err != nil {
				return err
			}
			annotated, err := kubeproxy.Annotate(table, out, ports, filter)
			if err != nil {
				return err
			}
			rules = append(rules, annotated...)
		}
		return o.print(g.out, rules, func(w io.Writer, wide bool) error {
			return writeRules(w, tables, rules, wide)
		})
	}
	cmd.Flags().StringVar(&filter.Service, "service", "", "only this Service's rules (NAME or NAMESPACE/NAME)")
	cmd.Flags().BoolVar(&filter.All, "all", false, "also show rules that are not kube-proxy's")
	_ = cmd.RegisterFlagCompletionFunc("service", completeServices(g))
	return cmd
}

// writeRules prints the rules as iptables-save does, counters first and each rule's
// annotation after it (wide: also its Service as a column).
func writeRules(w io.Writer, tables []string, rules []kubeproxy.AnnotatedRule, wide bool) error {
	for _, table := range tables {
		fmt.Fprintf(w, "*%s\n", table)
		for _, r := range rules {
			if r.Table != table {
				continue
			}
			if wide {
				svc := r.Service
				if svc == "" {
					svc = "-"
				}
				fmt.Fprintf(w, "%8d %10d  %-24s %s", r.Packets, r.Bytes, svc, r.Rule)
			} else {
				fmt.Fprintf(w, "%8d %10d  %s", r.Packets, r.Bytes, r.Rule)
			}
			if r.Note != "" {
				fmt.Fprintf(w, "    # %s", r.Note)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "COMMIT")
	}
	return nil
}
