package cli

import (
	"fmt"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newExport(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Export what it takes to diagnose a lab: logs"}
	logs := &cobra.Command{
		Use:   "logs [--name LAB] DIR",
		Short: "Write a lab's plan, scenario, status, agent logs and every namespace's rules, conntrack, addresses, routes and neighbours into DIR",
		Long: `Write into DIR, as kind export logs does:

  plan.json, scenario.yaml, status.json, endpoints.json, lb-state.json
  logs/<component>-<object>.log                   every agent's log
  netns/<object>/iptables-save.txt, nft-ruleset.txt (when nft is installed),
                 conntrack.txt, addresses.txt, routes.txt, neighbours.txt

A lab that is down exports its kept logs and scenario. What could not be read is
listed in DIR/errors.txt.`,
		Args:    cobra.ExactArgs(1),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labOrLogs()
			if err != nil {
				return err
			}
			files, err := lab.ExportLogs(cmd.Context(), name, args[0])
			fmt.Fprintf(g.errOut, "exported %s of lab %s to %s\n", plural(len(files), "file", "files"), name, args[0])
			return err
		},
	}
	cmd.AddCommand(logs)
	return cmd
}
