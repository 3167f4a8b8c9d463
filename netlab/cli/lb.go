package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newLB(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lb [--name LAB] [-o table|wide|json|yaml]",
		Short: "Show the load balancer's virtual services and real servers, like ipvsadm -Ln --stats",
		Long: `Show every virtual service of the external load balancer: its scheduler and, for each
real server (a node), its weight, health (from the lb agent's checks), active and
inactive connections (from the LB's conntrack table), and connections, packets and bytes
(from the LB's rule counters). -o wide adds each real server's last check and error.`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		name, err := g.labName()
		if err != nil {
			return err
		}
		r, err := lbReport(g, name)
		if err != nil {
			return err
		}
		return o.print(g.out, r, func(w io.Writer, wide bool) error {
			if err := r.WriteTable(w); err != nil || !wide {
				return err
			}
			return writeLBChecks(w, r)
		})
	}
	return cmd
}

// writeLBChecks lists each real server's health check and last error (-o wide).
func writeLBChecks(out io.Writer, r lb.Report) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nREAL SERVER\tCHECK\tLAST ERROR\n")
	for _, s := range r.Services {
		for _, b := range s.Backends {
			e := b.Err
			if e == "" {
				e = "-"
			}
			fmt.Fprintf(w, "%s:%d (%s)\t%s\t%s\n", b.IP, b.Port, b.Node, b.Check, e)
		}
	}
	return w.Flush()
}

// lbReport gathers the agent's state, the LB namespace's counters and conntrack table;
// lb.NewReport puts them together.
func lbReport(g *globals, name string) (lb.Report, error) {
	p, err := lab.LoadPlan(name)
	if err != nil {
		return lb.Report{}, err
	}
	st, err := rundir.ForLab(name).ReadLBState()
	if errors.Is(err, os.ErrNotExist) {
		// No agent state (yet): show the plan's services with unknown (down) health.
		vss, _, perr := agent.LBServices(p)
		if perr != nil {
			return lb.Report{}, perr
		}
		st, err = &lb.State{Services: vss, Inhibit: p.LB.HealthCheck.Inhibit}, nil
	}
	if err != nil {
		return lb.Report{}, err
	}
	saved, err := kernel.Save(p.LB.Netns, true, "")
	if err != nil {
		return lb.Report{}, fmt.Errorf("read the LB's counters: %w", err)
	}
	h := kernel.NewHandles()
	defer h.Close()
	flows, err := h.Flows(p.LB.Netns)
	if err != nil {
		return lb.Report{}, fmt.Errorf("read the LB's conntrack table: %w", err)
	}
	if !st.Updated.IsZero() && time.Since(st.Updated) > 10*time.Second {
		fmt.Fprintf(g.errOut, "warning: the lb agent last published its state %s ago; health may be stale\n", time.Since(st.Updated).Round(time.Second))
	}
	return lb.NewReport(name, p.LB.Netns, st, saved, toLBFlows(flows))
}

// toLBFlows keeps the part of each TCP or UDP flow the report counts.
func toLBFlows(flows []kernel.Flow) []lb.Flow {
	var out []lb.Flow
	for _, f := range flows {
		proto := ""
		switch f.Proto {
		case unix.IPPROTO_TCP:
			proto = lb.ProtoTCP
		case unix.IPPROTO_UDP:
			proto = lb.ProtoUDP
		default:
			continue
		}
		if !f.OrigDst.IsValid() || !f.ReplySrc.IsValid() {
			continue
		}
		out = append(out, lb.Flow{Proto: proto, OrigDst: f.OrigDst, ReplySrc: f.ReplySrc, Established: f.Established})
	}
	return out
}
