package cli

import (
	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/spf13/cobra"
)

// The per-node ingress agent (issue 5).
func init() {
	agentRoles = append(agentRoles, newAgentIngress)
}

func newAgentIngress(*globals) *cobra.Command {
	var cfg agent.IngressConfig
	cmd := &cobra.Command{
		Use:  "ingress",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := agentContext(cmd.Context())
			defer cancel()
			return agent.RunIngress(ctx, cfg, agentLogger())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Lab, "lab", "", "lab name")
	f.StringVar(&cfg.Node, "node", "", "node name")
	f.StringVar(&cfg.Dir, "dir", "", "lab runtime directory (default /run/netlab/LAB)")
	f.StringVar(&cfg.Config, "config", "", "configuration file, re-read on SIGHUP (default DIR/plan.json)")
	f.StringVar(&cfg.CADir, "ca-dir", "", "lab CA directory (default DIR/ca)")
	f.StringVar(&cfg.ClassName, "class", "", "IngressClass served (default netlab)")
	f.IntVar(&cfg.HTTPPort, "http-port", 0, "HTTP port (default 80)")
	f.IntVar(&cfg.HTTPSPort, "https-port", 0, "HTTPS port (default 443)")
	f.IntVar(&cfg.MetricsPort, "metrics-port", 0, "Prometheus metrics port (default 10254)")
	f.DurationVar(&cfg.UpstreamTimeout, "upstream-timeout", 0, "wait for an upstream's response headers before 504 (default 30s)")
	return cmd
}
