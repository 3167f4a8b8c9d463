package cli

import (
	"fmt"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newDown(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "down [--name LAB] [--all]",
		Short: "Remove a lab (or every lab), found by name; idempotent",
		Long: `Remove a lab, found by its name: no scenario file needed, and nothing to remove is not
an error. Without --name it removes the only lab that is up, and refuses to guess when
several are up. --all removes every netlab lab on this machine, other people's too.`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				if g.name != "" {
					return usagef("--all and --name %s: give one of them", g.name)
				}
				return lab.DownAll(g.logger())
			}
			name := g.name
			if name == "" {
				labs, err := lab.Labs()
				if err != nil {
					return err
				}
				if len(labs) == 0 {
					return nil // nothing to remove
				}
				if name, err = g.labName(); err != nil {
					return err
				}
			}
			if err := lab.Down(name, g.logger()); err != nil {
				return err
			}
			fmt.Fprintf(g.errOut, "lab %s is down\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every netlab lab on this machine")
	return cmd
}
