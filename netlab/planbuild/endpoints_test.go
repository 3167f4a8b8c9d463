package planbuild

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netlabdev/netlab/netlab/plan"
)

// Two db pods (hostname db0, subdomain db-hl) behind a headless Service without ports
// (db-hl), a headless Service with a port and a ClusterIP Service; kube-dns's own Service
// and pods come with the lab.
const endpointsLab = `apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: t}
spec: {nodes: 2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {hostname: db0, subdomain: db-hl, containers: [{name: db, ports: [{name: pg, containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db-hl}
spec: {clusterIP: None, selector: {app: db}}
---
apiVersion: v1
kind: Service
metadata: {name: db-pg}
spec: {clusterIP: None, selector: {app: db}, ports: [{name: pg, port: 5432, targetPort: pg}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{name: pg, port: 5432, targetPort: pg}]}
`

// endpointList renders a Service's endpoints as "pod ip:port name protocol hostname".
func endpointList(p *plan.Plan, name string) []string {
	var out []string
	for _, s := range p.Services {
		if s.Name != name {
			continue
		}
		for _, e := range s.Endpoints {
			out = append(out, fmt.Sprintf("%s %s:%d %s %s %s", e.Pod, e.IP, e.Port, e.PortName, e.Protocol, e.Hostname))
		}
	}
	slices.Sort(out)
	return out
}

// A headless Service without ports has one port-less endpoint per selected pod, from Build
// and from RecomputeEndpoints alike, and none reaches kube-proxy. The endpoints of the
// Service a pod's subdomain names carry its hostname, the others' not; a new replica
// (scale) keeps them.
func TestEndpointsOfHeadlessWithoutPorts(t *testing.T) {
	p := mustPlan(t, endpointsLab, "")
	ip := map[string]string{}
	for _, pod := range p.Pods {
		ip[pod.Name] = plan.Addr(pod.IP)
	}
	want := map[string][]string{
		"db-hl": {"db-1 " + ip["db-1"] + ":0   db0", "db-2 " + ip["db-2"] + ":0   db0"},
		"db-pg": {"db-1 " + ip["db-1"] + ":5432 pg TCP ", "db-2 " + ip["db-2"] + ":5432 pg TCP "},
		"db":    {"db-1 " + ip["db-1"] + ":5432 pg TCP ", "db-2 " + ip["db-2"] + ":5432 pg TCP "},
	}
	check := func(what string, p *plan.Plan) {
		t.Helper()
		for svc, w := range want {
			if d := cmp.Diff(w, endpointList(p, svc)); d != "" {
				t.Errorf("%s: %s endpoints (-want +got):\n%s", what, svc, d)
			}
		}
	}
	check("Build", p)
	p.RecomputeEndpoints()
	check("RecomputeEndpoints", p)
	var dep *plan.Deployment
	for i := range p.Deployments {
		if p.Deployments[i].Name == "db" {
			dep = &p.Deployments[i]
		}
	}
	pod, err := p.NewPod(dep)
	if err != nil {
		t.Fatal(err)
	}
	if pod.Hostname != "db0" || pod.Subdomain != "db-hl" {
		t.Errorf("new replica %s: hostname %q subdomain %q, want db0 and db-hl", pod.Name, pod.Hostname, pod.Subdomain)
	}
	for _, sp := range p.ServicePorts(nil) {
		if sp.Name != "db" && sp.Name != "kube-dns" {
			t.Errorf("kube-proxy gets %s/%s port %q", sp.Namespace, sp.Name, sp.PortName)
		}
	}
}
