package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
)

// agentRoles lets each role's command register itself (one file per role).
var agentRoles []func(*globals) *cobra.Command

func newAgent(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Run a lab process (started by up inside its namespace)",
		Hidden: true,
		// An agent changes the namespace it runs in (iptables, listeners): it refuses to
		// run anywhere but its own lab object's, so a hand-started one can never touch
		// the host's network.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			labName, _ := cmd.Flags().GetString("lab")
			var object string
			switch cmd.Name() {
			case "pod":
				object, _ = cmd.Flags().GetString("pod")
			case "kube-proxy", "ingress":
				object, _ = cmd.Flags().GetString("node")
			case "lb":
				object = "lb"
			default:
				return nil // the controller lives in the root namespace and changes nothing there
			}
			ns := plan.NetnsName(labName, object)
			if labName == "" || object == "" || !kernel.InNetns(ns) {
				return fmt.Errorf("agent %s must run inside namespace %s (netlab up starts it there)", cmd.Name(), ns)
			}
			return nil
		},
	}
	cmd.AddCommand(newAgentPod(g))
	for _, r := range agentRoles {
		cmd.AddCommand(r(g))
	}
	return cmd
}

// agentContext ends on SIGTERM or SIGINT.
func agentContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
}

func agentLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newAgentPod(g *globals) *cobra.Command {
	var cfg agent.PodConfig
	var ports []string
	cmd := &cobra.Command{
		Use:  "pod",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range ports {
				ps, err := agent.ParsePortSpec(p)
				if err != nil {
					return err
				}
				cfg.Ports = append(cfg.Ports, ps)
			}
			ctx, cancel := agentContext(cmd.Context())
			defer cancel()
			// A graceful termination (apply, scale, rollout) marks the pod leaving before
			// its SIGTERM; any other SIGTERM (down, pod kill) ends the agent at once.
			cfg.Leaving = func() bool { return lab.Leaving(cfg.Lab, cfg.Pod) }
			killed := make(chan struct{})
			sigint := make(chan os.Signal, 1)
			signal.Notify(sigint, syscall.SIGINT)
			go func() { <-sigint; close(killed) }()
			cfg.Killed = killed
			return agent.RunPod(ctx, cfg, agentLogger())
		},
	}
	cmd.Flags().StringVar(&cfg.Lab, "lab", "", "lab name")
	cmd.Flags().StringVar(&cfg.Pod, "pod", "", "pod name")
	cmd.Flags().StringVar(&cfg.Node, "node", "", "node name")
	cmd.Flags().StringVar(&cfg.IP, "ip", "", "pod IP")
	cmd.Flags().StringArrayVar(&ports, "port", nil, "PORT/PROTO to serve (repeatable)")
	return cmd
}
