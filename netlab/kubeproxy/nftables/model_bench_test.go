package nftables

import (
	"strconv"
	"testing"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// benchPorts is the bench-rules table: n Services × 2 endpoints.
func benchPorts(n int) []kubeproxy.ServicePort {
	ports := make([]kubeproxy.ServicePort, 0, n)
	for i := range n {
		a, b := strconv.Itoa(i/250), strconv.Itoa(i%250+1)
		ports = append(ports, kubeproxy.ServicePort{Namespace: "bench", Name: "svc-" + strconv.Itoa(i), PortName: "http", Protocol: "TCP",
			ClusterIP: "10.96." + a + "." + b, Port: 80, NodePort: int32(30000 + i%2768),
			Endpoints: []kubeproxy.Endpoint{
				{Node: "node-1", IP: "10.244." + strconv.Itoa(i/250+10) + "." + b, Port: 8080, Ready: true},
				{Node: "node-2", IP: "10.245." + strconv.Itoa(i/250+10) + "." + b, Port: 8080, Ready: true},
			}})
	}
	return ports
}

// netlab's side of a one-Service change at 1000 Services: find the changed port, render
// it, write its commands (go test -bench ModelOneChange ./netlab/kubeproxy/nftables).
func BenchmarkModelOneChange1000(b *testing.B) {
	ports := benchPorts(1000)
	m := NewModel(testNode)
	m.Update(ports)
	for b.Loop() {
		ports[500].Endpoints[1].Ready = !ports[500].Endpoints[1].Ready
		if d, _ := m.Update(ports); d == nil {
			b.Fatal("no change")
		}
	}
}

// The model from nothing (a full sync's rendering) at 1000 Services, its fingerprint
// included (a sync computes it while the kernel takes the table).
func BenchmarkModelBuild1000(b *testing.B) {
	ports := benchPorts(1000)
	for b.Loop() {
		m := NewModel(testNode)
		m.Update(ports)
		m.Fingerprint()
	}
}
