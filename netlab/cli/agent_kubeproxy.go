package cli

import (
	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/spf13/cobra"
)

// The kube-proxy and endpoints controller agents (issue 3).
func init() {
	agentRoles = append(agentRoles, newAgentKubeProxy, newAgentController)
}

func newAgentKubeProxy(*globals) *cobra.Command {
	var cfg agent.KubeProxyConfig
	cmd := &cobra.Command{
		Use:  "kube-proxy",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := agentContext(cmd.Context())
			defer cancel()
			return agent.RunKubeProxy(ctx, cfg, agentLogger())
		},
	}
	cmd.Flags().StringVar(&cfg.Lab, "lab", "", "lab name")
	cmd.Flags().StringVar(&cfg.Node, "node", "", "node name")
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "lab runtime directory (default /run/netlab/LAB)")
	return cmd
}

func newAgentController(*globals) *cobra.Command {
	var cfg agent.ControllerConfig
	cmd := &cobra.Command{
		Use:  "controller",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := agentContext(cmd.Context())
			defer cancel()
			return agent.RunController(ctx, cfg, agentLogger())
		},
	}
	cmd.Flags().StringVar(&cfg.Lab, "lab", "", "lab name")
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "lab runtime directory (default /run/netlab/LAB)")
	cmd.Flags().DurationVar(&cfg.Interval, "interval", 0, "probe interval (at most 500ms; default 250ms)")
	return cmd
}
