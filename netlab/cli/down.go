package cli

import (
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newDown(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "down [--name LAB] [--all]",
		Short:   "Remove a lab (or every lab), found by name; idempotent",
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				return lab.DownAll(g.logger())
			}
			name := g.name
			if name == "" {
				labs, err := lab.Labs()
				if err != nil {
					return err
				}
				switch len(labs) {
				case 0:
					return nil // nothing to remove
				case 1:
					name = labs[0]
				default:
					_, err := lab.Resolve("")
					return err
				}
			}
			return lab.Down(name, g.logger())
		},
	}
	cmd.Flags().StringVar(&g.name, "name", "", "lab name (default: the only lab that is up)")
	cmd.Flags().BoolVar(&all, "all", false, "remove every netlab lab on this machine")
	return cmd
}
