package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/privs"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
)

// The lab's own processes, one subcommand per role, all here: `up` starts them (see
// plan.Process) and nobody else should.

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
			default:
				// agent.Main's roles check where they run themselves
				return nil
			}
			ns := plan.NetnsName(labName, object)
			if labName == "" || object == "" || !kernel.InNetns(ns) {
				return fmt.Errorf("agent %s must run inside namespace %s (netlab up starts it there)", cmd.Name(), ns)
			}
			return dropPrivileges(cmd)
		},
	}
	cmd.AddCommand(newAgentPod())
	for _, role := range agent.Roles {
		cmd.AddCommand(newAgentMain(role))
	}
	return cmd
}

// agentContext ends on SIGTERM or SIGINT.
func agentContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
}

// agentLogger writes JSON lines to stderr (the agent's log file); durations are written
// as Go durations ("1.5s"), not nanoseconds, so the log reads as it is.
func agentLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: readableDurations}))
}

func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// runAgent runs one agent until SIGTERM or SIGINT.
func runAgent[C any](run func(context.Context, C, *slog.Logger) error, cfg *C) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := agentContext(cmd.Context())
		defer cancel()
		return run(ctx, *cfg, agentLogger())
	}
}

func newAgentPod() *cobra.Command {
	var cfg agent.PodConfig
	var ports []string
	cmd := &cobra.Command{
		Use:  "pod",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range ports {
				ps, err := agent.ParsePortSpec(p)
				if err != nil {
					return err
				}
				cfg.Ports = append(cfg.Ports, ps)
			}
			// A graceful termination (apply, scale, rollout) marks the pod leaving before
			// its SIGTERM; any other SIGTERM (down, pod kill) ends the agent at once.
			cfg.Leaving = func() bool { return rundir.ForLab(cfg.Lab).IsLeaving(cfg.Pod) }
			killed := make(chan struct{})
			sigint := make(chan os.Signal, 1)
			signal.Notify(sigint, syscall.SIGINT)
			go func() { <-sigint; close(killed) }()
			cfg.Killed = killed
			return runAgent(agent.RunPod, &cfg)(cmd, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Lab, "lab", "", "lab name")
	f.StringVar(&cfg.Pod, "pod", "", "pod name")
	f.StringVar(&cfg.Node, "node", "", "node name")
	f.StringVar(&cfg.IP, "ip", "", "pod IP")
	f.StringArrayVar(&ports, "port", nil, "PORT/PROTO to serve (repeatable)")
	return cmd
}

// newAgentMain is `netlab agent <role>` for a role agent.Main runs (the netlab-agent
// binary's roles): its command line goes to agent.Main as it is, so both binaries take the
// same flags and behave the same.
func newAgentMain(role string) *cobra.Command {
	return &cobra.Command{
		Use:                role,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := agent.Main(append([]string{"agent", role}, args...), cmd.ErrOrStderr()); code != 0 {
				return agentExit{role, code}
			}
			return nil
		},
	}
}

// agentExit is an agent.Main that failed (it said why), with its exit code.
type agentExit struct {
	role string
	code int
}

func (e agentExit) Error() string { return fmt.Sprintf("agent %s exited with code %d", e.role, e.code) }
func (e agentExit) ExitCode() int { return e.code }

// dropPrivileges leaves an agent inside a lab namespace only the capabilities its role
// needs, with NoNewPrivs: the pod echo parses what clients send.
func dropPrivileges(cmd *cobra.Command) error {
	args := []string{"agent", cmd.Name()}
	if cmd.Name() == "pod" {
		ports, _ := cmd.Flags().GetStringArray("port")
		for _, p := range ports {
			args = append(args, "--port", p)
		}
	}
	keep, restrict := privs.ForAgent(args)
	if !restrict {
		return nil
	}
	var fds []int
	if fd, err := strconv.Atoi(os.Getenv(agent.ReadyFDEnv)); err == nil && fd >= 3 {
		fds = append(fds, fd)
	}
	if fd := ready.HoldFD(); fd >= 0 {
		fds = append(fds, fd)
	}
	if err := privs.Restrict(keep, ready.ExecEnv(os.Environ()), fds...); err != nil {
		return fmt.Errorf("agent %s: drop privileges: %w", cmd.Name(), err)
	}
	return nil
}
