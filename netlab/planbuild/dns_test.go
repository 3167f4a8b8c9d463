package planbuild

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netlabdev/netlab/netlab/scenario"
)

func TestClusterDNS(t *testing.T) {
	p := mustPlan(t, "", "")
	if p.DNS == nil || p.DNS.ServiceIP != "10.96.0.10" || p.DNS.ClusterDomain != "cluster.local" {
		t.Fatalf("dns %+v", p.DNS)
	}
	ips := map[string]string{}
	for _, s := range p.Services {
		ips[s.Namespace+"/"+s.Name] = s.ClusterIP
	}
	if d := cmp.Diff(map[string]string{"default/web": "10.96.0.11", "default/api": "10.96.0.12", "kube-system/kube-dns": "10.96.0.10"}, ips); d != "" {
		t.Errorf("ClusterIPs (-want +got):\n%s", d)
	}
	resolv := map[string]string{}
	for _, rc := range p.ResolvConfs {
		resolv[strings.TrimPrefix(rc.Netns, "nl-demo-")] = rc.Content
	}
	for obj, want := range map[string]string{
		"web-1":     "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
		"coredns-1": "search kube-system.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
		"node-2":    "search svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
		"client":    "nameserver 127.0.0.1\n",
	} {
		if !strings.HasSuffix(resolv[obj], want) {
			t.Errorf("%s resolv.conf:\n%s\nwant it to end with:\n%s", obj, resolv[obj], want)
		}
	}
	if _, ok := resolv["lb"]; ok {
		t.Error("the LB has a resolv.conf")
	}
	var dnsProcs []string
	for _, pr := range p.Processes {
		if len(pr.Args) > 1 && pr.Args[1] == "dns" {
			dnsProcs = append(dnsProcs, pr.Role+" "+pr.Name+" "+pr.Netns)
		}
	}
	if d := cmp.Diff([]string{"pod coredns-1 nl-demo-coredns-1", "pod coredns-2 nl-demo-coredns-2"}, dnsProcs); d != "" {
		t.Errorf("DNS agents (-want +got):\n%s", d)
	}
	for _, sp := range p.ServicePorts(nil) {
		if sp.Name == "kube-dns" && len(sp.Endpoints) != 2 {
			t.Errorf("kube-dns %s: %d endpoints, want 2", sp.PortName, len(sp.Endpoints))
		}
	}
}

func TestClusterDNSOffHeadlessExternalName(t *testing.T) {
	p := mustPlan(t, `apiVersion: netlab.dev/v1alpha1
kind: Lab
spec: {dns: {enabled: false}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, ports: [{name: pg, containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{name: pg, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: dbip}
spec: {selector: {app: db}, ports: [{name: pg, port: 5432}]}
`, "")
	if p.DNS != nil || len(p.Pods) != 2 {
		t.Errorf("dns %+v, %d pods; want none and the 2 db pods", p.DNS, len(p.Pods))
	}
	// With the DNS off, every pod, node and client asks its own loopback: nothing falls
	// back to the host's resolver, an address outside the lab.
	if want := len(p.Pods) + len(p.Nodes) + len(p.Clients); len(p.ResolvConfs) != want {
		t.Errorf("%d resolv.confs, want %d (every pod, node and client)", len(p.ResolvConfs), want)
	}
	for _, rc := range p.ResolvConfs {
		if !strings.HasSuffix(rc.Content, "\nnameserver 127.0.0.1\n") || strings.Count(rc.Content, "nameserver") != 1 {
			t.Errorf("resolv.conf in %s with the DNS off:\n%s", rc.Netns, rc.Content)
		}
	}
	got := map[string]string{}
	for _, s := range p.Services {
		got[s.Name] = s.ClusterIP + "|" + s.ExternalName
	}
	// The allocator starts at .11 even with the DNS off.
	if d := cmp.Diff(map[string]string{"db": "None|", "ext": "|db.example.com", "dbip": "10.96.0.11|"}, got); d != "" {
		t.Errorf("Services (-want +got):\n%s", d)
	}
	var ports []string
	for _, sp := range p.ServicePorts(nil) {
		ports = append(ports, sp.Name)
	}
	if d := cmp.Diff([]string{"dbip"}, ports); d != "" {
		t.Errorf("kube-proxy programs (-want +got):\n%s", d)
	}
}

// The tolerate-unready annotation is the old spelling of publishNotReadyAddresses: the
// DNS specification still counts its Service's not-ready pods as ready endpoints, but
// Kubernetes' controllers no longer do, so the plan carries it apart (for the DNS only),
// with a warning saying so.
func TestTolerateUnreadyAnnotation(t *testing.T) {
	svc := func(name, value string) string {
		return `
---
apiVersion: v1
kind: Service
metadata: {name: ` + name + `, annotations: {service.alpha.kubernetes.io/tolerate-unready-endpoints: "` + value + `"}}
spec: {clusterIP: None, selector: {app: db}, ports: [{name: pg, port: 5432}]}`
	}
	yaml := `apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, ports: [{name: pg, containerPort: 5432}]}]}` +
		svc("tol-true", "true") + svc("tol-false", "false") + svc("tol-odd", "maybe")
	s, err := scenario.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := scenario.Validate(s); err != nil {
		t.Fatal(err)
	}
	p, err := Build(s, "")
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, w := range p.Warnings {
		if strings.Contains(w, "tolerate-unready") {
			warned = append(warned, w)
		}
	}
	if len(warned) != 2 || !strings.Contains(warned[0], "tol-true") || !strings.Contains(warned[0], "cluster DNS") ||
		!strings.Contains(warned[1], "tol-odd") || !strings.Contains(warned[1], "not a boolean") {
		t.Errorf("warnings %q, want tol-true's (DNS only) and tol-odd's (not a boolean)", warned)
	}
	got := map[string]string{}
	for _, sv := range p.Services {
		got[sv.Name] = fmt.Sprintf("publish %v tolerate %v", sv.PublishNotReady, sv.TolerateUnready)
	}
	want := map[string]string{"tol-true": "publish false tolerate true", "tol-false": "publish false tolerate false",
		"tol-odd": "publish false tolerate false", "kube-dns": "publish false tolerate false"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
