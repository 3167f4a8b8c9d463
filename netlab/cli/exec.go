package cli

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
)

func newExec(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec [--name LAB] TARGET -- CMD [ARGS...]",
		Short: "Run a command inside a lab object's namespace (client, lb, node-1, a pod name, wan, fabric)",
		Example: `  netlab exec client -- curl -s http://app.example/
  netlab exec node-1 -- tcpdump -ni eth0
  netlab exec web-1 -- curl -s http://10.244.2.3:8080/`,
		Args:    cobra.MinimumNArgs(2),
		PreRunE: needRoot,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveDefault // the command: files, as the shell does
			}
			return completeObjects(g, "any")(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// With interspersed flags off, cobra may hand "--" through as an argument.
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1], args[2:]...)
			}
			if len(args) < 2 {
				return usagef("usage: netlab exec [--name LAB] TARGET -- CMD [ARGS...]")
			}
			name, err := g.labName()
			if err != nil {
				return err
			}
			ns := plan.NetnsName(name, args[0])
			if !kernel.NetnsExists(ns) {
				return fmt.Errorf("lab %s has no object %q (namespace %s not found)", name, args[0], ns)
			}
			ip, err := exec.LookPath("ip")
			if err != nil {
				return fmt.Errorf("find ip: %w", err)
			}
			// `ip netns exec` also mounts /etc/netns/<ns>/hosts, so Ingress hosts resolve.
			argv := append([]string{"ip", "netns", "exec", ns}, args[1:]...)
			return syscall.Exec(ip, argv, os.Environ())
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}
