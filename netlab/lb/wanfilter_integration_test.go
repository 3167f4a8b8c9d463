package lb_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
)

func reach(ns, addr string) error {
	c, err := kernel.DialIn(ns, "tcp", addr, 700*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}

// Clients stand for the internet: through the LB they reach the VIPs and, by default, the
// nodes' ingress ports and NodePorts — never the ingress's metrics and health port, the
// healthCheckNodePorts or a pod. exposeNodes: false leaves them only the VIPs. The LB's
// own checks still reach what they check.
func TestIntegrationClientReachesOnlyWhatIsExposed(t *testing.T) {
	labtest.RequireRoot(t)
	for _, expose := range []bool{true, false} {
		t.Run(fmt.Sprintf("exposeNodes=%v", expose), func(t *testing.T) {
			p := labtest.UpWith(t, "healwan", labtest.Fixture(t, "wan-etp-local.yaml"), func(s *scenario.Scenario) {
				s.Lab.Spec.LoadBalancer.ExposeNodes = &expose
			})
			client := p.Clients[0].Netns
			node := plan.Addr(p.Nodes[0].IP)
			var nodePort, hcPort int32
			var lbIP string
			for _, s := range p.Services {
				if s.Name == "web" {
					nodePort, hcPort, lbIP = s.Ports[0].NodePort, s.HealthCheckNodePort, s.LoadBalancerIP
				}
			}
			if nodePort == 0 || hcPort == 0 || lbIP == "" {
				t.Fatalf("plan: nodePort %d healthCheckNodePort %d VIP %q", nodePort, hcPort, lbIP)
			}
			open := map[string]bool{
				net.JoinHostPort(p.LB.VIP, "80"):                    true,
				net.JoinHostPort(lbIP, "80"):                        true,
				net.JoinHostPort(node, "80"):                        expose,
				net.JoinHostPort(node, "443"):                       expose,
				net.JoinHostPort(node, strconv.Itoa(int(nodePort))): expose,
				net.JoinHostPort(node, "10254"):                     false,
				net.JoinHostPort(node, strconv.Itoa(int(hcPort))):   false,
				net.JoinHostPort(plan.Addr(p.Pods[0].IP), "8080"):   false,
			}
			for addr, want := range open {
				err := reach(client, addr)
				if want && err != nil {
					t.Errorf("client cannot reach %s: %v", addr, err)
				}
				if !want && err == nil {
					t.Errorf("client reaches %s", addr)
				}
			}
			// What the client may not reach still answers the LB, which checks it.
			for _, addr := range []string{net.JoinHostPort(node, "10254"), net.JoinHostPort(node, strconv.Itoa(int(hcPort)))} {
				if err := reach(p.LB.Netns, addr); err != nil {
					t.Errorf("the LB cannot reach %s: %v", addr, err)
				}
			}
		})
	}
}
