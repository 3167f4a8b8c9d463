package cli

import (
	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/spf13/cobra"
)

// The cluster DNS's agent: one per DNS pod, inside the pod's namespace.
func init() {
	agentRoles = append(agentRoles, newAgentDNS)
}

func newAgentDNS(*globals) *cobra.Command {
	var cfg agent.DNSConfig
	cmd := &cobra.Command{
		Use:  "dns",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := agentContext(cmd.Context())
			defer cancel()
			return agent.RunDNS(ctx, cfg, agentLogger())
		},
	}
	cmd.Flags().StringVar(&cfg.Lab, "lab", "", "lab name")
	cmd.Flags().StringVar(&cfg.Pod, "pod", "", "pod name")
	cmd.Flags().StringVar(&cfg.Node, "node", "", "node name")
	cmd.Flags().StringVar(&cfg.IP, "ip", "", "pod IP")
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "lab runtime directory (default /run/netlab/LAB)")
	cmd.Flags().IntVar(&cfg.Port, "port", 53, "DNS port (UDP and TCP)")
	cmd.Flags().IntVar(&cfg.ReadyPort, "ready-port", 8181, "readiness port (GET /ready)")
	return cmd
}
