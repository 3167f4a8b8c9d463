package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
)

func newLogs(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs [--name LAB] COMPONENT [OBJECT]",
		Short: "Show an agent's log: pod POD, ingress NODE, kube-proxy NODE, lb, controller",
		Example: `  netlab logs controller
  netlab logs ingress node-1
  netlab logs pod web-1`,
		Args:    cobra.RangeArgs(0, 2),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			dir := rundir.ForLab(name).Logs()
			if len(args) == 0 {
				ents, err := os.ReadDir(dir)
				if err != nil {
					return fmt.Errorf("lab %s has no logs: %w", name, err)
				}
				var names []string
				for _, e := range ents {
					names = append(names, strings.TrimSuffix(e.Name(), ".log"))
				}
				sort.Strings(names)
				fmt.Fprintln(g.out, strings.Join(names, "\n"))
				return nil
			}
			obj := args[0]
			if len(args) == 2 {
				obj = args[1]
			}
			f, err := os.Open(rundir.ForLab(name).Log(args[0], obj))
			if err != nil {
				return fmt.Errorf("no log for %s (netlab logs lists them): %w", strings.Join(args, " "), err)
			}
			defer f.Close()
			_, err = io.Copy(g.out, f)
			return err
		},
	}
	cmd.Flags().StringVar(&g.name, "name", "", "lab name (default: the only lab that is up)")
	return cmd
}
