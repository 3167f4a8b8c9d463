package cli

import (
	"path/filepath"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/supervise"
	"github.com/spf13/cobra"
)

// The supervisor: one per lab, in the root namespace; restarts the lab's agents.
func init() {
	agentRoles = append(agentRoles, newAgentSupervisor)
}

func newAgentSupervisor(*globals) *cobra.Command {
	var cfg supervise.Config
	cmd := &cobra.Command{
		Use:  "supervisor",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := plan.CheckLabName(cfg.Lab); err != nil {
				return err
			}
			if cfg.Dir == "" {
				cfg.Dir = lab.Dir(cfg.Lab)
			}
			cfg.LockPath = supervise.LockPath(filepath.Dir(cfg.Dir), cfg.Lab)
			ctx, cancel := agentContext(cmd.Context())
			defer cancel()
			return supervise.Run(ctx, cfg, agentLogger(), agent.NotifyReady)
		},
	}
	cmd.Flags().StringVar(&cfg.Lab, "lab", "", "lab name")
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "lab runtime directory (default /run/netlab/LAB)")
	return cmd
}
