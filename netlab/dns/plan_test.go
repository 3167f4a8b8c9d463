package dns

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// A lab of two namespaces: api (ClusterIP, named port), db (headless, two replicas),
// peers (headless without ports) and pg (headless; its pod has hostname pg0 and subdomain
// pg) in default, search (ExternalName) in shop; the cluster domain lab.test.
const labYAML = `apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: t}
spec: {dns: {clusterDomain: lab.test}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: api}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: pg}
spec:
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec: {hostname: pg0, subdomain: pg, containers: [{name: c, ports: [{name: pg, containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: pg}
spec: {clusterIP: None, selector: {app: pg}, ports: [{name: pg, port: 5432, targetPort: pg}]}
---
apiVersion: v1
kind: Service
metadata: {name: peers}
spec: {clusterIP: None, selector: {app: api}}
---
apiVersion: v1
kind: Service
metadata: {name: search, namespace: shop}
spec: {type: ExternalName, externalName: search.example.com}
`

func rev(ip string) string { r, _ := mdns.ReverseAddr(ip); return r }

func TestFromPlan(t *testing.T) {
	s, err := scenario.Parse("t.yaml", []byte(labYAML))
	if err != nil {
		t.Fatal(err)
	}
	p, err := planbuild.Build(s, "")
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, pod := range p.Pods {
		ips[pod.Name] = plan.Addr(pod.IP)
	}
	// api-1 ready, api-2 not.
	tab := New(FromPlan(p, func(pod string) bool { return pod != "api-2" }))
	for _, tc := range []struct {
		q     string
		qtype uint16
		want  string
	}{
		{"api.default.svc.lab.test.", mdns.TypeA, "api.default.svc.lab.test. 5 IN A 10.96.0.11"},
		{"kube-dns.kube-system.svc.lab.test.", mdns.TypeA, "kube-dns.kube-system.svc.lab.test. 5 IN A 10.96.0.10"},
		{"_dns-tcp._tcp.kube-dns.kube-system.svc.lab.test.", mdns.TypeSRV,
			"_dns-tcp._tcp.kube-dns.kube-system.svc.lab.test. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.lab.test."},
		{"db.default.svc.lab.test.", mdns.TypeA, "db.default.svc.lab.test. 5 IN A " + ips["api-1"]},
		{"_http._tcp.db.default.svc.lab.test.", mdns.TypeSRV,
			"_http._tcp.db.default.svc.lab.test. 5 IN SRV 0 100 8080 " + DashedIPString(ips["api-1"]) + ".db.default.svc.lab.test."},
		{"search.shop.svc.lab.test.", mdns.TypeA, "search.shop.svc.lab.test. 5 IN CNAME search.example.com."},
		// A headless Service without ports: its ready pods' A records, no SRV.
		{"peers.default.svc.lab.test.", mdns.TypeA, "peers.default.svc.lab.test. 5 IN A " + ips["api-1"]},
		{DashedIPString(ips["api-1"]) + ".peers.default.svc.lab.test.", mdns.TypeA,
			DashedIPString(ips["api-1"]) + ".peers.default.svc.lab.test. 5 IN A " + ips["api-1"]},
		{"peers.default.svc.lab.test.", mdns.TypeSRV, ""},
		{"_http._tcp.peers.default.svc.lab.test.", mdns.TypeSRV, ""},
		// hostname + subdomain: the endpoint's name is the pod's hostname.
		{"pg0.pg.default.svc.lab.test.", mdns.TypeA, "pg0.pg.default.svc.lab.test. 5 IN A " + ips["pg-1"]},
		{"_pg._tcp.pg.default.svc.lab.test.", mdns.TypeSRV, "_pg._tcp.pg.default.svc.lab.test. 5 IN SRV 0 100 5432 pg0.pg.default.svc.lab.test."},
		{rev(ips["pg-1"]), mdns.TypePTR, rev(ips["pg-1"]) + " 5 IN PTR pg0.pg.default.svc.lab.test."},
		{DashedIPString(ips["pg-1"]) + ".pg.default.svc.lab.test.", mdns.TypeA, ""},
		// api-1 is behind three Services (a ClusterIP one and two headless): a PTR for each.
		{rev(ips["api-1"]), mdns.TypePTR, rev(ips["api-1"]) + " 5 IN PTR " + DashedIPString(ips["api-1"]) + ".api.default.svc.lab.test.\n" +
			rev(ips["api-1"]) + " 5 IN PTR " + DashedIPString(ips["api-1"]) + ".db.default.svc.lab.test.\n" +
			rev(ips["api-1"]) + " 5 IN PTR " + DashedIPString(ips["api-1"]) + ".peers.default.svc.lab.test."},
	} {
		if d := cmp.Diff(tc.want, text(tab.Lookup(tc.q, tc.qtype).Answer)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.q, d)
		}
	}
	// Nothing ready yet: the headless Service has no name, the others answer.
	none := New(FromPlan(p, nil))
	if a := none.Lookup("db.default.svc.lab.test.", mdns.TypeA); a.Rcode != mdns.RcodeNameError {
		t.Errorf("headless with no ready pod: %s, want NXDOMAIN", mdns.RcodeToString[a.Rcode])
	}
	if a := none.Lookup("api.default.svc.lab.test.", mdns.TypeA); len(a.Answer) != 1 {
		t.Errorf("ClusterIP Service with no ready pod: %v, want its A record", a.Answer)
	}
	if a := none.Lookup("x.shop.svc.lab.test.", mdns.TypeA); a.Rcode != mdns.RcodeNameError {
		t.Errorf("unknown Service: %s", mdns.RcodeToString[a.Rcode])
	}
	// The namespaces every cluster has exist (no data), with the lab's own.
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease", "shop"} {
		if a := none.Lookup(ns+".svc.lab.test.", mdns.TypeA); a.Rcode != mdns.RcodeSuccess || len(a.Answer) != 0 {
			t.Errorf("namespace %s: %s %v, want no data", ns, mdns.RcodeToString[a.Rcode], a.Answer)
		}
	}
}

// A Service with the tolerate-unready annotation: the DNS specification counts its
// not-ready endpoints as ready, so the DNS publishes them, though kube-proxy does not.
func TestFromPlanTolerateUnready(t *testing.T) {
	s, err := scenario.Parse("t.yaml", []byte(labYAML+`---
apiVersion: v1
kind: Service
metadata: {name: tol, annotations: {service.alpha.kubernetes.io/tolerate-unready-endpoints: "true"}}
spec: {clusterIP: None, selector: {app: api}, ports: [{name: http, port: 80, targetPort: 8080}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := planbuild.Build(s, "")
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, pod := range p.Pods {
		if pod.Deployment == "api" {
			ips = append(ips, plan.Addr(pod.IP))
		}
	}
	// Neither api pod ready: the annotated Service lists both, db (headless, no
	// annotation) none.
	tab := New(FromPlan(p, func(string) bool { return false }))
	if got := text(tab.Lookup("tol.default.svc.lab.test.", mdns.TypeA).Answer); strings.Count(got, " IN A ") != 2 ||
		!strings.Contains(got, ips[0]) || !strings.Contains(got, ips[1]) {
		t.Errorf("tol: %q, want both api pods %v", got, ips)
	}
	if a := tab.Lookup("db.default.svc.lab.test.", mdns.TypeA); a.Rcode != mdns.RcodeNameError {
		t.Errorf("db: %s %v, want NXDOMAIN", mdns.RcodeToString[a.Rcode], a.Answer)
	}
	// kube-proxy's model does not follow it.
	for _, sp := range p.ServicePorts(func(string) bool { return false }) {
		if sp.Name == "tol" {
			if len(sp.Endpoints) != 2 {
				t.Errorf("kube-proxy endpoints of tol: %+v, want the 2 api pods", sp.Endpoints)
			}
			for _, ep := range sp.Endpoints {
				if ep.Ready {
					t.Errorf("kube-proxy endpoint %+v ready", ep)
				}
			}
		}
	}
}
