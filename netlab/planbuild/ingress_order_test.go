package planbuild

import (
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
)

func ingressCreated(p *plan.Plan) map[string]int {
	m := map[string]int{}
	for _, in := range p.Ingresses {
		m[in.Name] = in.Created
	}
	return m
}

const lateIngress = `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: aaa-late}
spec:
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 8080}}}}
`

// TestIngressCreationOrder: the Ingresses a lab comes up with are all created first (0);
// an apply numbers the ones it creates after the newest, keeps the number of the others
// (so they stay unchanged), and a re-created Ingress is new again.
func TestIngressCreationOrder(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	if got := ingressCreated(old); got["app"] != 0 {
		t.Fatalf("up: %v", got)
	}
	cur := buildFrom(t, liveBase()+lateIngress, old)
	if got := ingressCreated(cur); got["app"] != 0 || got["aaa-late"] != 1 {
		t.Fatalf("apply adding aaa-late: %v, want app 0, aaa-late 1", got)
	}
	cs := mustCompare(t, old, cur)
	if c, _ := cs.Find(plan.KindIngress, "default", "app"); c.Action != plan.Unchanged {
		t.Errorf("app: %+v", c)
	}
	if c, _ := cs.Find(plan.KindIngress, "default", "aaa-late"); c.Action != plan.Created {
		t.Errorf("aaa-late: %+v", c)
	}
	// Applying the same files again changes nothing.
	again := buildFrom(t, liveBase()+lateIngress, cur)
	if got := ingressCreated(again); got["app"] != 0 || got["aaa-late"] != 1 {
		t.Errorf("same files again: %v", got)
	}
	// app deleted, then created again: newer than aaa-late.
	noApp := strings.Replace(liveBase(), "metadata: {name: app}", "metadata: {name: app2}", 1)
	gone := buildFrom(t, noApp+lateIngress, again)
	back := buildFrom(t, liveBase()+lateIngress, gone)
	if got := ingressCreated(back); got["app"] != 3 || got["aaa-late"] != 1 {
		t.Errorf("app re-created: %v, want app 3 (app2 was 2), aaa-late 1", got)
	}
}

// TestApplyIngressClass: IngressClass objects may come and go on a running lab (the lab's
// spec.ingress fields stay refused): the Lab is configured, and the plan carries the
// classes the agents serve.
func TestApplyIngressClass(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	classes := `---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: public}
spec: {controller: netlab.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
`
	cur := buildFrom(t, liveBase()+classes, old)
	cs := mustCompare(t, old, cur)
	if c, _ := cs.Find(plan.KindLab, "", "t"); c.Action != plan.Configured {
		t.Errorf("lab: %+v", c)
	}
	if got := cur.Ingress; len(got.Classes) != 1 || got.Classes[0] != "public" || !got.IgnoreWithoutClass {
		t.Errorf("ingress config: %+v", got)
	}
	// The Ingress without class now belongs to nginx: no hosts entry for app.example.
	for _, h := range cur.Hosts {
		if strings.Contains(h.Content, "app.example") {
			t.Errorf("hosts file still resolves app.example:\n%s", h.Content)
		}
	}
}
