package planbuild

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// The live-change tests start from liveBase and edit it as a user edits a scenario file.
const liveLab = `apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: t}
spec:
  nodes: [{name: node-1, labels: {zone: a}}, {name: node-2, labels: {zone: b}}]
  loadBalancer: {scheduler: rr}
`

const liveWeb = `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        ports: [{name: http, containerPort: 8080}]
`

const liveServices = `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app}
spec:
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

func liveBase() string { return liveLab + liveWeb + liveServices }

func buildFrom(t *testing.T, yaml string, prev *plan.Plan) *plan.Plan {
	t.Helper()
	s, err := scenario.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := BuildFrom(s, "", prev)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustCompare(t *testing.T, old, cur *plan.Plan) plan.Changes {
	t.Helper()
	cs, err := plan.Compare(old, cur)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func lines(cs plan.Changes) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return strings.Join(out, "\n")
}

// podNames lists the web pods (the cluster DNS's coredns pods are there too, unchanged).
func podNames(p *plan.Plan) string {
	var out []string
	for _, pod := range p.Pods {
		if pod.Deployment == "web" {
			out = append(out, pod.Name+"@"+pod.Node+"="+pod.IP)
		}
	}
	return strings.Join(out, " ")
}

func TestCompareSameFilesAllUnchanged(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	cur := buildFrom(t, liveBase(), old)
	cs := mustCompare(t, old, cur)
	want := `lab.netlab.dev/t unchanged
deployment.apps/web unchanged
deployment.apps/coredns unchanged
service/shop unchanged
service/web unchanged
service/kube-dns unchanged
ingress.networking.k8s.io/app unchanged`
	if got := lines(cs); got != want {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, want)
	}
	if cs.Changed() {
		t.Fatal("Changed() = true for the same files")
	}
	// Not a field of the running lab moves: the stored plan would be written back as is.
	if !equalJSON(old, cur) {
		t.Fatalf("the plan of the same files differs from the running one:\nold pods %s\nnew pods %s", podNames(old), podNames(cur))
	}
}

func TestCompareScaleUpKeepsPodsAndContinuesNames(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	cur := buildFrom(t, strings.Replace(liveBase(), "replicas: 3", "replicas: 5", 1), old)
	cs := mustCompare(t, old, cur)
	c, _ := cs.Find(plan.KindDeployment, "default", "web")
	if c.Action != plan.Configured || c.What[0] != "replicas 3 → 5" {
		t.Fatalf("web: %+v", c)
	}
	for _, k := range []string{"web", "shop"} {
		if c, _ := cs.Find(plan.KindService, "default", k); c.Action != plan.Unchanged {
			t.Fatalf("service %s: %+v (its endpoints follow the pods, its spec did not change)", k, c)
		}
	}
	for _, pod := range old.Pods {
		got, ok := cur.PodByName(pod.Name)
		if !ok || !equalJSON(got, pod) {
			t.Fatalf("pod %s changed: %+v → %+v", pod.Name, pod, got)
		}
	}
	want := "web-1@node-1=10.244.1.2/24 web-2@node-2=10.244.2.2/24 web-3@node-1=10.244.1.3/24 web-4@node-2=10.244.2.4/24 web-5@node-1=10.244.1.5/24"
	if got := podNames(cur); got != want {
		t.Fatalf("pods %s\nwant %s", got, want)
	}
	if n := len(cur.Services[0].Endpoints); n != 5 {
		t.Fatalf("web endpoints: %d, want 5", n)
	}
	// Everything that wires the new pods is there, once.
	for _, name := range []string{"web-4", "web-5"} {
		ns := plan.NetnsName("t", name)
		links, procs := 0, 0
		for _, l := range cur.Links {
			if l.A.Netns == ns {
				links++
			}
		}
		for _, pr := range cur.Processes {
			if pr.Role == "pod" && pr.Name == name {
				procs++
			}
		}
		if links != 1 || procs != 1 {
			t.Fatalf("%s: %d links, %d agents", name, links, procs)
		}
	}
}

func TestCompareScaleDownRemovesHighestIndexes(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	cur := buildFrom(t, strings.Replace(liveBase(), "replicas: 3", "replicas: 1", 1), old)
	if got := podNames(cur); got != "web-1@node-1=10.244.1.2/24" {
		t.Fatalf("pods %s", got)
	}
	for _, l := range cur.Links {
		if strings.HasPrefix(l.A.Netns, plan.NetnsName("t", "web-2")) || strings.HasPrefix(l.A.Netns, plan.NetnsName("t", "web-3")) {
			t.Fatalf("link of a removed pod left: %+v", l)
		}
	}
	for _, n := range cur.Neighbors {
		if n.IP == "10.244.2.2" || n.IP == "10.244.1.3" {
			t.Fatalf("neighbour of a removed pod left: %+v", n)
		}
	}
}

func TestCompareTemplateChangeReplacesEveryPod(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	cur := buildFrom(t, strings.Replace(liveBase(), "labels: {app: web}}", "labels: {app: web, tier: front}}", 1), old)
	c, _ := mustCompare(t, old, cur).Find(plan.KindDeployment, "default", "web")
	if c.Action != plan.Configured || strings.Join(c.What, ",") != "template" {
		t.Fatalf("web: %+v", c)
	}
	// New names continue the sequence; no address of a leaving pod is reused.
	want := "web-4@node-1=10.244.1.5/24 web-5@node-2=10.244.2.4/24 web-6@node-1=10.244.1.6/24"
	if got := podNames(cur); got != want {
		t.Fatalf("pods %s\nwant %s", got, want)
	}
	if pod, _ := cur.PodByName("web-4"); pod.Labels["tier"] != "front" {
		t.Fatalf("new pods have the new template: %+v", pod.Labels)
	}
}

func TestCompareRolloutReconcileContinuesNames(t *testing.T) {
	p := mustPlan(t, liveBase(), "")
	d, _ := p.DeploymentByName("default", "web")
	d.Template = "restarted"
	d.Pod.Template = "restarted"
	added, removed, err := p.Reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 3 || len(removed) != 3 || added[0].Name != "web-4" || removed[0].Name != "web-1" {
		t.Fatalf("added %v removed %v", added, removed)
	}
}

func TestCompareServicesKeepAddressesAndNeverReuseHeldOnes(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	oldWeb, oldShop := old.Services[0], old.Services[1]
	// web is deleted and api created in the same change; shop gets a second port.
	edited := strings.Replace(liveBase(), "metadata: {name: web}\nspec:\n  selector", "metadata: {name: api}\nspec:\n  selector", 1)
	edited = strings.Replace(edited, "ports: [{name: http, port: 8080, targetPort: 8080}]",
		"ports: [{name: http, port: 8080, targetPort: 8080}, {name: alt, port: 8081, targetPort: 8080}]", 1)
	cur := buildFrom(t, edited, old)
	want := `lab.netlab.dev/t unchanged
deployment.apps/web unchanged
deployment.apps/coredns unchanged
service/api created
service/shop configured
service/web deleted
service/kube-dns unchanged
ingress.networking.k8s.io/app unchanged`
	cs := mustCompare(t, old, cur)
	if got := lines(cs); got != want {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, want)
	}
	var api, shop plan.Service
	for _, s := range cur.Services {
		switch s.Name {
		case "api":
			api = s
		case "shop":
			shop = s
		}
	}
	if shop.ClusterIP != oldShop.ClusterIP || shop.Ports[0].NodePort != oldShop.Ports[0].NodePort || shop.LoadBalancerIP != oldShop.LoadBalancerIP {
		t.Fatalf("shop's allocations moved: %+v → %+v", oldShop, shop)
	}
	if shop.Ports[1].NodePort == 0 || shop.Ports[1].NodePort == oldShop.Ports[0].NodePort {
		t.Fatalf("shop's new port: nodePort %d", shop.Ports[1].NodePort)
	}
	if api.ClusterIP == "" || api.ClusterIP == oldWeb.ClusterIP || api.ClusterIP == oldShop.ClusterIP {
		t.Fatalf("api got %s; web held %s, shop %s", api.ClusterIP, oldWeb.ClusterIP, oldShop.ClusterIP)
	}
	if c, _ := cs.Find(plan.KindService, "default", "shop"); strings.Join(c.What, ",") != "ports" {
		t.Fatalf("shop: %+v", c)
	}
}

func TestCompareIngressSecretAndLab(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	edited := strings.Replace(liveBase(), "scheduler: rr", "scheduler: wrr", 1)
	edited = strings.Replace(edited, "      - {path: /, pathType: Prefix",
		"      - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n      - {path: /, pathType: Prefix", 1)
	edited += `---
apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
stringData: {tls.crt: "x", tls.key: "y"}
`
	cur := buildFrom(t, edited, old)
	cs := mustCompare(t, old, cur)
	// shop is a LoadBalancer Service without a scheduler annotation: its virtual service
	// follows the Lab's scheduler, so it is configured too.
	want := `lab.netlab.dev/t configured
secret/tls created
deployment.apps/web unchanged
deployment.apps/coredns unchanged
service/shop configured
service/web unchanged
service/kube-dns unchanged
ingress.networking.k8s.io/app configured`
	if got := lines(cs); got != want {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, want)
	}
	if c, _ := cs.Find(plan.KindLab, "", "t"); strings.Join(c.What, ",") != "spec.loadBalancer.scheduler" {
		t.Fatalf("lab: %+v", c)
	}
	// Deleting everything but the Lab.
	empty := buildFrom(t, liveLab, cur)
	want = `lab.netlab.dev/t configured
secret/tls deleted
deployment.apps/web deleted
deployment.apps/coredns unchanged
service/shop deleted
service/web deleted
service/kube-dns unchanged
ingress.networking.k8s.io/app deleted`
	if got := lines(mustCompare(t, cur, empty)); got != want {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, want)
	}
	if podNames(empty) != "" || len(empty.Processes) == 0 {
		t.Fatalf("pods %d, processes %d", len(empty.Pods), len(empty.Processes))
	}
}

func TestCompareRefusesWhatCannotChangeLive(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	edited := strings.Replace(liveBase(), "{name: node-2, labels: {zone: b}}]", "{name: node-2, labels: {zone: b}}, {name: node-3}]", 1)
	edited = strings.Replace(edited, "  loadBalancer:", "  network: {mode: vxlan, podCIDR: 10.250.0.0/16}\n  kubeProxy: {mode: nftables}\n  loadBalancer:", 1)
	s, err := scenario.Parse("t.yaml", []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := Build(s, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = plan.Compare(old, cur)
	var re *plan.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, plan.ErrRefused) {
		t.Fatalf("err = %v, want a RefusedError", err)
	}
	var fields []string
	for _, r := range re.Refusals {
		fields = append(fields, r.Field)
	}
	if got := strings.Join(fields, ","); got != "spec.network.mode,spec.network.podCIDR,spec.kubeProxy.mode,spec.nodes" {
		t.Fatalf("refused fields %s", got)
	}
	for _, w := range []string{"spec.nodes: [node-1, node-2] → [node-1, node-2, node-3]", "spec.network.mode: host-gw → vxlan", "spec.kubeProxy.mode: iptables → nftables"} {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q lacks %q", err, w)
		}
	}
}

// Changed checks configure the Lab, and the new plan carries them.
func TestCompareChecksConfigureTheLab(t *testing.T) {
	old := mustPlan(t, liveBase(), "")
	withCheck := strings.Replace(liveBase(), "spec:\n", "spec:\n  checks: [{url: \"http://shop.example/\"}]\n", 1)
	cur := buildFrom(t, withCheck, old)
	cs := mustCompare(t, old, cur)
	if got := lines(cs); !strings.HasPrefix(got, "lab.netlab.dev/t configured") {
		t.Fatalf("changes:\n%s", got)
	}
	var c scenario.Check
	if len(cur.Checks) != 1 || json.Unmarshal(cur.Checks[0], &c) != nil || c.URL != "http://shop.example/" {
		t.Fatalf("checks of the new plan: %s", cur.Checks)
	}
}

// equalJSON says whether a and b marshal to the same JSON (as plan.Compare compares).
func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
