package lab

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/capture"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// The hops that need no kernel (the sender, the network between nodes, the answer) and the
// plan lookups every hop uses, on planned labs; the hops that read conntrack and the
// ingress's log are tested on real labs (trace_integration_test.go).

func planOf(t *testing.T, file string) *plan.Plan {
	t.Helper()
	var s *scenario.Scenario
	var err error
	if file == "" {
		s, err = scenario.Load(nil)
	} else {
		var b []byte
		if b, err = os.ReadFile(file); err == nil {
			s, err = scenario.Parse(file, b)
		}
	}
	if err == nil {
		err = scenario.Validate(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := planbuild.Build(s, "h2unit")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testTracer(t *testing.T, p *plan.Plan, rawURL string) *tracer {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return &tracer{labName: p.Lab, p: p, u: u, from: p.Clients[0].Name, fromNS: p.Clients[0].Netns,
		host: u.Hostname(), tr: &Trace{}, flows: map[capture.Flow]bool{}, inner: map[capture.Flow]bool{}}
}

func podOn(t *testing.T, p *plan.Plan, node string) plan.Pod {
	t.Helper()
	for _, pod := range p.Pods {
		if pod.Node == node && pod.Agent == "" {
			return pod
		}
	}
	t.Fatalf("no echo pod on %s", node)
	return plan.Pod{}
}

func TestClientHop(t *testing.T) {
	p := planOf(t, "")
	for _, tc := range []struct {
		url     string
		details bool
	}{{"http://app.example/", true}, {"tcp://" + p.LB.VIP + ":80", false}} {
		tr := testTracer(t, p, tc.url)
		tr.reqID = "trace-0123"
		tr.local = netip.MustParseAddrPort(plan.Addr(p.Clients[0].IP) + ":40000")
		tr.target = netip.MustParseAddrPort(p.LB.VIP + ":80")
		tr.dst = tr.target.Addr()
		tr.clientHop()
		if len(tr.tr.Hops) != 1 {
			t.Fatalf("%s: hops %+v", tc.url, tr.tr.Hops)
		}
		h := tr.tr.Hops[0]
		want := fmt.Sprintf("%s %s → %s %s", tr.from, tr.local, tr.target, tr.u.Scheme)
		if h.Step != stepClient || !strings.HasPrefix(h.Summary, want) {
			t.Errorf("%s: step %d summary %q, want step %d starting %q", tc.url, h.Step, h.Summary, stepClient, want)
		}
		if got := len(h.Details) > 0 && strings.Contains(h.Details[0], "X-Request-ID trace-0123"); got != tc.details {
			t.Errorf("%s: details %q, X-Request-ID wanted: %v", tc.url, h.Details, tc.details)
		}
		if !tr.flows[capture.Flow{A: tr.local, B: tr.target}.Key()] {
			t.Errorf("%s: the client's flow is not recorded", tc.url)
		}
	}
}

func TestNetworkHop(t *testing.T) {
	for _, tc := range []struct {
		name, file, entry, podNode, want string
	}{
		{"same node", "", "node-1", "node-1", "is on node-1 itself: bridged on cni0"},
		{"host-gw", "", "node-1", "node-2", "(host-gw), then cni0 on node-2"},
		{"vxlan", "../../scenarios/vxlan.yaml", "node-1", "node-2", "onlink (vxlan: VNI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planOf(t, tc.file)
			tr := testTracer(t, p, "http://app.example/")
			tr.entryNode, tr.entryNS = tc.entry, plan.NetnsName(p.Lab, tc.entry)
			pod := podOn(t, p, tc.podNode)
			tr.echo = podEcho{Pod: pod.Name, Node: pod.Node, PodIP: plan.Addr(pod.IP), Port: 8080}
			tr.networkHop()
			if len(tr.tr.Hops) != 1 {
				t.Fatalf("hops %+v", tr.tr.Hops)
			}
			h := tr.tr.Hops[0]
			if h.Step != stepNetwork || !strings.Contains(h.Summary, tc.want) {
				t.Errorf("summary %q, want it to say %q", h.Summary, tc.want)
			}
			if tc.podNode != tc.entry && h.Namespace != plan.NetnsName(p.Lab, tc.podNode) {
				t.Errorf("namespace %s, want the pod's node's", h.Namespace)
			}
		})
	}
}

func TestAnswerHop(t *testing.T) {
	p := planOf(t, "")
	pod := podOn(t, p, "node-2")
	tr := testTracer(t, p, "http://app.example/")
	tr.answerHop()
	if len(tr.tr.Hops) != 0 || tr.tr.Answer != nil {
		t.Errorf("no answer: hops %+v answer %+v, want none", tr.tr.Hops, tr.tr.Answer)
	}
	tr.status, tr.body, tr.entryNode = "503 Service Unavailable", []byte("no endpoints\nmore"), "node-1"
	tr.answerHop()
	if len(tr.tr.Hops) != 1 || !strings.Contains(tr.tr.Hops[0].Summary, "not from a pod: no endpoints") || tr.tr.Answer != nil {
		t.Errorf("an answer from no pod: hops %+v answer %+v", tr.tr.Hops, tr.tr.Answer)
	}
	tr = testTracer(t, p, "http://app.example/")
	tr.status = "200 OK"
	tr.echo = podEcho{Pod: pod.Name, Node: pod.Node, PodIP: plan.Addr(pod.IP), Port: 8080, ClientIP: "172.18.0.11", ClientPort: 5000}
	tr.answerHop()
	want := fmt.Sprintf("pod %s on %s (%s:8080) answered 200 OK; it saw client 172.18.0.11:5000", pod.Name, pod.Node, plan.Addr(pod.IP))
	if len(tr.tr.Hops) != 1 || tr.tr.Hops[0].Summary != want || tr.tr.Hops[0].Step != stepPod {
		t.Errorf("hops %+v, want one saying %q", tr.tr.Hops, want)
	}
	if a := tr.tr.Answer; a == nil || a.Pod != pod.Name || a.ClientIP != "172.18.0.11" {
		t.Errorf("answer %+v", a)
	}
}

// The plan lookups the hops use: VIPs, nodes by name and address, Services by the
// destination a packet had, and kube-proxy's chain path to an endpoint.
func TestTraceLookups(t *testing.T) {
	p := planOf(t, "")
	vs := p.LB.VIPs[0]
	if got, ok := findVIP(p, netip.MustParseAddrPort(fmt.Sprintf("%s:%d", vs.IP, vs.Port))); !ok || got.Name != vs.Name {
		t.Errorf("findVIP of %s:%d: %v %v", vs.IP, vs.Port, got.Name, ok)
	}
	if _, ok := findVIP(p, netip.MustParseAddrPort(vs.IP+":1")); ok {
		t.Error("findVIP found a virtual service on port 1")
	}
	n2 := p.Nodes[1]
	if got := nodeByIP(p, netip.MustParseAddr(plan.Addr(n2.IP))); got != n2.Name {
		t.Errorf("nodeByIP(%s) = %q", n2.IP, got)
	}
	pod := podOn(t, p, n2.Name)
	if nodeOf(p, pod.Name) != n2.Name || nodeOf(p, n2.Name) != n2.Name || nodeOf(p, p.Clients[0].Name) != "" {
		t.Error("nodeOf: a pod's node, a node itself, nothing for a client")
	}
	if objectIP(p, pod.Name).String() != plan.Addr(pod.IP) {
		t.Errorf("objectIP(%s) = %s", pod.Name, objectIP(p, pod.Name))
	}
	var svc *plan.Service
	for i := range p.Services {
		if p.Services[i].ClusterIP != "" && len(p.Services[i].Ports) > 0 {
			svc = &p.Services[i]
			break
		}
	}
	if svc == nil {
		t.Fatal("no Service with a cluster IP in the default lab")
	}
	sp := svc.Ports[0]
	dst := netip.MustParseAddrPort(fmt.Sprintf("%s:%d", svc.ClusterIP, sp.Port))
	got, gotSP := serviceFor(p, dst, n2.Name)
	if got == nil || got.Name != svc.Name || gotSP.Port != sp.Port {
		t.Fatalf("serviceFor(%s) = %v", dst, got)
	}
	if k := svcKind(got, dst); k != "cluster IP" {
		t.Errorf("svcKind of a cluster IP: %q", k)
	}
	spn := svc.Namespace + "/" + svc.Name + ":" + sp.Name
	path := chainPath(svc, spn, sp.Protocol, "cluster IP", "10.244.1.2:8080")
	if len(path) != 3 || path[0] != kubeproxy.ChainServices || path[2] != kubeproxy.SEPChain(spn, sp.Protocol, "10.244.1.2:8080") {
		t.Errorf("chain path of a cluster IP: %v", path)
	}
	path = chainPath(svc, spn, sp.Protocol, "node port", "10.244.1.2:8080")
	if len(path) != 5 || path[1] != kubeproxy.ChainNodePorts || path[2] != kubeproxy.EXTChain(spn, sp.Protocol) {
		t.Errorf("chain path of a node port: %v", path)
	}
}
