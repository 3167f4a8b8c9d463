package kubeproxy

import (
	"net/netip"
	"testing"
)

func TestUDPServingStale(t *testing.T) {
	node := Node{Name: "node-1", IP: "172.18.0.11"}
	dns := ServicePort{Namespace: "kube-system", Name: "kube-dns", Protocol: "UDP", ClusterIP: "10.96.0.10", Port: 53,
		NodePort: 30053, Endpoints: []Endpoint{
			{Pod: "coredns-1", Node: "node-1", IP: "10.244.1.5", Port: 5353, Ready: true},
			{Pod: "coredns-2", Node: "node-2", IP: "10.244.2.5", Port: 5353, Ready: false},
		}}
	web := ServicePort{Namespace: "default", Name: "web", Protocol: "TCP", ClusterIP: "10.96.0.20", Port: 80,
		Endpoints: []Endpoint{{Pod: "web-1", Node: "node-1", IP: "10.244.1.6", Port: 8080, Ready: true}}}
	u := NewUDPServing(node, []ServicePort{dns, web})
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		name              string
		origDst, replySrc string
		want              bool
	}{
		{"to the ClusterIP, on a ready endpoint", "10.96.0.10:53", "10.244.1.5:5353", false},
		{"to the ClusterIP, on an endpoint no longer ready", "10.96.0.10:53", "10.244.2.5:5353", true},
		{"to the ClusterIP, untranslated (made while it had no endpoint)", "10.96.0.10:53", "10.96.0.10:53", true},
		{"to another port of the ClusterIP", "10.96.0.10:54", "10.244.2.5:5353", false},
		{"to a TCP Service's address", "10.96.0.20:80", "10.244.9.9:8080", false},
		{"through the NodePort, on a gone endpoint", "172.18.0.11:30053", "10.244.2.5:5353", true},
		{"through the NodePort, on a ready endpoint", "172.18.0.11:30053", "10.244.1.5:5353", false},
		{"to the node's NodePort, untranslated", "172.18.0.11:30053", "172.18.0.11:30053", true},
		{"to a pod's own port of the same number", "10.244.1.7:30053", "10.244.1.7:30053", false},
		{"unrelated", "10.244.1.7:9999", "10.244.1.7:9999", false},
	} {
		if got := u.Stale(ap(c.origDst), ap(c.replySrc)); got != c.want {
			t.Errorf("%s: Stale(%s, %s) = %v, want %v", c.name, c.origDst, c.replySrc, got, c.want)
		}
	}
	if u.Empty() {
		t.Error("a node with a UDP Service reads as empty")
	}
	if !NewUDPServing(node, []ServicePort{web}).Empty() {
		t.Error("a node with only TCP Services has UDP Services")
	}
}

func TestUDPServingKey(t *testing.T) {
	node := Node{Name: "node-1", IP: "172.18.0.11"}
	sp := func(ready ...bool) ServicePort {
		s := ServicePort{Namespace: "ns", Name: "d", Protocol: "udp", ClusterIP: "10.96.0.10", Port: 53}
		for i, r := range ready {
			s.Endpoints = append(s.Endpoints, Endpoint{Pod: "p", Node: "node-1", IP: "10.244.1." + string(rune('2'+i)), Port: 53, Ready: r})
		}
		return s
	}
	tcp := ServicePort{Namespace: "ns", Name: "w", Protocol: "TCP", ClusterIP: "10.96.0.20", Port: 80}
	a := NewUDPServing(node, []ServicePort{sp(true, true)}).Key()
	if b := NewUDPServing(node, []ServicePort{sp(true, true), tcp}).Key(); a != b {
		t.Errorf("a TCP Service changed the UDP key: %q vs %q", a, b)
	}
	if b := NewUDPServing(node, []ServicePort{sp(true, false)}).Key(); a == b {
		t.Errorf("an endpoint leaving left the key unchanged: %q", a)
	}
	// Terminating serving endpoints are used only when no endpoint is ready.
	term := sp(false)
	term.Endpoints[0].Terminating, term.Endpoints[0].Serving = true, true
	u := NewUDPServing(node, []ServicePort{term})
	if u.Stale(netip.MustParseAddrPort("10.96.0.10:53"), netip.MustParseAddrPort("10.244.1.2:53")) {
		t.Error("a flow to the only serving (terminating) endpoint is stale")
	}
}

// As kube-proxy's clean-up: every serving endpoint of the port keeps its flows, whatever
// the traffic policy, the node, or whether it is terminating while others are ready; a
// port without any serving endpoint has its flows left alone.
func TestUDPServingKeepsServingEndpoints(t *testing.T) {
	node := Node{Name: "node-1", IP: "172.18.0.11"}
	eps := []Endpoint{
		{Pod: "a", Node: "node-1", IP: "10.244.1.5", Port: 53, Ready: true},
		{Pod: "b", Node: "node-2", IP: "10.244.2.5", Port: 53, Ready: true},
		{Pod: "c", Node: "node-2", IP: "10.244.2.6", Port: 53, Serving: true, Terminating: true},
		{Pod: "d", Node: "node-2", IP: "10.244.2.7", Port: 53, Terminating: true},
	}
	itp := ServicePort{Namespace: "ns", Name: "itp", Protocol: "UDP", ClusterIP: "10.96.0.11", Port: 53, InternalLocal: true, Endpoints: eps}
	gone := ServicePort{Namespace: "ns", Name: "gone", Protocol: "UDP", ClusterIP: "10.96.0.12", Port: 53,
		Endpoints: []Endpoint{{Pod: "e", Node: "node-1", IP: "10.244.1.9", Port: 53}}}
	u := NewUDPServing(node, []ServicePort{itp, gone})
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		name              string
		origDst, replySrc string
		want              bool
	}{
		{"ITP Local, to a remote ready endpoint", "10.96.0.11:53", "10.244.2.5:53", false},
		{"to a terminating endpoint that still serves", "10.96.0.11:53", "10.244.2.6:53", false},
		{"to a terminating endpoint that no longer serves", "10.96.0.11:53", "10.244.2.7:53", true},
		{"to a serving endpoint's other port", "10.96.0.11:53", "10.244.1.5:5353", false},
		{"to a Service without serving endpoints", "10.96.0.12:53", "10.244.1.9:53", false},
	} {
		if got := u.Stale(ap(c.origDst), ap(c.replySrc)); got != c.want {
			t.Errorf("%s: Stale(%s, %s) = %v, want %v", c.name, c.origDst, c.replySrc, got, c.want)
		}
	}
}

func TestUDPServingStaleSince(t *testing.T) {
	node := Node{Name: "node-1", IP: "172.18.0.11"}
	dns := ServicePort{Namespace: "kube-system", Name: "kube-dns", Protocol: "UDP", ClusterIP: "10.96.0.10", Port: 53,
		NodePort: 30053, Endpoints: []Endpoint{{Pod: "coredns-1", Node: "node-1", IP: "10.244.1.5", Port: 5353, Ready: true}}}
	prev := NewUDPServing(node, []ServicePort{dns})
	now := NewUDPServing(node, nil) // the Service was deleted
	ap := netip.MustParseAddrPort
	if !now.StaleSince(prev, ap("10.96.0.10:53"), ap("10.244.1.5:5353")) {
		t.Error("a flow to a deleted UDP Service is not stale")
	}
	if !now.StaleSince(prev, ap("172.18.0.11:30053"), ap("10.244.1.5:5353")) {
		t.Error("a flow through a deleted UDP NodePort is not stale")
	}
	if now.StaleSince(prev, ap("10.244.1.7:30053"), ap("10.244.1.7:30053")) {
		t.Error("a pod's own flow on the old NodePort's number is stale")
	}
	if prev.StaleSince(nil, ap("10.96.0.10:53"), ap("10.244.1.5:5353")) {
		t.Error("a flow to a ready endpoint is stale")
	}
}
