package agent

import (
	"os"
	"strconv"
	"testing"

	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// A UDP virtual service's real servers are probed on something that answers a TCP
// connect (the node's ingress metrics port), never on the UDP NodePort itself, which a TCP
// connect always finds closed.
func TestLBServicesUDPProbe(t *testing.T) {
	b, err := os.ReadFile("../../scenarios/udp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := scenario.Parse("udp.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	if err := scenario.Validate(s); err != nil {
		t.Fatal(err)
	}
	p, err := planbuild.Build(s, "udp")
	if err != nil {
		t.Fatal(err)
	}
	vss, probes, err := LBServices(p)
	if err != nil {
		t.Fatal(err)
	}
	udp := 0
	for _, pr := range probes {
		vs := vss[pr.Service]
		if vs.Protocol != "UDP" {
			continue
		}
		udp++
		want := vs.Backends[pr.Backend].IP + ":" + strconv.Itoa(p.Ingress.MetricsPort)
		if pr.Probe.Addr != want || pr.Probe.Type != "tcp" {
			t.Errorf("%s real server %s: probe %+v, want tcp %s", vs.Name, vs.Backends[pr.Backend].Name, pr.Probe, want)
		}
	}
	if udp == 0 {
		t.Fatal("no UDP virtual service in scenarios/udp.yaml")
	}
}
