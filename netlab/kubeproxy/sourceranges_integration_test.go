package kubeproxy_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// scenarios/nftables.yaml, whole (LB, ingress, DNS): the api LoadBalancer Service admits
// only 203.0.113.0/25. client (.10) reaches it through the LB and keeps its address
// (externalTrafficPolicy Local); blocked (.200) is dropped by the LB's virtual service; the
// lab's own checks pass, the nftables table among them.
func TestIntegrationLoadBalancerSourceRangesNFTables(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "kpsr", labtest.Lesson(t, "nftables.yaml"))
	api := service(t, p, "api")
	var client, blocked string
	for _, c := range p.Clients {
		switch c.Name {
		case "client":
			client = c.Netns
		case "blocked":
			blocked = c.Netns
		}
	}
	vip := url(api.LoadBalancerIP, 80)
	var e labtest.Echo
	var err error
	deadline := time.Now().Add(30 * time.Second) // the LB's health checks mark the api node up (a bound on a hang)
	for {
		e, _, err = labtest.GetEcho(client, vip)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		st, _ := os.ReadFile(rundir.ForLab(p.Lab).LBState())
		t.Fatalf("client to %s, for 30 s: %v\nthe LB's state: %s", vip, err, st)
	}
	if e.ClientIP != "203.0.113.10" {
		t.Errorf("api saw client %s, want 203.0.113.10 (externalTrafficPolicy Local)", e.ClientIP)
	}
	c, err := kernel.DialIn(blocked, "tcp", net.JoinHostPort(api.LoadBalancerIP, "80"), time.Second)
	if err == nil {
		c.Close()
		t.Errorf("blocked (outside loadBalancerSourceRanges) connected to %s", api.LoadBalancerIP)
	}
	out, err := labtest.CLI(t, "check", "--name", p.Lab)
	if err != nil || !strings.Contains(out, "kube-proxy nftables table") {
		t.Errorf("netlab check: %v\n%s", err, out)
	}
}
