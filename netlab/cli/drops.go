package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newDrops(g *globals) *cobra.Command {
	var follow, all bool
	var output string
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "drops [--name LAB] [--follow] [-o table|json]",
		Short: "Packets the kernel drops inside this lab, with the kernel's reason (eBPF on kfree_skb)",
		Long: `Packets the kernel drops inside this lab's namespaces (and no other lab's), one per
line: time, object, interface, reason, source → destination and protocol. The reason is
the kernel's own (NO_SOCKET, NETFILTER_DROP, IP_NOROUTE, ...), read by an eBPF program
on the kfree_skb tracepoint that only passes this lab's namespaces. Without --follow it
watches for --for (default 3s) and exits; with --follow until Ctrl-C. -o json writes one
JSON object per line.`,
		Example: `  netlab drops --follow
  netlab drops -o json --for 10s`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown output %q (table or json)", output)
			}
			name, err := g.labName()
			if err != nil {
				return err
			}
			w, err := lab.WatchDrops(name)
			if err != nil {
				return err
			}
			defer w.Close()
			w.All = all
			// Ctrl-C or SIGTERM (the context's end) closes the watcher, which ends a Next
			// waiting for a drop; the deferred Close then returns at once.
			ctx := cmd.Context()
			stopAfter := context.AfterFunc(ctx, func() { w.Close() })
			defer stopAfter()
			if !follow {
				w.SetDeadline(time.Now().Add(window))
			}
			fmt.Fprintf(g.errOut, "watching drops in lab %s (%s)\n", name, map[bool]string{true: "Ctrl-C stops", false: "for " + window.String()}[follow])
			enc := json.NewEncoder(g.out)
			for {
				d, err := w.Next()
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
						return nil
					}
					return err
				}
				if output == "json" {
					if err := enc.Encode(d); err != nil {
						return err
					}
					continue
				}
				iface := d.Interface
				if iface == "" {
					iface = d.Object + "/-"
				}
				what := fmt.Sprintf("%s → %s %s", orDash(d.Src), orDash(d.Dst), d.Proto)
				if d.ICMP != "" {
					what += " " + d.ICMP
				}
				fmt.Fprintf(g.out, "%s %-10s %-16s %-22s %s\n", d.Time.Format("15:04:05.000000"), d.Object, iface, d.Reason, what)
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep watching until Ctrl-C")
	cmd.Flags().DurationVar(&window, "for", 3*time.Second, "how long to watch without --follow")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().BoolVar(&all, "all", false, "also show QUEUE_PURGE (a socket closed with data still queued)")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
