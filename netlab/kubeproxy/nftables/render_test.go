package nftables

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// The node and Services of kube-proxy's TestOverallNFTablesRules.
var testNode = kubeproxy.Node{Name: "test-node", IP: "192.168.0.2", ClusterCIDR: "10.0.0.0/8", ServiceCIDR: "172.30.0.0/16"}

func ep(ip string, port int32, node string) kubeproxy.Endpoint {
	return kubeproxy.Endpoint{Pod: "p-" + ip, Node: node, IP: ip, Port: port, Ready: true}
}

func overallPorts() []kubeproxy.ServicePort {
	sp := func(ns, name, clusterIP string, eps ...kubeproxy.Endpoint) kubeproxy.ServicePort {
		return kubeproxy.ServicePort{Namespace: ns, Name: name, PortName: "p80", Protocol: "TCP",
			ClusterIP: clusterIP, Port: 80, Endpoints: eps}
	}
	svc1 := sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1", 80, ""))
	// Local policy, its only endpoint on another node.
	svc2 := sp("ns2", "svc2", "172.30.0.42", ep("10.180.0.2", 80, ""))
	svc2.NodePort, svc2.LoadBalancerIPs, svc2.ExternalIPs = 3001, []string{"1.2.3.4"}, []string{"192.168.99.22"}
	svc2.ExternalLocal, svc2.HealthCheckNodePort = true, 30000
	svc3 := sp("ns3", "svc3", "172.30.0.43", ep("10.180.0.3", 80, ""))
	svc3.NodePort = 3003
	svc4 := sp("ns4", "svc4", "172.30.0.44", ep("10.180.0.5", 80, "test-node"), ep("10.180.0.4", 80, ""))
	svc4.ExternalIPs = []string{"192.168.99.33"}
	svc5 := sp("ns5", "svc5", "172.30.0.45", ep("10.180.0.3", 80, ""))
	svc5.NodePort, svc5.LoadBalancerIPs = 3002, []string{"5.6.7.8"}
	svc5.LoadBalancerSourceRanges = []string{" 203.0.113.0/25"}
	svc5.AffinityClientIP, svc5.AffinitySeconds = true, 10800
	svc6 := sp("ns6", "svc6", "172.30.0.46")
	return []kubeproxy.ServicePort{svc6, svc5, svc4, svc3, svc2, svc1}
}

// normalized splits nft command text into its lines as a sorted set (comments and blank
// lines dropped) and, per chain, its rules in order.
func normalized(t *testing.T, text []byte) (lines []string, rules map[string][]string) {
	t.Helper()
	rules = map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
		if rest, ok := strings.CutPrefix(l, "add rule ip kube-proxy "); ok {
			chain, rule, _ := strings.Cut(rest, " ")
			rules[chain] = append(rules[chain], rule)
		}
	}
	slices.Sort(lines)
	return lines, rules
}

func assertSameTable(t *testing.T, want, got []byte) {
	t.Helper()
	wl, wr := normalized(t, want)
	gl, gr := normalized(t, got)
	if d := cmp.Diff(wl, gl); d != "" {
		t.Errorf("lines differ (-kube-proxy +netlab):\n%s", d)
	}
	if d := cmp.Diff(wr, gr); d != "" {
		t.Errorf("rule order differs (-kube-proxy +netlab):\n%s", d)
	}
}

// The table for kube-proxy's own TestOverallNFTablesRules Services reads exactly as
// kube-proxy's expected dump.
func TestOverallMatchesKubeProxy(t *testing.T) {
	want, err := os.ReadFile("testdata/overall.golden")
	if err != nil {
		t.Fatal(err)
	}
	assertSameTable(t, want, Dump(Render(testNode, overallPorts())))
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ServiceChain("ns1", "svc1", "TCP", "p80"), "service-ULMVA6XW-ns1/svc1/tcp/p80"},
		{EndpointChain("ns1", "svc1", "tcp", "p80", "10.180.0.1:80"), "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"},
		{AffinitySet("ns5", "svc5", "tcp", "p80", "10.180.0.3:80"), "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"},
		{ExternalChain("ns2", "svc2", "tcp", "p80"), "external-42NFTM6N-ns2/svc2/tcp/p80"},
		{FirewallChain("ns5", "svc5", "tcp", "p80"), "firewall-HVFWP5L3-ns5/svc5/tcp/p80"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	long := strings.Repeat("a", 63)
	if n := ServiceChain(long, long, "tcp", long); len(n) > nameMax {
		t.Errorf("name of %d bytes", len(n))
	}
}

// Every jump the repair check looks for is in the rendered table.
func TestJumpsAreRendered(t *testing.T) {
	rs := Render(kubeproxy.Node{Name: "node-1", IP: "172.18.0.2", ClusterCIDR: "10.244.0.0/16"}, nil)
	text := string(Full(rs, Existing{}, false))
	if len(Jumps()) == 0 {
		t.Fatal("no jumps")
	}
	for _, j := range Jumps() {
		found := false
		for _, l := range strings.Split(text, "\n") {
			found = found || strings.HasPrefix(l, "add rule ip kube-proxy "+j.Chain+" ") && strings.HasSuffix(l, " jump "+j.Target)
		}
		if !found {
			t.Errorf("rendered table lacks %s -> %s:\n%s", j.Chain, j.Target, text)
		}
	}
}
