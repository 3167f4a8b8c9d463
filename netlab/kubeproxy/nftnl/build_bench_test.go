package nftnl

import (
	"strconv"
	"testing"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// netlab's side of a full sync from empty at 1000 Services × 2 endpoints, without the
// kernel: the model, the stages' text and their messages
// (go test -run XXX -bench BuildStaged -benchmem ./netlab/kubeproxy/nftnl).
func BenchmarkBuildStaged1000(b *testing.B) {
	node := kubeproxy.Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12"}
	ports := make([]kubeproxy.ServicePort, 0, 1000)
	for i := range 1000 {
		a, c := strconv.Itoa(i/250), strconv.Itoa(i%250+1)
		ports = append(ports, kubeproxy.ServicePort{Namespace: "bench", Name: "svc-" + strconv.Itoa(i), PortName: "http", Protocol: "TCP",
			ClusterIP: "10.96." + a + "." + c, Port: 80, NodePort: int32(30000 + i%2768),
			Endpoints: []kubeproxy.Endpoint{
				{Node: "node-1", IP: "10.244." + strconv.Itoa(i/250+10) + "." + c, Port: 8080, Ready: true},
				{Node: "node-2", IP: "10.245." + strconv.Itoa(i/250+10) + "." + c, Port: 8080, Ready: true},
			}})
	}
	for b.Loop() {
		m := nftables.NewModel(node)
		m.Update(ports)
		for _, text := range nftables.Staged(m.Ruleset(), 500) {
			if _, err := build(text); err != nil {
				b.Fatal(err)
			}
		}
	}
}
