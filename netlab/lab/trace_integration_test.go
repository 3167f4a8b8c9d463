// Integration test of netlab trace on the default lab (address plan in
// lab_integration_test.go), plus a LoadBalancer Service for the L4-only path.
package lab_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
)

func hop(t *testing.T, tr *lab.Trace, step string) lab.Hop {
	t.Helper()
	for _, h := range tr.Hops {
		if h.Component == step {
			return h
		}
	}
	t.Fatalf("trace has no %s hop: %+v", step, tr.Hops)
	return lab.Hop{}
}

func TestIntegrationTrace(t *testing.T) {
	labtest.RequireRoot(t)
	extra := `---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  type: LoadBalancer
  selector: {app: api}
  ports: [{name: http, port: 8000, targetPort: http}]
`
	p := labtest.Up(t, "trace", string(scenario.DefaultYAML())+extra)
	ctx := context.Background()

	tr, err := lab.TraceRequest(ctx, p.Lab, "", "http://app.example/api/items")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != 200 {
		t.Fatalf("status %d", tr.Status)
	}
	steps := []string{}
	for _, h := range tr.Hops {
		steps = append(steps, h.Component)
	}
	if got := strings.Join(steps, ","); got != "client,load balancer,ingress,kube-proxy,network,pod" {
		t.Fatalf("hops %s", got)
	}
	lbHop := hop(t, tr, "load balancer")
	if !strings.Contains(lbHop.Summary, "DNAT 203.0.113.100:80 → 172.18.0.1") {
		t.Errorf("lb hop: %s", lbHop.Summary)
	}
	in := hop(t, tr, "ingress")
	if !strings.Contains(in.Summary, "path=/api (Prefix) → Service default/api:80") {
		t.Errorf("ingress hop: %s", in.Summary)
	}
	kp := hop(t, tr, "kube-proxy")
	pod := hop(t, tr, "pod")
	if !strings.Contains(kp.Summary, "Service default/api:http cluster IP: DNAT 10.96.0.12:80 → 10.244.") ||
		!strings.Contains(strings.Join(kp.Details, " "), "KUBE-SVC-") {
		t.Errorf("kube-proxy hop: %s %v", kp.Summary, kp.Details)
	}
	if !strings.Contains(pod.Summary, "pod api-") {
		t.Errorf("pod hop: %s", pod.Summary)
	}

	// An L4-only path: the LoadBalancer Service's VIP → a NodePort → a pod.
	var vip string
	for _, s := range p.Services {
		if s.Name == "shop" {
			vip = s.LoadBalancerIP
		}
	}
	tr, err = lab.TraceRequest(ctx, p.Lab, "", "http://"+vip+":8000/")
	if err != nil {
		t.Fatal(err)
	}
	lbHop, kp = hop(t, tr, "load balancer"), hop(t, tr, "kube-proxy")
	if !strings.Contains(lbHop.Summary, "default/shop:http") || !strings.Contains(kp.Summary, "Service default/shop:http node port") {
		t.Errorf("L4 trace: lb %q, kube-proxy %q", lbHop.Summary, kp.Summary)
	}
	if d := strings.Join(kp.Details, " "); !strings.Contains(d, "iptables: KUBE-SERVICES → KUBE-NODEPORTS → KUBE-EXT-") || !strings.Contains(d, "→ KUBE-SVC-") {
		t.Errorf("L4 trace chain path: %s", d)
	}

	// From a node to a ClusterIP on port 80 (the ingress's port): no ingress is on the way,
	// so the trace neither shows nor misses an ingress hop.
	tr, err = lab.TraceRequest(ctx, p.Lab, "node-1", "http://10.96.0.12/items")
	if err != nil || tr.Status != 200 {
		t.Fatalf("trace from node-1 to the api ClusterIP: %v, status %d", err, tr.Status)
	}
	for _, h := range tr.Hops {
		if h.Component == "ingress" {
			t.Errorf("ClusterIP trace has an ingress hop: %s", h.Summary)
		}
	}
	for _, n := range tr.Notes {
		if strings.Contains(n, "ingress") {
			t.Errorf("ClusterIP trace notes a missing ingress hop: %q", n)
		}
	}

	// From a pod to its node's gateway address on port 80: the node's ingress listens
	// there too, and the trace shows its hop.
	var gw string
	for _, pod := range p.Pods {
		if pod.Name == "web-1" {
			for _, n := range p.Nodes {
				if n.Name == pod.Node {
					gw = plan.Addr(n.Gateway)
				}
			}
		}
	}
	tr, err = lab.TraceWith(ctx, p.Lab, lab.TraceOptions{From: "web-1", URL: "http://" + gw + "/api/items", Headers: http.Header{"Host": {"app.example"}}})
	if err != nil || tr.Status != 200 {
		t.Fatalf("trace from web-1 to its node's gateway %s: %v, status %d", gw, err, tr.Status)
	}
	if in := hop(t, tr, "ingress"); !strings.Contains(in.Summary, "→ Service default/api:80") {
		t.Errorf("trace to the node's gateway: ingress hop %q", in.Summary)
	}
}
