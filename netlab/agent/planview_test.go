package agent

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netlabdev/netlab/netlab/dns"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// Each agent of this package reads only its view of the plan (rundir.KubeProxyPlan, ...):
// what it computes from the view equals what it computes from the whole plan, for every
// plan the scenarios and fixtures make, and for each again with a pod terminating.
func TestAgentsComputeFromTheirPlanViews(t *testing.T) {
	for name, b := range fixturePlanFiles(t) {
		var full plan.Plan
		if err := json.Unmarshal(b, &full); err != nil {
			t.Fatal(err)
		}
		view := func(v rundir.PlanView) *plan.Plan {
			p, err := v.Decode(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return p
		}
		same := func(role, what string, got, want any) {
			t.Helper()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s: %s differs from the whole plan's:\n got  %+v\n want %+v", name, role, what, got, want)
			}
		}
		// Some pods ready, some not: the endpoints' readiness is part of what is compared.
		ready := func(pod string) bool { return len(pod)%2 == 0 }

		kp := view(rundir.KubeProxyPlan)
		for _, n := range append(full.Nodes, plan.Node{Name: "no-such-node"}) {
			gn, gerr := kp.ProxyNode(n.Name)
			wn, werr := full.ProxyNode(n.Name)
			same("kube-proxy", "ProxyNode("+n.Name+")", gn, wn)
			same("kube-proxy", "ProxyNode("+n.Name+") error", errString(gerr), errString(werr))
		}
		same("kube-proxy", "ServicePorts(none ready)", kp.ServicePorts(func(string) bool { return false }), full.ServicePorts(func(string) bool { return false }))
		same("kube-proxy", "ServicePorts(all ready)", kp.ServicePorts(nil), full.ServicePorts(nil))
		same("kube-proxy", "mode", kp.KubeProxy.Mode, full.KubeProxy.Mode)
		same("kube-proxy", "NFTables", kp.NFTables(), full.NFTables())

		lbp := view(rundir.LBPlan)
		gv, gp, gerr := LBServices(lbp)
		wv, wp, werr := LBServices(&full)
		same("lb", "LBServices", []any{gv, gp, errString(gerr)}, []any{wv, wp, errString(werr)})
		same("lb", "WanFilterOf", WanFilterOf(lbp), WanFilterOf(&full))
		same("lb", "health check", lbp.LB.HealthCheck, full.LB.HealthCheck)
		same("lb", "VIPs", lbp.LB.VIPs, full.LB.VIPs)
		same("lb", "lab", lbp.Lab, full.Lab)

		dp := view(rundir.DNSPlan)
		same("dns", "FromPlan(no endpoints)", dns.FromPlan(dp, nil), dns.FromPlan(&full, nil))
		same("dns", "FromPlan", dns.FromPlan(dp, ready), dns.FromPlan(&full, ready))
		same("dns", "services", len(dp.Services), len(full.Services))

		cp := view(rundir.ControllerPlan)
		same("controller", "lab", cp.Lab, full.Lab)
		same("controller", "nodes", cp.Nodes, full.Nodes)
		same("controller", "pods", cp.Pods, full.Pods)
		same("controller", "ServicePorts", cp.ServicePorts(ready), full.ServicePorts(ready))
		same("controller", "routes", cp.Routes, full.Routes)
		same("controller", "neighbours", cp.Neighbors, full.Neighbors)
		same("controller", "fdb", cp.FDB, full.FDB)
	}
}

// fixturePlanFiles returns the plan file of every scenario and fixture that plans, and of
// each again with its first pod terminating.
func fixturePlanFiles(t *testing.T) map[string][]byte {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../../scenarios/*.yaml", "../../testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	out := map[string][]byte{}
	for _, f := range files {
		s, err := scenario.Load([]string{f})
		if err != nil || scenario.Validate(s) != nil {
			continue // a fixture of bad input
		}
		p, err := planbuild.Build(s, "")
		if err != nil {
			continue
		}
		for _, leaving := range []bool{false, true} {
			if leaving {
				if len(p.Pods) == 0 {
					continue
				}
				p.Pods[0].Terminating = true
				f += " (a pod terminating)"
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d plans", len(out))
	}
	return out
}
