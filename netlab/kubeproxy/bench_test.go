package kubeproxy

import (
	"strconv"
	"testing"
)

// BenchPorts builds n ClusterIP+NodePort Services with two endpoints each (one per node),
// the shape of the rule-sync benchmark.
func benchPorts(n int) []ServicePort {
	ports := make([]ServicePort, 0, n)
	for i := range n {
		a, b := strconv.Itoa(i/250), strconv.Itoa(i%250+1)
		ports = append(ports, ServicePort{Namespace: "bench", Name: "svc-" + strconv.Itoa(i), PortName: "http", Protocol: "TCP",
			ClusterIP: "10.96." + a + "." + b, Port: 80, NodePort: int32(30000 + i%2768),
			Endpoints: []Endpoint{
				{Node: "node-1", IP: "10.244.1" + a + "." + b, Port: 8080, Ready: true},
				{Node: "node-2", IP: "10.244.2" + a + "." + b, Port: 8080, Ready: true},
			}})
	}
	return ports
}

func BenchmarkRender1000(b *testing.B) {
	ports := benchPorts(1000)
	for b.Loop() {
		Render(node1, ports, nil)
	}
}

func BenchmarkRender5000(b *testing.B) {
	ports := benchPorts(5000)
	for b.Loop() {
		Render(node1, ports, nil)
	}
}

func BenchmarkIncremental1000(b *testing.B) {
	ports := benchPorts(1000)
	prev := Render(node1, ports, nil)
	ports[500].Endpoints[0].Ready = false
	next := Render(node1, ports, nil)
	for b.Loop() {
		Incremental(prev, next)
	}
}
