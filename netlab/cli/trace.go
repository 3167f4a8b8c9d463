package cli

import (
	"encoding/json"
	"fmt"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newTrace(g *globals) *cobra.Command {
	var from, output string
	cmd := &cobra.Command{
		Use:   "trace [--name LAB] [--from CLIENT] URL",
		Short: "Send one request and show every hop it took: LB DNAT, ingress rule, kube-proxy DNAT, pod",
		Example: `  netlab trace http://app.example/api
  netlab trace https://app.example/
  netlab trace --from node-1 http://10.96.0.10/`,
		Args:    cobra.ExactArgs(1),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			tr, err := lab.TraceRequest(cmd.Context(), name, from, args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				return enc.Encode(tr)
			}
			fmt.Fprintf(g.out, "%s from %s: %d in %.1f ms\n", tr.URL, tr.From, tr.Status, float64(tr.Duration.Microseconds())/1000)
			for i, h := range tr.Hops {
				fmt.Fprintf(g.out, "\n%d. %-13s %s\n", i+1, h.Step, h.Summary)
				for _, d := range h.Details {
					fmt.Fprintf(g.out, "   %-13s %s\n", "", d)
				}
				if h.Watch != "" {
					fmt.Fprintf(g.out, "   %-13s watch: %s\n", "", h.Watch)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "object to send from (default: the first client)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
