package nftables

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// Internal and external traffic policies both Local: the Service still has its Cluster
// policy chain, and the external chain short-circuits pods and the node to it, as
// kube-proxy writes it (UsesClusterEndpoints is true for every externally reachable port).
func TestBothPoliciesLocal(t *testing.T) {
	node := kubeproxy.Node{Name: "node-1", IP: "192.168.0.2", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/16"}
	both := kubeproxy.ServicePort{Namespace: "default", Name: "both", Protocol: "TCP", ClusterIP: "10.96.0.70", Port: 80,
		NodePort: 30070, LoadBalancerIPs: []string{"198.51.100.70"}, InternalLocal: true, ExternalLocal: true,
		Endpoints: []kubeproxy.Endpoint{ep("10.244.1.70", 80, "node-1"), ep("10.244.2.70", 80, "node-2")}}
	rs := Render(node, []kubeproxy.ServicePort{both})
	ext := rs.Chains[ExternalChain("default", "both", "tcp", "")]
	if ext == nil || len(ext.Rules) != 4 {
		t.Fatalf("external chain: %+v, want the three short-circuit rules and the goto local", ext)
	}
	all := []string{"10.244.1.70:80", "10.244.2.70:80"}
	runFlows(t, rs, []flow{
		{name: "client to the LB address keeps to local endpoints", src: "203.0.113.2", dst: "198.51.100.70", port: 80,
			want: []string{"10.244.1.70:80"}},
		{name: "client to the NodePort", src: "203.0.113.2", dst: "192.168.0.2", port: 30070, want: []string{"10.244.1.70:80"}},
		{name: "pod to the ClusterIP keeps to local endpoints", src: "10.244.1.5", dst: "10.96.0.70", port: 80,
			want: []string{"10.244.1.70:80"}},
		{name: "pod to the LB address short-circuits to every endpoint", src: "10.244.1.5", dst: "198.51.100.70", port: 80,
			want: all, wantInPat: "service-"},
		{name: "node to the LB address short-circuits, masqueraded", src: "192.168.0.2", dst: "198.51.100.70", port: 80,
			local: true, want: all, masq: true},
	})
}
