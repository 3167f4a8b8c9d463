package planbuild

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func mustPlan(t *testing.T, yaml, name string) *plan.Plan {
	t.Helper()
	var s *scenario.Scenario
	var err error
	if yaml == "" {
		s, err = scenario.Load(nil)
	} else {
		s, err = scenario.Parse("t.yaml", []byte(yaml))
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func planErr(t *testing.T, yaml string) string {
	t.Helper()
	s, err := scenario.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(s, "")
	if err == nil {
		t.Fatal("Build succeeded, want an error")
	}
	return err.Error()
}

func TestDefaultPlanGolden(t *testing.T) {
	got, err := json.MarshalIndent(mustPlan(t, "", ""), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "default.golden.json")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("default plan differs from %s (-want +got):\n%s", golden, d)
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	a, _ := json.Marshal(mustPlan(t, "", "x"))
	for i := 0; i < 5; i++ {
		b, _ := json.Marshal(mustPlan(t, "", "x"))
		if string(a) != string(b) {
			t.Fatal("two builds of the same scenario differ")
		}
	}
}

func TestDefaultPlacementAndAddresses(t *testing.T) {
	p := mustPlan(t, "", "")
	want := map[string]string{"web-1": "node-1 10.244.1.2/24", "web-2": "node-2 10.244.2.2/24", "web-3": "node-1 10.244.1.3/24",
		"api-1": "node-2 10.244.2.3/24", "api-2": "node-1 10.244.1.4/24",
		// The cluster DNS's pods come after the scenario's, one on each node.
		"coredns-1": "node-2 10.244.2.4/24", "coredns-2": "node-1 10.244.1.5/24"}
	for _, pod := range p.Pods {
		if got := pod.Node + " " + pod.IP; got != want[pod.Name] {
			t.Errorf("pod %s: %s, want %s", pod.Name, got, want[pod.Name])
		}
		if pod.Netns != "nl-demo-"+pod.Name {
			t.Errorf("pod %s namespace %s", pod.Name, pod.Netns)
		}
		if len(pod.HostVeth) > scenario.MaxIfaceName {
			t.Errorf("host veth %s is longer than IFNAMSIZ", pod.HostVeth)
		}
	}
	if p.LB.WanIP != "203.0.113.1/24" || p.LB.FabricIP != "172.18.0.1/24" || p.Clients[0].IP != "203.0.113.2/24" {
		t.Errorf("lb %s %s client %s", p.LB.WanIP, p.LB.FabricIP, p.Clients[0].IP)
	}
	if p.Nodes[1].IP != "172.18.0.12/24" || p.Nodes[1].PodCIDR != "10.244.2.0/24" || p.Nodes[1].Gateway != "10.244.2.1/24" {
		t.Errorf("node-2: %+v", p.Nodes[1])
	}
	// The client reaches nodes through the LB and has no route to pods.
	for _, r := range p.Routes {
		if r.Netns == p.Clients[0].Netns && (r.Dst == "default" || strings.HasPrefix(r.Dst, "10.244.")) {
			t.Errorf("client route %+v", r)
		}
	}
	if got := p.Links[0].A.Addrs; len(got) != 2 || got[1] != "203.0.113.100/32" {
		t.Errorf("lb wan addresses %v, want the VIP as a /32", got)
	}
}

const lab3 = `apiVersion: netlab.dev/v1alpha1
kind: Lab
spec:
  nodes:
  - {name: a, labels: {disk: ssd}}
  - {name: b}
  - {name: c, labels: {disk: ssd}}
  clients: [{name: c1}, {name: c2, ip: 203.0.113.3}, {name: c3}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 4
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      nodeSelector: {disk: ssd}
      containers: [{name: db, ports: [{containerPort: 5432}, {name: dns, containerPort: 53, protocol: UDP}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: pinned}
spec:
  replicas: 2
  selector: {matchLabels: {app: pinned}}
  template:
    metadata: {labels: {app: pinned}}
    spec:
      nodeName: b
      containers: [{name: p, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  type: LoadBalancer
  selector: {app: db}
  externalTrafficPolicy: Local
  ports: [{name: pg, port: 5432}, {name: dns, port: 53, targetPort: dns, protocol: UDP, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: pinned, annotations: {netlab.dev/lb-scheduler: sh}}
spec:
  type: LoadBalancer
  loadBalancerIP: 203.0.113.101
  selector: {app: pinned}
  ports: [{port: 80}]
`

func TestPlacementSelectorsAndAllocation(t *testing.T) {
	p := mustPlan(t, lab3, "")
	nodeOf := map[string]string{}
	for _, pod := range p.Pods {
		nodeOf[pod.Name] = pod.Node
	}
	want := map[string]string{"db-1": "a", "db-2": "c", "db-3": "a", "db-4": "c", "pinned-1": "b", "pinned-2": "b",
		"coredns-1": "a", "coredns-2": "b"}
	if d := cmp.Diff(want, nodeOf); d != "" {
		t.Errorf("placement (-want +got):\n%s", d)
	}
	// Clients: explicit .3 kept, the others fill .2 and .4.
	var ips []string
	for _, c := range p.Clients {
		ips = append(ips, c.IP)
	}
	if d := cmp.Diff([]string{"203.0.113.2/24", "203.0.113.3/24", "203.0.113.4/24"}, ips); d != "" {
		t.Errorf("client addresses (-want +got):\n%s", d)
	}
	svc := map[string]plan.Service{}
	for _, s := range p.Services {
		svc[s.Name] = s
	}
	db := svc["db"]
	// 30080 is taken explicitly by db's dns port, so the allocator skips it.
	if db.Ports[0].NodePort != 30081 || db.Ports[1].NodePort != 30080 || db.HealthCheckNodePort != 30082 {
		t.Errorf("db node ports %+v hc %d", db.Ports, db.HealthCheckNodePort)
	}
	// .101 is pinned by the other Service, so db gets .102.
	if db.LoadBalancerIP != "203.0.113.102" || svc["pinned"].LoadBalancerIP != "203.0.113.101" {
		t.Errorf("LB IPs db=%s pinned=%s", db.LoadBalancerIP, svc["pinned"].LoadBalancerIP)
	}
	if len(db.Endpoints) != 8 {
		t.Errorf("db endpoints: %d, want 4 pods x 2 ports", len(db.Endpoints))
	}
	for _, e := range db.Endpoints {
		if e.PortName == "dns" && (e.Port != 53 || e.Protocol != "UDP") {
			t.Errorf("named targetPort resolved to %+v", e)
		}
	}
	var sched []string
	for _, vs := range p.LB.VIPs {
		sched = append(sched, vs.Name+"="+vs.Scheduler)
		if vs.Service == "default/db" && vs.CheckPort != db.HealthCheckNodePort {
			t.Errorf("ETP Local VIP %s checks port %d, want the healthCheckNodePort", vs.Name, vs.CheckPort)
		}
	}
	if d := cmp.Diff([]string{"ingress-http=rr", "ingress-https=rr", "default/db:pg=rr", "default/db:dns=rr", "default/pinned:80=sh"}, sched); d != "" {
		t.Errorf("virtual services (-want +got):\n%s", d)
	}
}

func TestIPAMLimits(t *testing.T) {
	small := `apiVersion: netlab.dev/v1alpha1
kind: Lab
spec:
  nodes: 4
  network: {podCIDR: 10.244.0.0/23}
`
	if got := planErr(t, small); !strings.Contains(got, "10.244.0.0/23 has 2 /24 slices; 4 nodes need 5") {
		t.Errorf("pod CIDR too small: %s", got)
	}
	full := `apiVersion: netlab.dev/v1alpha1
kind: Lab
spec:
  nodes: 1
  network: {nodePodMaskSize: 29}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  replicas: 6
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec: {containers: [{name: w, ports: [{containerPort: 80}]}]}
`
	// A /29 holds 6 hosts: cni0 takes one, so 5 pods fit and the 6th does not.
	if got := planErr(t, full); !strings.Contains(got, "t.yaml: Deployment default/w: spec.replicas: node node-1's pod CIDR 10.244.0.8/29 is full") {
		t.Errorf("pod slice full: %s", got)
	}
	nodes := `apiVersion: netlab.dev/v1alpha1
kind: Lab
spec:
  nodes: 8
  network: {nodeCIDR: 172.18.0.0/28}
`
	if got := planErr(t, nodes); !strings.Contains(got, "172.18.0.0/28 holds 14 hosts") {
		t.Errorf("node CIDR too small: %s", got)
	}
}

func TestLabNames(t *testing.T) {
	for _, ok := range []string{"demo", "a", "lab2", "smoke12345"} {
		if err := plan.CheckLabName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "my-lab", "Demo", "1lab", "lab_x", strings.Repeat("a", 25)} {
		if err := plan.CheckLabName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if plan.HostVethName("demo", "web-1") == plan.HostVethName("demo2", "web-1") {
		t.Error("host veth names must differ between labs")
	}
}

// vxlan mode: every node gets a flannel-style VTEP; other nodes' slices are routed onlink
// through it, with permanent neighbour and FDB entries, and pods get room for the headers.
func TestVXLANPlan(t *testing.T) {
	p := mustPlan(t, `apiVersion: netlab.dev/v1alpha1
kind: Lab
spec:
  nodes: 3
  network: {mode: vxlan}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  replicas: 3
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec: {containers: [{name: w, ports: [{containerPort: 80}]}]}
`, "")
	n1 := p.Nodes[0]
	if n1.VTEP == nil || n1.VTEP.Addr != "10.244.1.0/32" || n1.VTEP.Dev != "flannel.1" || n1.VTEP.Port != 8472 || n1.VTEP.MTU != 1450 {
		t.Fatalf("node-1 VTEP %+v", n1.VTEP)
	}
	var routes, fdb []string
	for _, r := range p.Routes {
		if r.Netns == n1.Netns && r.Dst != "default" {
			routes = append(routes, fmt.Sprintf("%s via %s dev %s onlink=%v", r.Dst, r.Via, r.Dev, r.Onlink))
		}
	}
	for _, f := range p.FDB {
		if f.Netns == n1.Netns {
			fdb = append(fdb, f.MAC+" dst "+f.Dst)
		}
	}
	wantRoutes := []string{"10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink=true", "10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink=true"}
	if d := cmp.Diff(wantRoutes, routes); d != "" {
		t.Errorf("node-1 routes (-want +got):\n%s", d)
	}
	wantFDB := []string{p.Nodes[1].VTEP.MAC + " dst 172.18.0.12", p.Nodes[2].VTEP.MAC + " dst 172.18.0.13"}
	if d := cmp.Diff(wantFDB, fdb); d != "" {
		t.Errorf("node-1 fdb (-want +got):\n%s", d)
	}
	for _, l := range p.Links {
		if l.B.Master == plan.BridgeCNI && (l.A.MTU != 1450 || l.B.MTU != 1450) {
			t.Errorf("pod link %s MTU %d/%d, want 1450", l.A.Netns, l.A.MTU, l.B.MTU)
		}
	}
	// host-gw (the default) has none of it.
	if hg := mustPlan(t, "", ""); hg.Nodes[0].VTEP != nil || len(hg.FDB) != 0 {
		t.Error("host-gw plan has VXLAN parts")
	}
}
