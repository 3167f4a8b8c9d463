package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() {
	agentRoles = append(agentRoles, newAgentLB)
	extraCommands = append(extraCommands, newLB)
}

// lbStatePath is where a lab's lb agent publishes its state.
func lbStatePath(name string) string { return rundir.ForLab(name).LBState() }

func newAgentLB(g *globals) *cobra.Command {
	var name, state string
	cmd := &cobra.Command{
		Use:  "lb",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := rundir.ForLab(name).ReadPlan()
			if err != nil {
				return err
			}
			if state == "" {
				state = lbStatePath(name)
			}
			ctx, cancel := agentContext(cmd.Context())
			defer cancel()
			return agent.RunLB(ctx, agent.LBConfig{Plan: p, StatePath: state}, agentLogger())
		},
	}
	cmd.Flags().StringVar(&name, "lab", "", "lab name")
	cmd.Flags().StringVar(&state, "state", "", "state file (default: the lab's runtime directory)")
	return cmd
}

func newLB(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "lb [--name LAB] [-o table|json]",
		Short: "Show the load balancer's virtual services and real servers, like ipvsadm -Ln --stats",
		Long: `Show every virtual service of the external load balancer: its scheduler and, for each
real server (a node), its weight, health (from the lb agent's checks), active and
inactive connections (from the LB's conntrack table), and connections, packets and bytes
(from the LB's rule counters).`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := g.labName()
			if err != nil {
				return err
			}
			r, err := lbReport(name)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			case "table", "":
				return r.WriteTable(g.out)
			default:
				return fmt.Errorf("unknown output %q (table or json)", output)
			}
		},
	}
	cmd.Flags().StringVar(&g.name, "name", "", "lab name (default: the only lab that is up)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// lbReport gathers the agent's state, the LB namespace's counters and conntrack table.
func lbReport(name string) (lb.Report, error) {
	p, err := lab.LoadPlan(name)
	if err != nil {
		return lb.Report{}, err
	}
	st, err := rundir.ReadLBStateFile(lbStatePath(name))
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
	parsed, err := lb.ParseSave(saved)
	if err != nil {
		return lb.Report{}, err
	}
	flows, err := lbFlows(p.LB.Netns)
	if err != nil {
		return lb.Report{}, err
	}
	r := lb.BuildReport(name, p.LB.Netns, st, lb.Stats(st.Services, parsed), lb.CountConns(st.Services, flows))
	if !st.Updated.IsZero() && time.Since(st.Updated) > 10*time.Second {
		fmt.Fprintf(os.Stderr, "warning: the lb agent last published its state %s ago; health may be stale\n", time.Since(st.Updated).Round(time.Second))
	}
	return r, nil
}

// lbFlows lists the LB namespace's TCP and UDP conntrack entries.
func lbFlows(ns string) ([]lb.Flow, error) {
	h := kernel.NewHandles()
	defer h.Close()
	flows, err := h.Flows(ns)
	if err != nil {
		return nil, fmt.Errorf("read the LB's conntrack table: %w", err)
	}
	return toLBFlows(flows), nil
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
