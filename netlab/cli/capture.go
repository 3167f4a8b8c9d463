package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netlabdev/netlab/netlab/capture"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
)

func newCapture(g *globals) *cobra.Command {
	var iface, write string
	var count int
	cmd := &cobra.Command{
		Use:   "capture [--name LAB] TARGET [-i IF] [-w FILE|-] [-c N] [-- FILTER...]",
		Short: "Capture packets inside a lab object's namespace (client, lb, node-1, a pod, wan, fabric)",
		Long: `Capture packets inside a lab object's namespace, on every interface of it (or one
with -i), through a packet socket opened in that namespace. FILTER is a tcpdump
expression, compiled to a kernel filter. -w writes pcapng with one interface block per
interface, named <object>/<ifname>; -w - writes it to stdout.`,
		Example: `  netlab capture node-1                       # every interface of node-1
  netlab capture node-1 -i eth0 -- port 80    # the fabric side, HTTP only
  netlab capture lb -w lb.pcapng              # for Wireshark
  netlab capture node-1 -w - | wireshark -k -i -`,
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
			filter := args[1:] // after --, or words after TARGET
			prog, err := capture.CompileExpr(cmd.Context(), filter)
			if err != nil {
				return err
			}
			t := capture.Target{Object: args[0], Netns: ns}
			if iface != "" && iface != "any" {
				t.Ifaces = []string{iface}
			}
			return runCapture(cmd.Context(), g, t, prog, write, count)
		},
	}
	cmd.Flags().StringVarP(&iface, "interface", "i", "", "one interface inside the namespace (default: all but lo)")
	cmd.Flags().StringVarP(&write, "write", "w", "", "write pcapng to FILE, or to stdout with -")
	cmd.Flags().IntVarP(&count, "count", "c", 0, "stop after this many packets")
	return cmd
}

func runCapture(ctx context.Context, g *globals, t capture.Target, prog []capture.RawFilter, write string, count int) error {
	s, err := capture.Start([]capture.Target{t}, prog)
	if err != nil {
		return err
	}
	defer s.Close()
	var pw *capture.Writer
	if write != "" {
		var w io.Writer = g.out
		if write != "-" {
			f, err := os.Create(write)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		if pw, err = capture.NewWriter(w, s.Ifaces(), write == "-"); err != nil {
			return err
		}
		defer pw.Close()
	}
	names := []string{}
	for _, i := range s.Ifaces() {
		names = append(names, i.Name)
	}
	fmt.Fprintf(g.errOut, "capturing in %s on %s (Ctrl-C stops)\n", t.Netns, strings.Join(names, ", "))
	n := 0
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(g.errOut, "%d packets captured\n", n)
			return nil
		case p, ok := <-s.C:
			if !ok {
				return errors.New("capture stopped")
			}
			n++
			if pw != nil {
				if err := pw.Write(p, s.Ifaces()); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(g.out, capture.Line(p, s.Ifaces()))
			}
			if count > 0 && n >= count {
				if write != "-" {
					fmt.Fprintf(g.errOut, "%d packets captured\n", n)
				}
				return nil
			}
		}
	}
}
