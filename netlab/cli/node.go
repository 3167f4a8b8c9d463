package cli

import (
	"errors"
	"fmt"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newNode) }

func newNode(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Failure drills on nodes: fail, recover"}
	cmd.PersistentFlags().StringVar(&g.name, "name", "", "lab name (default: the only lab that is up)")
	fail := &cobra.Command{
		Use:     "fail NODE",
		Short:   "Take a node off the fabric (its eth0 goes down): the LB's health checks notice",
		Args:    cobra.ExactArgs(1),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			if err := setNodeLink(name, args[0], false); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "node %s: off the fabric\n", args[0])
			return nil
		},
	}
	rec := &cobra.Command{
		Use:     "recover NODE",
		Short:   "Put a node back on the fabric (eth0 up, its routes restored)",
		Args:    cobra.ExactArgs(1),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			if err := setNodeLink(name, args[0], true); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "node %s: back on the fabric\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(fail, rec)
	return cmd
}

// setNodeLink sets a node's fabric interface down or up. Taking an interface down drops
// the IPv4 routes through it, so bringing it up adds the node's planned routes again.
func setNodeLink(name, node string, up bool) error {
	p, err := lab.LoadPlan(name)
	if err != nil {
		return err
	}
	var n *plan.Node
	for i := range p.Nodes {
		if p.Nodes[i].Name == node {
			n = &p.Nodes[i]
		}
	}
	if n == nil {
		return fmt.Errorf("lab %s has no node %q", name, node)
	}
	h := kernel.NewHandles()
	defer h.Close()
	if err := h.SetLink(n.Netns, plan.NodeIface, up); err != nil {
		return err
	}
	if !up {
		return nil
	}
	var errs []error
	for _, r := range p.Routes {
		if r.Netns == n.Netns {
			if err := h.AddRoute(r.Netns, r.Dst, r.Via, r.Dev); err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", r.Dst, err))
			}
		}
	}
	return errors.Join(errs...)
}
