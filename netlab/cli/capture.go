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

func newCapture(g *globals) *cobra.Command {
	var iface, write string
	var count int
	cmd := &cobra.Command{
		Use:   "capture [--name LAB] TARGET [-i IFACE] [-w FILE] [-- FILTER...]",
		Short: "tcpdump inside a lab object's namespace (client, lb, node-1, a pod, wan, fabric)",
		Example: `  netlab capture node-1                       # every interface of node-1
  netlab capture node-1 -i eth0 -- port 80    # the fabric side, HTTP only
  netlab capture lb -w lb.pcap                # for Wireshark`,
		Args:    cobra.MinimumNArgs(1),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			ns := plan.NetnsName(name, args[0])
			if !kernel.NetnsExists(ns) {
				return fmt.Errorf("lab %s has no object %q (namespace %s not found)", name, args[0], ns)
			}
			td, err := exec.LookPath("tcpdump")
			if err != nil {
				return fmt.Errorf("tcpdump is not installed (scripts/deps.sh installs it): %w", err)
			}
			ip, err := exec.LookPath("ip")
			if err != nil {
				return err
			}
			argv := []string{"ip", "netns", "exec", ns, td, "-ni", iface, "-l"}
			if write != "" {
				argv = append(argv, "-w", write)
			}
			if count > 0 {
				argv = append(argv, "-c", fmt.Sprint(count))
			}
			filter := args[1:]
			if len(filter) > 0 && filter[0] == "--" {
				filter = filter[1:]
			}
			argv = append(argv, filter...)
			fmt.Fprintf(g.errOut, "capturing in %s on %s (Ctrl-C stops)\n", ns, iface)
			return syscall.Exec(ip, argv, os.Environ())
		},
	}
	cmd.Flags().StringVarP(&iface, "interface", "i", "any", "interface inside the namespace")
	cmd.Flags().StringVarP(&write, "write", "w", "", "write packets to a pcap file instead of printing them")
	cmd.Flags().IntVarP(&count, "count", "c", 0, "stop after this many packets")
	cmd.Flags().SetInterspersed(false)
	return cmd
}
