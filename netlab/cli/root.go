package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

// globals are the flags every command has.
type globals struct {
	verbose bool
	name    string
	out     io.Writer
	errOut  io.Writer
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.errOut, &slog.HandlerOptions{Level: level}))
}

// labName resolves --name, or the only lab that is up.
func (g *globals) labName() (string, error) { return lab.Resolve(g.name) }

// errNotRoot is printed as the one line a non-root user sees.
var errNotRoot = errors.New("this command needs root: run it with sudo")

func needRoot(*cobra.Command, []string) error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	return nil
}

// New returns the root command.
func New(out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:   "netlab",
		Short: "The Kubernetes north-south data path on one Linux host, from real kernel parts",
		Long: `netlab builds a client, an external L4 load balancer, worker nodes with an ingress
each, pods and kube-proxy's iptables rules out of network namespaces, veths and
bridges, so a request can be followed packet by packet:

  client -> LB VIP -> node ingress (L7) -> Service (kube-proxy) -> pod on any node`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what happens, step by step")
	root.AddCommand(
		newUp(g), newDown(g), newStatus(g), newExec(g), newPlan(g), newLogs(g), newPod(g), newAgent(g),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(g))
	}
	return root
}

// extraCommands lets verbs in other files of this package register themselves.
var extraCommands []func(*globals) *cobra.Command

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string) int {
	root := New(os.Stdout, os.Stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "netlab: "+err.Error())
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}
