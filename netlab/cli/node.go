package cli

import (
	"fmt"

	"github.com/netlabdev/netlab/netlab/lab"
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
			if err := lab.SetNodeLink(name, args[0], false); err != nil {
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
			if err := lab.SetNodeLink(name, args[0], true); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "node %s: back on the fabric\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(fail, rec)
	return cmd
}
