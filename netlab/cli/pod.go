package cli

import (
	"fmt"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newPod(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pod", Short: "Failure drills on pods: kill, start"}
	kill := &cobra.Command{
		Use:               "kill [--name LAB] POD",
		Short:             "Stop a pod's process (its namespace and address stay, as a crashed container's)",
		Args:              cobra.ExactArgs(1),
		PreRunE:           needRoot,
		ValidArgsFunction: completeObjects(g, "pod"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			n, err := lab.KillPod(name, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "pod %s: stopped %s\n", args[0], plural(n, "process", "processes"))
			return nil
		},
	}
	start := &cobra.Command{
		Use:               "start [--name LAB] POD",
		Short:             "Start a pod's process again and wait until it serves",
		Args:              cobra.ExactArgs(1),
		PreRunE:           needRoot,
		ValidArgsFunction: completeObjects(g, "pod"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			if err := lab.StartPod(name, args[0], 10*time.Second); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "pod %s: started\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(kill, start)
	return cmd
}
