package planbuild

import (
	"slices"
	"testing"

	"github.com/netlabdev/netlab/netlab/internal/iptablestest"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
)

func TestNodeRulesOfTheDefaultLab(t *testing.T) {
	p := mustPlan(t, "", "")
	ports := p.ServicePorts(nil)
	if len(ports) == 0 {
		t.Fatal("default lab has no service ports")
	}
	for _, n := range p.Nodes {
		rules, err := p.NodeRules(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		k := iptablestest.NewKernel()
		for _, j := range kubeproxy.JumpRules() {
			if err := k.Insert(j.Table, j.Chain, 1, j.Args); err != nil {
				t.Fatal(err)
			}
		}
		if err := k.Restore(rules); err != nil {
			t.Fatalf("%s: rules do not load: %v", n.Name, err)
		}
		node, _ := p.ProxyNode(n.Name)
		// Every Service port reaches exactly its pods' addresses from a pod of this node.
		for _, sp := range ports {
			var want []string
			for _, ep := range sp.Endpoints {
				want = append(want, ep.String())
			}
			slices.Sort(want)
			tr, err := iptablestest.NewTracer(k, node.IP, plan.Addr(n.Gateway)) // fresh xt_recent lists
			if err != nil {
				t.Fatal(err)
			}
			outs, err := tr.Trace(iptablestest.Packet{Src: plan.Addr(n.Gateway), Dst: sp.ClusterIP, DPort: int(sp.Port), Proto: sp.Protocol})
			if err != nil {
				t.Fatal(err)
			}
			if got := iptablestest.Targets(outs); !slices.Equal(got, want) {
				t.Errorf("%s: %s reaches %v, want %v", n.Name, sp.ServicePortName(), got, want)
			}
		}
	}
	if _, err := p.NodeRules("nope"); err == nil {
		t.Error("NodeRules of an unknown node succeeded")
	}
}

func TestServicePortsReadiness(t *testing.T) {
	p := mustPlan(t, "", "")
	if len(p.Pods) == 0 {
		t.Fatal("no pods")
	}
	down := p.Pods[0].Name
	n := 0
	for _, sp := range p.ServicePorts(func(pod string) bool { return pod != down }) {
		for _, ep := range sp.Endpoints {
			if ep.Ready == (ep.Pod == down) {
				t.Errorf("%s endpoint of %s: ready %v", sp.ServicePortName(), ep.Pod, ep.Ready)
			}
			n++
		}
	}
	if n == 0 {
		t.Error("no endpoints at all")
	}
}

func TestKubeProxyProcesses(t *testing.T) {
	p := mustPlan(t, "", "")
	roles := map[string]int{}
	for _, pr := range p.Processes {
		roles[pr.Role]++
		if pr.Role == "kube-proxy" && pr.Netns == "" {
			t.Errorf("kube-proxy %s runs in the root namespace", pr.Name)
		}
	}
	if roles["kube-proxy"] != len(p.Nodes) || roles["controller"] != 1 {
		t.Errorf("processes by role %v: want one kube-proxy per node (%d) and one controller", roles, len(p.Nodes))
	}
}
