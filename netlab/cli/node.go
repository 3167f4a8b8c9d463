package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newNode(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Failure drills on nodes: fail, recover"}
	var wait bool
	var timeout time.Duration
	drill := func(use, short, done string, up bool) *cobra.Command {
		c := &cobra.Command{
			Use:               use + " [--name LAB] NODE [--wait [--timeout D]]",
			Short:             short,
			Args:              cobra.ExactArgs(1),
			PreRunE:           needRoot,
			ValidArgsFunction: completeObjects(g, "node"),
			RunE: func(cmd *cobra.Command, args []string) error {
				name, err := g.labName()
				if err != nil {
					return err
				}
				if err := lab.SetNodeLink(name, args[0], up); err != nil {
					return err
				}
				fmt.Fprintf(g.out, "node %s: %s\n", args[0], done)
				if !wait {
					return nil
				}
				start := time.Now()
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				if err := lab.WaitNode(ctx, name, args[0], up); err != nil {
					return err
				}
				fmt.Fprintf(g.out, "node %s: the LB and the endpoints reacted in %s\n", args[0], time.Since(start).Round(10*time.Millisecond))
				return nil
			},
		}
		c.Flags().BoolVar(&wait, "wait", false, "return when the LB's health checks and the endpoints have reacted")
		c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "with --wait: how long to wait")
		return c
	}
	cmd.AddCommand(
		drill("fail", "Take a node off the fabric (its eth0 goes down): the LB's health checks notice", "off the fabric", false),
		drill("recover", "Put a node back on the fabric (eth0 up, its routes restored)", "back on the fabric", true),
	)
	return cmd
}
