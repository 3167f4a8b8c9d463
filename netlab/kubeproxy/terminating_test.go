package kubeproxy

import (
	"strings"
	"testing"
)

// Endpoints of a leaving pod: kube-proxy sends new connections only to ready endpoints,
// and to serving terminating ones only when no endpoint is ready.
func TestTerminatingEndpointsAreAFallback(t *testing.T) {
	node := Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16"}
	ready := Endpoint{Pod: "web-4", Node: "node-2", IP: "10.244.2.4", Port: 8080, Ready: true}
	leaving := Endpoint{Pod: "web-1", Node: "node-1", IP: "10.244.1.2", Port: 8080, Serving: true, Terminating: true}
	gone := Endpoint{Pod: "web-2", Node: "node-1", IP: "10.244.1.3", Port: 8080, Terminating: true}
	svc := func(local bool, eps ...Endpoint) []ServicePort {
		return []ServicePort{{Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP",
			ClusterIP: "10.96.0.11", Port: 80, NodePort: 30080, ExternalLocal: local, Endpoints: eps}}
	}
	jumps := func(ports []ServicePort) (toSEP []string, reject bool) {
		out := string(Render(node, ports, nil))
		for _, l := range strings.Split(out, "\n") {
			if (strings.HasPrefix(l, "-A KUBE-SVC-") || strings.HasPrefix(l, "-A KUBE-SVL-")) && strings.Contains(l, "-j KUBE-SEP-") {
				toSEP = append(toSEP, l[strings.Index(l, "-j KUBE-SEP-")+3:])
			}
		}
		return toSEP, strings.Contains(out, "has no endpoints")
	}
	sep := func(ep Endpoint) string {
		return SEPChain("default/web:http", "TCP", ep.String())
	}
	for _, tc := range []struct {
		name   string
		ports  []ServicePort
		want   []string
		reject bool
	}{
		{"a ready endpoint takes every new connection", svc(false, ready, leaving, gone), []string{sep(ready)}, false},
		{"no ready one: the serving terminating one", svc(false, leaving, gone), []string{sep(leaving)}, false},
		{"none serving: no endpoints", svc(false, gone), nil, true},
		{"ETP Local: the local terminating one when no local one is ready", svc(true, ready, leaving),
			[]string{sep(ready), sep(leaving)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reject := jumps(tc.ports)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") || reject != tc.reject {
				t.Fatalf("jumps to %v (reject %v), want %v (reject %v)", got, reject, tc.want, tc.reject)
			}
		})
	}
}
