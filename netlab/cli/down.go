package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
)

func newDown(g *globals) *cobra.Command {
	var all, purge bool
	cmd := &cobra.Command{
		Use:   "down [--name LAB] [--all] [--purge]",
		Short: "Remove a lab (or every lab), found by name; idempotent",
		Long: `Remove a lab, found by its name: no scenario file needed, and nothing to remove is not
an error. Without --name it removes the only lab that is up, and refuses to guess when
several are up. --all removes every netlab lab on this machine, other people's too.

The lab's agent logs stay (in ` + rundir.LogRoot + `/LAB) for netlab logs and netlab export logs
until the next up of that name; --purge removes them too.`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all {
				if g.name != "" {
					return usagef("--all and --name %s: give one of them", g.name)
				}
				if err := lab.DownAll(g.logger()); err != nil || !purge {
					return err
				}
				var errs []error
				for _, l := range lab.LoggedLabs() {
					errs = append(errs, lab.PurgeLogs(l))
				}
				return errors.Join(errs...)
			}
			name := g.name
			if name == "" {
				labs, err := lab.Labs()
				if err != nil {
					return err
				}
				if len(labs) == 0 {
					if purge {
						return usagef("no lab is up: say which lab's logs to purge with --name")
					}
					return nil // nothing to remove
				}
				if name, err = g.labName(); err != nil {
					return err
				}
			}
			if err := lab.Down(name, g.logger()); err != nil {
				return err
			}
			if purge {
				if err := lab.PurgeLogs(name); err != nil {
					return err
				}
				fmt.Fprintf(g.errOut, "lab %s is down, its logs removed\n", name)
				return nil
			}
			if _, err := os.Stat(rundir.ForLab(name).Logs()); err == nil {
				fmt.Fprintf(g.errOut, "lab %s is down; its logs stay until the next up (%s, --purge removes them)\n", name, lab.Hint(name, "logs"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every netlab lab on this machine")
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove the lab's kept logs")
	return cmd
}
