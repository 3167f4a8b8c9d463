package cli

import (
	"encoding/json"
	"fmt"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newCheck) }

type checkFailed int

func (c checkFailed) Error() string { return fmt.Sprintf("%d check(s) failed", int(c)) }

func newCheck(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "check [--name LAB] [-o table|json]",
		Short:   "Verify a running lab: namespaces, agents, pods, kube-proxy syncs, LB health, a request through every entry point",
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			checks, err := lab.CheckLab(cmd.Context(), name)
			if err != nil {
				return err
			}
			failed := 0
			for _, c := range checks {
				if !c.OK {
					failed++
				}
			}
			if output == "json" {
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(checks); err != nil {
					return err
				}
			} else {
				for _, c := range checks {
					mark := "ok  "
					if !c.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(g.out, "%s  %-34s %s\n", mark, c.Name, c.Detail)
				}
			}
			if failed > 0 {
				return checkFailed(failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&g.name, "name", "", "lab name (default: the only lab that is up)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
