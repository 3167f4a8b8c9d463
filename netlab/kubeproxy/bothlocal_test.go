package kubeproxy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A Service whose internal and external traffic policies are both Local still uses its
// cluster-wide endpoints, as kube-proxy's UsesClusterEndpoints says: pods and the node
// reach its external addresses as if they went out to the load balancer and came back
// (the short-circuit), so the Cluster policy chain and every endpoint's chain exist.
func TestBothPoliciesLocal(t *testing.T) {
	const ip = "10.96.0.70"
	eps := []Endpoint{
		{Pod: "both-1", Node: "node-1", IP: "10.244.1.70", Port: 80, Ready: true},
		{Pod: "both-2", Node: "node-2", IP: "10.244.2.70", Port: 80, Ready: true},
	}
	sp := ServicePort{Namespace: "default", Name: "both", Protocol: "TCP", ClusterIP: ip, Port: 80, NodePort: 30070,
		LoadBalancerIPs: []string{lbVIP}, InternalLocal: true, ExternalLocal: true, HealthCheckNodePort: 32070, Endpoints: eps}
	if !sp.UsesClusterEndpoints() || !sp.UsesLocalEndpoints() {
		t.Fatalf("UsesClusterEndpoints %v, UsesLocalEndpoints %v: want both", sp.UsesClusterEndpoints(), sp.UsesLocalEndpoints())
	}
	internalOnly := sp
	internalOnly.NodePort, internalOnly.LoadBalancerIPs, internalOnly.HealthCheckNodePort = 0, nil, 0
	if internalOnly.UsesClusterEndpoints() {
		t.Error("a ClusterIP-only Service with ITP Local uses cluster endpoints")
	}

	for _, tc := range []struct {
		node  Node
		local string
	}{{node1, "10.244.1.70:80"}, {node2, "10.244.2.70:80"}} {
		// Before the fix the restore input jumped to a KUBE-SVC chain it never declared,
		// and iptables-restore refused the whole sync.
		rs, err := parseRules(Render(tc.node, []ServicePort{sp}, nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.node.Name, err)
		}
		run := func(what string, pkt packet, want []string, masq bool) {
			t.Helper()
			outs, err := rs.trace(pkt, envFor(tc.node))
			if err != nil {
				t.Fatalf("%s %s: %v", tc.node.Name, what, err)
			}
			if d := cmp.Diff(want, dnatTargets(outs)); d != "" {
				t.Errorf("%s %s: targets (-want +got):\n%s", tc.node.Name, what, d)
			}
			for _, o := range outs {
				if o.Masquerade != masq {
					t.Errorf("%s %s: to %s masquerade %v, want %v", tc.node.Name, what, o.DNAT, o.Masquerade, masq)
				}
			}
		}
		all := []string{"10.244.1.70:80", "10.244.2.70:80"}
		run("client to the LB address", tcp(clientIP, lbVIP, 80), []string{tc.local}, false)
		run("client to the NodePort", tcp(clientIP, tc.node.IP, 30070), []string{tc.local}, false)
		run("pod to the ClusterIP", tcp(clientPod1, ip, 80), []string{tc.local}, false)
		run("pod to the LB address (short-circuit)", tcp(clientPod1, lbVIP, 80), all, false)
		run("node to the LB address (short-circuit, masqueraded)",
			packet{Src: tc.node.IP, Dst: lbVIP, DPort: 80, Proto: "tcp", FromLocalProcess: true}, all, true)
	}
}
