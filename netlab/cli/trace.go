package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newTrace(g *globals) *cobra.Command {
	var from, output, method, pcap string
	var headers []string
	cmd := &cobra.Command{
		Use:   "trace [--name LAB] [--from OBJ] [-H 'K: V']... [-X METHOD] [-o table|json] [--pcap FILE] URL",
		Short: "Send one request and show every hop and every packet of it: LB DNAT, ingress rule, kube-proxy DNAT, pod; or where it died",
		Long: `Send one request from a lab object (the first client by default) and follow it: the
packets it made on every lab interface, with their addresses as rewritten at that point,
the LB's and kube-proxy's NAT from conntrack, the ingress rule that matched and the pod
that answered. URL is http(s)://host[:port]/path, or tcp://IP:PORT or udp://IP:PORT for
an L4-only path. A request that fails exits 1 and ends with where it died and why.`,
		Example: `  netlab trace http://app.example/api
  netlab trace https://app.example/
  netlab trace --from web-1 http://api/
  netlab trace tcp://203.0.113.101:8000
  netlab trace -o json --pcap trace.pcapng http://app.example/`,
		Args:    cobra.ExactArgs(1),
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown output %q (table or json)", output)
			}
			h := http.Header{}
			var bad []string
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, ":")
				if !ok || strings.TrimSpace(k) == "" {
					bad = append(bad, fmt.Sprintf("-H %q: want 'Name: value'", kv))
					continue
				}
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			if len(bad) > 0 {
				return errors.New(strings.Join(bad, "; "))
			}
			name, err := g.labName()
			if err != nil {
				return err
			}
			o := lab.TraceOptions{From: from, URL: args[0], Method: method, Headers: h, Packets: true}
			var pf *os.File
			if pcap != "" {
				if pf, err = os.Create(pcap); err != nil {
					return err
				}
				defer pf.Close()
				o.Pcap = pf
			}
			tr, err := lab.TraceWith(cmd.Context(), name, o)
			var failed *lab.RequestFailedError
			if err != nil && (tr == nil || !errors.As(err, &failed)) {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(tr); err != nil {
					return err
				}
			} else {
				printTrace(g.out, tr)
			}
			if pcap != "" {
				fmt.Fprintf(g.errOut, "packets written to %s\n", pcap)
			}
			return err // a failed request: exit 1, after the trace that says where it died
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "object to send from: a client, pod or node (default: the first client)")
	cmd.Flags().StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	cmd.Flags().StringVarP(&method, "request", "X", "", "HTTP method (default GET)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&pcap, "pcap", "", "also write the request's packets to this pcapng file")
	return cmd
}

func printTrace(w io.Writer, tr *lab.Trace) {
	if tr.Failed() {
		fmt.Fprintf(w, "%s from %s: FAILED after %.1f ms: %s\n", tr.URL, tr.From, float64(tr.Duration.Microseconds())/1000, tr.Error)
	} else if tr.Status != 0 {
		fmt.Fprintf(w, "%s from %s: %d in %.1f ms\n", tr.URL, tr.From, tr.Status, float64(tr.Duration.Microseconds())/1000)
	} else {
		fmt.Fprintf(w, "%s from %s: answered in %.1f ms\n", tr.URL, tr.From, float64(tr.Duration.Microseconds())/1000)
	}
	for _, h := range tr.Hops {
		fmt.Fprintf(w, "\n%d. %-13s %s\n", h.Step, h.Component, h.Summary)
		for _, d := range h.Details {
			fmt.Fprintf(w, "   %-13s %s\n", "", d)
		}
		for i, r := range h.Rules {
			if i == 0 || r.Packet != h.Rules[i-1].Packet {
				fmt.Fprintf(w, "   %-13s rules that acted on %s:\n", "", r.Packet)
			}
			fmt.Fprintf(w, "   %-13s   %s\n", "", r)
		}
		for _, p := range h.Packets {
			flags := p.Flags
			if p.Proto == "tcp" || p.Proto == "udp" {
				flags = strings.TrimSpace(fmt.Sprintf("%s len %d", flags, p.Len))
			}
			line := fmt.Sprintf("%8.3f ms  %-16s %-3s %s > %s %s %s", p.Time, p.Interface, p.Direction, p.Src, p.Dst, p.Proto, flags)
			if p.Encap != "" {
				line += " [" + p.Encap + "]"
			}
			fmt.Fprintf(w, "   %-13s %s\n", "", line)
		}
		if h.Watch != "" {
			fmt.Fprintf(w, "   %-13s watch: %s\n", "", h.Watch)
		}
	}
	for _, n := range tr.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
	if d := tr.Drop; d != nil {
		fmt.Fprintf(w, "\nDROPPED at %s", d.Object)
		if d.Interface != "" {
			fmt.Fprintf(w, " (%s)", d.Interface)
		}
		fmt.Fprintf(w, " in %s: %s\n", d.Namespace, d.Reason)
		if d.Rule != "" {
			fmt.Fprintf(w, "   rule: %s\n", d.Rule)
		}
		if d.Detail != "" {
			fmt.Fprintf(w, "   %s\n", d.Detail)
		}
	}
}
