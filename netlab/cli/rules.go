package cli

import (
	"fmt"
	"strings"

	"github.com/netlabdev/netlab/netlab/iptables"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newRules) }

func newRules(g *globals) *cobra.Command {
	var service string
	var all bool
	cmd := &cobra.Command{
		Use:   "rules NODE [--service NAME]",
		Short: "Show a node's live kube-proxy rules with packet counters, annotated with their Service and pod",
		Long: `Shows the filter and nat rules kube-proxy keeps on NODE (iptables-save -c inside the
node's namespace), each chain and rule annotated with the Service port and the pod it
belongs to. --service keeps only one Service's rules (NAME or NAMESPACE/NAME).`,
		Args:    cobra.ExactArgs(1),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			idx := ruleIndex(ports)
			for _, table := range []string{"filter", "nat"} {
				out, err := kernel.Save(ns, true, table)
				if err != nil {
					return err
				}
				if err := printRules(g, table, out, idx, service, all); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&g.name, "name", "", "lab name (default: the only lab that is up)")
	cmd.Flags().StringVar(&service, "service", "", "only this Service's rules (NAME or NAMESPACE/NAME)")
	cmd.Flags().BoolVar(&all, "all", false, "also show rules that are not kube-proxy's")
	return cmd
}

// owner says what a chain belongs to.
type owner struct {
	service string // "ns/name"
	port    string // service port name "ns/name:port"
	what    string // e.g. "endpoint web-1 10.244.1.2:8080"
}

func ruleIndex(ports []kubeproxy.ServicePort) map[string]owner {
	idx := map[string]owner{}
	for _, sp := range ports {
		name, proto := sp.ServicePortName(), sp.Protocol
		idx[kubeproxy.SVCChain(name, proto)] = owner{sp.ServiceName(), name, "cluster traffic policy"}
		idx[kubeproxy.SVLChain(name, proto)] = owner{sp.ServiceName(), name, "local traffic policy"}
		idx[kubeproxy.EXTChain(name, proto)] = owner{sp.ServiceName(), name, "external destinations"}
		for _, ep := range sp.Endpoints {
			state := "ready"
			if !ep.Ready {
				state = "not ready"
			}
			idx[kubeproxy.SEPChain(name, proto, ep.String())] = owner{sp.ServiceName(), name,
				fmt.Sprintf("endpoint %s %s on %s (%s)", ep.Pod, ep.String(), ep.Node, state)}
		}
	}
	return idx
}

func serviceMatches(svc, want string) bool {
	if want == "" {
		return true
	}
	if strings.Contains(want, "/") {
		return svc == want
	}
	_, name, _ := strings.Cut(svc, "/")
	return name == want
}

// printRules prints iptables-save -c output of one table with annotations.
func printRules(g *globals, table string, save []byte, idx map[string]owner, service string, all bool) error {
	dump, err := iptables.Parse(save)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.out, "*%s\n", table)
	for _, t := range dump.Tables {
		for _, r := range t.Rules {
			if !r.HasCounters || r.Op != "-A" {
				continue
			}
			chain, target, rule := r.Chain, r.Target(), r.Text
			o, mine := idx[chain]
			if !mine {
				o, mine = idx[target]
			}
			ours := strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(target, "KUBE-")
			if !ours && !all {
				continue
			}
			if service != "" && (!mine || !serviceMatches(o.service, service)) && !commentNames(rule, service) {
				continue
			}
			var notes []string
			if o, ok := idx[chain]; ok {
				notes = append(notes, o.port+": "+o.what)
			}
			if o, ok := idx[target]; ok {
				notes = append(notes, "-> "+o.port+" "+o.what)
			}
			note := strings.Join(notes, " ")
			fmt.Fprintf(g.out, "%8d %10d  %s", r.Counters.Packets, r.Counters.Bytes, rule)
			if note != "" {
				fmt.Fprintf(g.out, "    # %s", note)
			}
			fmt.Fprintln(g.out)
		}
	}
	fmt.Fprintln(g.out, "COMMIT")
	return nil
}

// commentNames says whether a rule's comment names the Service (filter REJECT/DROP rules
// and health check ports have no per-service chain).
func commentNames(rule, service string) bool {
	i := strings.Index(rule, "--comment ")
	if i < 0 {
		return false
	}
	f := strings.Fields(strings.TrimLeft(rule[i+len("--comment "):], `"`))
	if len(f) == 0 {
		return false
	}
	svc, _, _ := strings.Cut(strings.Trim(f[0], `"`), ":")
	return serviceMatches(svc, service)
}
