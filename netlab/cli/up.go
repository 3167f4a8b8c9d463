package cli

import (
	"bytes"
	"fmt"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
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
			opts := lab.Options{Retain: f.retain, ReadyTimeout: f.timeout, Log: g.logger(), Scenario: scenarioText(f.files)}
			if err := lab.Up(cmd.Context(), p, opts); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "lab %s is up in %s: %s, %s, %s, ingress VIP %s\n",
				p.Lab, time.Since(start).Round(time.Millisecond), plural(len(p.Nodes), "node", "nodes"),
				plural(len(p.Pods), "pod", "pods"), plural(len(p.Clients), "client", "clients"), p.LB.VIP)
			target := p.LB.VIP
			if hosts := lab.IngressHosts(p); len(hosts) > 0 {
				target = hosts[0]
			}
			hints := lab.Hints(p.Lab, "status", "trace http://"+target+"/")
			fmt.Fprintf(g.out, "  %s\n  %s      # follow a request hop by hop\n", hints[0], hints[1])
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&f.files, "file", "f", nil, "scenario file (repeatable); default: the embedded default lab")
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
	return planbuild.Build(s, name)
}

// scenarioText is the scenario's files one after the other, each named, as up keeps it
// with the logs.
func scenarioText(files []string) []byte {
	if len(files) == 0 {
		return append([]byte("# the embedded default scenario\n"), scenario.DefaultYAML()...)
	}
	var b bytes.Buffer
	for i, f := range files {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "# file: %s\n", f)
		content, err := scenario.ReadFile(f) // "-" (stdin) was read once, by loadPlan
		if err != nil {
			fmt.Fprintf(&b, "# unreadable: %v\n", err)
			continue
		}
		b.Write(content)
		if !bytes.HasSuffix(content, []byte("\n")) {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}
