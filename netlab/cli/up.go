package cli

import (
	"fmt"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
	"github.com/spf13/cobra"
)

type upFlags struct {
	files   []string
	retain  bool
	timeout time.Duration
}

func newUp(g *globals) *cobra.Command {
	f := &upFlags{}
	cmd := &cobra.Command{
		Use:     "up [-f FILE ...] [--name LAB]",
		Short:   "Build a lab and return when every pod, ingress and the LB are ready",
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPlan(g, f.files, g.name)
			if err != nil {
				return err
			}
			start := time.Now()
			if err := lab.Up(cmd.Context(), p, lab.Options{Retain: f.retain, ReadyTimeout: f.timeout, Log: g.logger()}); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "lab %s is up in %s: %d nodes, %d pods, %d clients, ingress VIP %s\n",
				p.Lab, time.Since(start).Round(time.Millisecond), len(p.Nodes), len(p.Pods), len(p.Clients), p.LB.VIP)
			target := p.LB.VIP
			if hosts := lab.IngressHosts(p); len(hosts) > 0 {
				target = hosts[0]
			}
			fmt.Fprintf(g.out, "  netlab status --name %s\n  netlab trace --name %s http://%s/      # follow a request hop by hop\n", p.Lab, p.Lab, target)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&f.files, "file", "f", nil, "scenario file (repeatable); default: the embedded default lab")
	cmd.Flags().StringVar(&g.name, "name", "", "lab name (default: the Lab object's metadata.name, else demo)")
	cmd.Flags().BoolVar(&f.retain, "retain", false, "keep what was made when up fails, for debugging")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for every agent to be ready")
	return cmd
}

// loadPlan reads, validates and plans a scenario; every problem is listed at once.
func loadPlan(g *globals, files []string, name string) (*plan.Plan, error) {
	s, err := scenario.Load(files)
	if err != nil {
		return nil, err
	}
	if err := scenario.Validate(s); err != nil {
		return nil, err
	}
	for _, w := range s.Warnings {
		fmt.Fprintln(g.errOut, "warning: "+w.String())
	}
	return plan.Build(s, name)
}
