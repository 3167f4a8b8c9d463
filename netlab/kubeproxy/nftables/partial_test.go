package nftables

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The Renderer gives what Render gives, through changes the caller makes in place, and
// hands unchanged ports' chains over as the same objects (so Diff skips them).
func TestRendererEqualsRender(t *testing.T) {
	r := NewRenderer(testNode)
	ports := overallPorts()
	steps := []func(){
		func() {},
		func() { ports[2].Endpoints[0].Ready = false }, // in place
		func() { ports[2].Endpoints = append(ports[2].Endpoints, ep("10.180.0.9", 80, "test-node")) },
		func() { ports = append(ports[:3], ports[4:]...) }, // svc3 goes
		func() {
			extra := ports[0]
			extra.PortName, extra.Port = "p443", 443 // a second port of the same Service
			ports = append(ports, extra)
		},
		func() {
			for i := range ports {
				if len(ports[i].LoadBalancerSourceRanges) > 0 {
					ports[i].LoadBalancerSourceRanges[0] = "198.51.100.0/24" // in place
				}
			}
		},
		func() { ports = ports[1:] }, // the first port of the two-port Service goes
		func() { ports = nil },
	}
	var prev *Ruleset
	for i, step := range steps {
		step()
		got, want := r.Render(ports), Render(testNode, ports)
		if d := cmp.Diff(Dump(want), Dump(got)); d != "" {
			t.Fatalf("step %d: Renderer differs from Render (-Render +Renderer):\n%s", i, d)
		}
		if prev != nil {
			if d := cmp.Diff(string(Diff(prev, want)), string(Diff(prev, got))); d != "" {
				t.Errorf("step %d: Diff differs (-from Render +from Renderer):\n%s", i, d)
			}
		}
		prev = got
	}
}

func TestRendererReusesUnchangedChains(t *testing.T) {
	r := NewRenderer(testNode)
	ports := overallPorts()
	first := r.Render(ports)
	ports[1].Endpoints = ports[1].Endpoints[:0] // svc5 loses its endpoint
	second := r.Render(ports)
	svc1 := ServiceChain("ns1", "svc1", "tcp", "p80")
	if first.Chains[svc1] != second.Chains[svc1] {
		t.Errorf("unchanged %s rendered again", svc1)
	}
	svc5 := ServiceChain("ns5", "svc5", "tcp", "p80")
	if second.Chains[svc5] != nil {
		t.Errorf("%s kept without endpoints", svc5)
	}
	if d := string(Diff(first, second)); !strings.Contains(d, "delete chain ip kube-proxy "+svc5+"\n") || strings.Contains(d, svc1) {
		t.Errorf("diff:\n%s", d)
	}
}
