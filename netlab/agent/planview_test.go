package agent

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/dns"
	"github.com/netlabdev/netlab/netlab/internal/planviewtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// Each agent of this package reads only its view of the plan (rundir.KubeProxyPlan, ...):
// what it computes from the view equals what it computes from the whole plan, for every
// plan the scenarios and fixtures make (and variants), and each part of each view counts.
func TestAgentsComputeFromTheirPlanViews(t *testing.T) {
	// Some pods ready, some not: the endpoints' readiness is part of what is compared.
	ready := func(pod string) bool { return len(pod)%2 == 0 }
	none := func(string) bool { return false }
	planviewtest.Check(t, map[string]planviewtest.Role{
		"kube-proxy": {View: rundir.KubeProxyPlan, Compute: func(p, full *plan.Plan) []any {
			out := []any{p.Lab, p.KubeProxy.Mode, p.NFTables(), p.ServicePorts(none), p.ServicePorts(nil)}
			for _, n := range append(full.Nodes, plan.Node{Name: "no-such-node"}) {
				pn, err := p.ProxyNode(n.Name)
				out = append(out, pn, errString(err))
			}
			return out
		}},
		"lb": {View: rundir.LBPlan, Compute: func(p, _ *plan.Plan) []any {
			vss, probes, err := LBServices(p)
			return []any{p.Lab, vss, probes, errString(err), WanFilterOf(p), p.LB.HealthCheck, p.LB.VIPs}
		}},
		"dns": {View: rundir.DNSPlan, Compute: func(p, _ *plan.Plan) []any {
			return []any{dns.FromPlan(p, nil), dns.FromPlan(p, ready), len(p.Services)}
		}},
		"controller": {View: rundir.ControllerPlan, Compute: func(p, _ *plan.Plan) []any {
			return []any{p.Lab, p.Nodes, p.Pods, p.ServicePorts(ready), p.Routes, p.Neighbors, p.FDB}
		}},
	})
}
