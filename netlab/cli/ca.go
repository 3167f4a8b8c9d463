package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newCA) }

func newCA(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca [--name LAB]",
		Short: "Print the path of the lab CA certificate (for curl --cacert)",
		Example: `  netlab exec client -- curl --cacert "$(netlab ca)" https://app.example/
  ip netns exec nl-demo-client curl --cacert "$(netlab ca)" https://app.example/`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			path := rundir.ForLab(name).CACert()
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("lab %s has no CA at %s (the ingress agents create it at up)", name, path)
			} else if err != nil {
				return err
			}
			fmt.Fprintln(g.out, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&g.name, "name", "", "lab name (default: the only lab that is up)")
	return cmd
}
