package planbuild

import (
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
)

const localPolicyServices = `---
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{name: http, port: 81, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{name: http, port: 82, targetPort: 8080}]
`

// The API server allocates a healthCheckNodePort to a LoadBalancer Service with the Local
// external policy only, not to a NodePort one (kube-proxy then serves and accepts none).
func TestHealthCheckNodePortOnlyForLoadBalancers(t *testing.T) {
	p := mustPlan(t, liveLab+liveWeb+localPolicyServices, "t")
	hc := map[string]int32{}
	for _, s := range p.Services {
		hc[s.Name] = s.HealthCheckNodePort
	}
	if hc["np"] != 0 {
		t.Errorf("NodePort Service with ETP Local got healthCheckNodePort %d", hc["np"])
	}
	if hc["lb"] == 0 {
		t.Error("LoadBalancer Service with ETP Local got no healthCheckNodePort")
	}
}

// route_localnet (NodePorts on 127.0.0.1) is set on nodes in kube-proxy's iptables mode
// only, as kube-proxy does: its nftables mode never sets it.
func TestRouteLocalnetOnlyInIPTablesMode(t *testing.T) {
	localnet := func(p *plan.Plan) int {
		n := 0
		for _, s := range p.Sysctls {
			if s.Key == "net.ipv4.conf.all.route_localnet" && s.Value == "1" {
				n++
			}
		}
		return n
	}
	ipt := mustPlan(t, liveBase(), "t")
	if got := localnet(ipt); got != len(ipt.Nodes) {
		t.Errorf("iptables mode: route_localnet on %d nodes, want %d", got, len(ipt.Nodes))
	}
	nftLab := strings.Replace(liveLab, "  loadBalancer:", "  kubeProxy: {mode: nftables}\n  loadBalancer:", 1)
	nft := mustPlan(t, nftLab+liveWeb+liveServices, "t")
	if !nft.NFTables() {
		t.Fatal("the lab is not in nftables mode")
	}
	if got := localnet(nft); got != 0 {
		t.Errorf("nftables mode: route_localnet on %d nodes, want none", got)
	}
}
