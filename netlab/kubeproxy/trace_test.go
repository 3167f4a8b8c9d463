package kubeproxy

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The address plan is in fixture_test.go.

const (
	clientPod1 = "10.244.1.50" // a pod on node-1 that backs no Service
	clientPod2 = "10.244.2.50"
)

func envFor(n Node) traceEnv {
	cni := map[string]string{"node-1": "10.244.1.1", "node-2": "10.244.2.1"}[n.Name]
	return traceEnv{localIPs: []string{n.IP, cni}}
}

func trace(t *testing.T, n Node, pkt packet, env traceEnv) []outcome {
	t.Helper()
	rs, err := parseRules(Render(n, fixturePorts(), nil))
	if err != nil {
		t.Fatalf("parse rendered rules: %v", err)
	}
	outs, err := rs.trace(pkt, env)
	if err != nil {
		t.Fatalf("trace %+v: %v", pkt, err)
	}
	sum := 0.0
	for _, o := range outs {
		sum += o.Probability
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Fatalf("outcome probabilities sum to %v, not 1: %+v", sum, outs)
	}
	return outs
}

func tcp(src, dst string, port int) packet {
	return packet{Src: src, Dst: dst, DPort: port, Proto: "tcp"}
}

func verdicts(outs []outcome) []string {
	var v []string
	for _, o := range outs {
		v = append(v, o.Verdict)
	}
	slices.Sort(v)
	return slices.Compact(v)
}

func masqByTarget(outs []outcome) map[string]bool {
	m := map[string]bool{}
	for _, o := range outs {
		m[o.DNAT] = o.Masquerade
	}
	return m
}

func wantTargets(t *testing.T, outs []outcome, want ...string) {
	t.Helper()
	if d := cmp.Diff(want, dnatTargets(outs)); d != "" {
		t.Errorf("DNAT targets (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"ACCEPT"}, verdicts(outs)); d != "" {
		t.Errorf("verdicts (-want +got):\n%s", d)
	}
}

var webTargets = []string{web1 + ":8080", web2 + ":8080", web3 + ":8080"}

func TestTraceClusterIPReachesAllReadyEndpoints(t *testing.T) {
	for _, n := range []Node{node1, node2} {
		outs := trace(t, n, tcp(clientPod1, webIP, 80), envFor(n))
		wantTargets(t, outs, webTargets...) // web-4 is not ready: never chosen
		for _, o := range outs {
			if math.Abs(o.Probability-1.0/3) > 1e-6 {
				t.Errorf("%s: endpoint %s chosen with probability %v, want 1/3", n.Name, o.DNAT, o.Probability)
			}
			if o.Masquerade {
				t.Errorf("%s: pod-to-ClusterIP traffic to %s masqueraded", n.Name, o.DNAT)
			}
		}
	}
}

func TestTraceNotReadyEndpointExcluded(t *testing.T) {
	outs := trace(t, node1, tcp(clientPod1, webIP, 443), envFor(node1))
	if slices.Contains(dnatTargets(outs), web4+":8443") {
		t.Errorf("not-ready endpoint %s chosen", web4)
	}
	wantTargets(t, outs, web1+":8443", web2+":8443", web3+":8443")
}

func TestTraceOffClusterSourceToClusterIPIsMasqueraded(t *testing.T) {
	for _, pkt := range []packet{
		tcp(clientIP, webIP, 80), // routed to the node from outside the cluster
		{Src: node1IP, Dst: webIP, DPort: 80, Proto: "tcp", FromLocalProcess: true}, // the node itself
	} {
		outs := trace(t, node1, pkt, envFor(node1))
		wantTargets(t, outs, webTargets...)
		for _, o := range outs {
			if !o.Masquerade {
				t.Errorf("%s -> %s: not masqueraded", pkt.Src, o.DNAT)
			}
		}
	}
}

func TestTraceHairpinMasquerades(t *testing.T) {
	// web-1 calls its own Service: only the branch that lands on itself is masqueraded,
	// so the reply comes back through the node instead of short-cutting inside the pod.
	outs := trace(t, node1, tcp(web1, webIP, 80), envFor(node1))
	want := map[string]bool{web1 + ":8080": true, web2 + ":8080": false, web3 + ":8080": false}
	if d := cmp.Diff(want, masqByTarget(outs)); d != "" {
		t.Errorf("masquerade by target (-want +got):\n%s", d)
	}
}

func TestTraceNoEndpointsRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkt  packet
	}{
		{"cluster IP from a pod", tcp(clientPod1, emptyIP, 80)},
		{"cluster IP from the node", packet{Src: node1IP, Dst: emptyIP, DPort: 80, Proto: "tcp", FromLocalProcess: true}},
		{"node port", tcp(clientIP, node1IP, 30030)},
		{"external IP", tcp(clientIP, "198.51.100.30", 80)},
	} {
		outs := trace(t, node1, tc.pkt, envFor(node1))
		if d := cmp.Diff([]string{"REJECT"}, verdicts(outs)); d != "" {
			t.Errorf("%s: verdicts (-want +got):\n%s", tc.name, d)
		}
		if len(dnatTargets(outs)) != 0 {
			t.Errorf("%s: DNATed to %v", tc.name, dnatTargets(outs))
		}
	}
}

func TestTraceNodePort(t *testing.T) {
	for _, n := range []Node{node1, node2} {
		outs := trace(t, n, tcp(clientIP, n.IP, 30080), envFor(n))
		wantTargets(t, outs, webTargets...)
		for _, o := range outs {
			if !o.Masquerade {
				t.Errorf("%s: NodePort traffic with Cluster policy to %s not masqueraded", n.Name, o.DNAT)
			}
		}
		// Another node's address is not a NodePort here.
		other := node2IP
		if n.Name == "node-2" {
			other = node1IP
		}
		if got := dnatTargets(trace(t, n, tcp(clientIP, other, 30080), envFor(n))); len(got) != 0 {
			t.Errorf("%s: traffic to %s:30080 DNATed to %v", n.Name, other, got)
		}
	}
}

func TestTraceExternalTrafficPolicyLocal(t *testing.T) {
	local := "10.244.2.5:8080"
	// node-2 holds the only endpoint: external clients reach it unmasqueraded (the pod
	// sees the client address), through the NodePort and the LB VIP alike.
	for _, pkt := range []packet{tcp(clientIP, node2IP, 30090), tcp(clientIP, lbVIP, 80)} {
		outs := trace(t, node2, pkt, envFor(node2))
		wantTargets(t, outs, local)
		for _, o := range outs {
			if o.Masquerade {
				t.Errorf("node-2 %s:%d: ETP Local traffic masqueraded", pkt.Dst, pkt.DPort)
			}
		}
	}
	// node-1 has no local endpoint: external traffic is dropped, not sent across nodes.
	for _, pkt := range []packet{tcp(clientIP, node1IP, 30090), tcp(clientIP, lbVIP, 80)} {
		outs := trace(t, node1, pkt, envFor(node1))
		if d := cmp.Diff([]string{"DROP"}, verdicts(outs)); d != "" {
			t.Errorf("node-1 %s:%d: verdicts (-want +got):\n%s", pkt.Dst, pkt.DPort, d)
		}
	}
	// Pods and the node itself are not external: they still reach the remote endpoint.
	outs := trace(t, node1, tcp(clientPod1, lbVIP, 80), envFor(node1))
	wantTargets(t, outs, local)
	if outs[0].Masquerade {
		t.Errorf("pod traffic to the VIP masqueraded")
	}
	outs = trace(t, node1, packet{Src: node1IP, Dst: node1IP, DPort: 30090, Proto: "tcp", FromLocalProcess: true}, envFor(node1))
	wantTargets(t, outs, local)
	if !outs[0].Masquerade {
		t.Errorf("node-local traffic to its own NodePort not masqueraded")
	}
	// The health check node port is open on every node.
	for _, n := range []Node{node1, node2} {
		outs := trace(t, n, tcp(clientIP, n.IP, 32000), envFor(n))
		if d := cmp.Diff([]string{"ACCEPT"}, verdicts(outs)); d != "" {
			t.Errorf("%s health check port: (-want +got):\n%s", n.Name, d)
		}
	}
}

func TestTraceInternalTrafficPolicyLocal(t *testing.T) {
	wantTargets(t, trace(t, node1, tcp(clientPod1, itpIP, 80), envFor(node1)), "10.244.1.40:80")
	outs := trace(t, node2, tcp(clientPod2, itpIP, 80), envFor(node2))
	if d := cmp.Diff([]string{"DROP"}, verdicts(outs)); d != "" {
		t.Errorf("node-2 has no local endpoint: verdicts (-want +got):\n%s", d)
	}
}

func TestTraceClientIPAffinity(t *testing.T) {
	first := trace(t, node1, tcp(clientPod1, apiIP, 8080), envFor(node1))
	wantTargets(t, first, "10.244.1.3:8080", "10.244.2.4:8080")
	for _, o := range first {
		sep := SEPChain("default/api", "tcp", o.DNAT)
		if d := cmp.Diff([]string{sep}, o.RecentSet); d != "" || o.Affinity != "" {
			t.Errorf("first connection to %s: recent lists set %v (want %s), affinity %q", o.DNAT, o.RecentSet, sep, o.Affinity)
		}
	}
	// Once the client is in an endpoint's recent list, every connection goes there.
	for _, chosen := range first {
		env := envFor(node1)
		env.recent = map[string][]string{chosen.RecentSet[0]: {clientPod1}}
		again := trace(t, node1, tcp(clientPod1, apiIP, 8080), env)
		if len(again) != 1 || again[0].DNAT != chosen.DNAT || again[0].Affinity != chosen.RecentSet[0] || again[0].AffinitySeconds != 10800 {
			t.Errorf("sticky to %s: got %+v", chosen.DNAT, again)
		}
		// Another client is not affected.
		wantTargets(t, trace(t, node1, tcp(clientPod2, apiIP, 8080), env), "10.244.1.3:8080", "10.244.2.4:8080")
	}
}

func TestTraceUDP(t *testing.T) {
	outs := trace(t, node1, packet{Src: clientPod1, Dst: dnsIP, DPort: 53, Proto: "udp"}, envFor(node1))
	wantTargets(t, outs, "10.244.1.10:5353", "10.244.2.10:5353")
	if got := dnatTargets(trace(t, node1, tcp(clientPod1, dnsIP, 53), envFor(node1))); len(got) != 0 {
		t.Errorf("TCP to a UDP-only Service port DNATed to %v", got)
	}
}

func TestTraceExternalIP(t *testing.T) {
	outs := trace(t, node1, tcp(clientIP, externIP, 80), envFor(node1))
	wantTargets(t, outs, "10.244.2.60:80")
	if !outs[0].Masquerade {
		t.Errorf("external IP traffic with Cluster policy not masqueraded")
	}
}

func TestTraceUnrelatedTrafficUntouched(t *testing.T) {
	outs := trace(t, node1, tcp(clientPod1, "10.244.2.2", 8080), envFor(node1))
	if len(outs) != 1 || outs[0].DNAT != "" || outs[0].Masquerade || outs[0].Verdict != "ACCEPT" {
		t.Errorf("pod-to-pod traffic changed: %+v", outs)
	}
}

func TestParseRulesRejectsWhatItCannotTrace(t *testing.T) {
	for _, in := range []string{
		"*nat\n:X - [0:0]\n-A X -m set --match-set foo src -j ACCEPT\nCOMMIT\n",
		"*nat\n-A NOPE -j ACCEPT\nCOMMIT\n",
		"*nat\n:X - [0:0]\n-A X -j MISSING\nCOMMIT\n",
		"*nat\n:X - [0:0]\n-A X -m comment --comment \"open -j ACCEPT\nCOMMIT\n",
	} {
		if _, err := parseRules([]byte(in)); err == nil {
			t.Errorf("parseRules accepted %q", strings.TrimSpace(in))
		}
	}
}

// testdata/node-1.iptables-save is what the kernel (iptables 1.8.9, nf_tables) gave back
// after restoring testdata/node-1.golden in a scratch namespace and inserting JumpRules
// with iptables -I CHAIN 1: the kernel reorders matches and adds /32, so tracing it
// checks that the rules mean the same after the round trip.
func TestTraceSameAfterKernelRoundTrip(t *testing.T) {
	saved, err := os.ReadFile("testdata/node-1.iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := parseSave(saved)
	if err != nil {
		t.Fatalf("parse iptables-save: %v", err)
	}
	rendered, err := parseRules(Render(node1, fixturePorts(), existingChains))
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Verdict, DNAT string
		Masq          bool
		P             string
	}
	sum := func(outs []outcome) []summary {
		var s []summary
		for _, o := range outs {
			s = append(s, summary{o.Verdict, o.DNAT, o.Masquerade, strconv.FormatFloat(o.Probability, 'f', 6, 64)})
		}
		slices.SortFunc(s, func(a, b summary) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		return s
	}
	env := envFor(node1)
	for _, pkt := range []packet{
		tcp(clientPod1, webIP, 80), tcp(web1, webIP, 80), tcp(clientIP, webIP, 80), tcp(clientIP, node1IP, 30080),
		tcp(clientIP, node1IP, 30090), tcp(clientIP, lbVIP, 80), tcp(clientPod1, lbVIP, 80), tcp(clientPod1, emptyIP, 80),
		tcp(clientIP, node1IP, 30030), tcp(clientPod1, itpIP, 80), tcp(clientPod1, apiIP, 8080), tcp(clientIP, externIP, 80),
		{Src: clientPod1, Dst: dnsIP, DPort: 53, Proto: "udp"}, tcp(clientIP, node1IP, 32000),
		{Src: node1IP, Dst: node1IP, DPort: 30090, Proto: "tcp", FromLocalProcess: true},
	} {
		a, err := rendered.trace(pkt, env)
		if err != nil {
			t.Fatal(err)
		}
		b, err := kernel.trace(pkt, env)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(sum(a), sum(b)); d != "" {
			t.Errorf("%+v: rendered vs kernel (-rendered +kernel):\n%s", pkt, d)
		}
	}
}
