package lab_test

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// status says why each Ingress the lab's ingress does not serve is ignored: another class,
// the empty class, or no class while the default IngressClass is another controller's;
// the served ones have no reason.
func TestIngressStatusSaysWhyIgnored(t *testing.T) {
	ing := func(name, meta, spec string) string {
		return `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ` + name + meta + `}
spec:
  ` + spec + `
  defaultBackend: {service: {name: web, port: {number: 80}}}
`
	}
	yaml := `apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: why}
spec: {nodes: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
` + ing("other", "", "ingressClassName: nginx") +
		ing("empty", `, annotations: {kubernetes.io/ingress.class: ""}`, "rules: []") +
		ing("none", "", "rules: []") +
		ing("ours", "", "ingressClassName: netlab")
	p := labtest.Plan(t, "why", yaml)
	want := map[string]string{
		"other": `class "nginx" is not the lab's`,
		"empty": "it names the empty class",
		"none":  `it names no class and the default IngressClass "nginx" is another controller's`,
		"ours":  "",
	}
	got := map[string]lab.IngressStatus{}
	for _, in := range lab.IngressStatusOf(p) {
		got[in.Name] = in
	}
	for name, reason := range want {
		in, ok := got[name]
		if !ok {
			t.Errorf("Ingress %s missing from status: %+v", name, got)
			continue
		}
		if in.Ignored != (reason != "") || in.IgnoredReason != reason {
			t.Errorf("Ingress %s: ignored %v, reason %q; want reason %q", name, in.Ignored, in.IgnoredReason, reason)
		}
	}
}
