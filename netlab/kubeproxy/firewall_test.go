package kubeproxy

import (
	"slices"
	"strings"
	"testing"
)

// kube-proxy's iptables rules for loadBalancerSourceRanges (its TestOverallIPTablesRules
// svc5): the LB IP jumps to KUBE-FW-<hash>, allowed sources go on to KUBE-EXT, the rest
// falls off and meets KUBE-PROXY-FIREWALL's DROP.
func TestLoadBalancerSourceRanges(t *testing.T) {
	n := Node{Name: "test-node", IP: "192.168.0.2", ClusterCIDR: "10.0.0.0/8"}
	sp := ServicePort{Namespace: "ns5", Name: "svc5", PortName: "p80", Protocol: "TCP", ClusterIP: "172.30.0.45", Port: 80,
		NodePort: 3002, LoadBalancerIPs: []string{"5.6.7.8"}, LoadBalancerSourceRanges: []string{" 203.0.113.0/25"},
		Endpoints: []Endpoint{{Pod: "p", IP: "10.180.0.3", Port: 80, Ready: true}}}
	out := string(Render(n, []ServicePort{sp}, nil))
	for _, want := range []string{
		`-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP`,
		`-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C`,
		`-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C`,
		`-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"` + "\n",
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want) {
			t.Errorf("rules lack\n%s\nin:\n%s", want, out)
		}
	}
	rs, err := parseRules([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	env := traceEnv{localIPs: []string{n.IP}}
	for _, c := range []struct {
		src  string
		port int
		want string
	}{{"203.0.113.2", 80, "10.180.0.3:80"}, {"203.0.113.130", 80, "DROP"}, {"203.0.113.130", 3002, "10.180.0.3:80"}} {
		dst := "5.6.7.8"
		if c.port == 3002 {
			dst = n.IP
		}
		outs, err := rs.trace(packet{Src: c.src, Dst: dst, DPort: c.port, Proto: "tcp"}, env)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range outs {
			if o.Verdict == "ACCEPT" {
				got = append(got, o.DNAT)
			} else {
				got = append(got, o.Verdict)
			}
		}
		if !slices.Equal(got, []string{c.want}) {
			t.Errorf("%s -> %s:%d: %v, want %s", c.src, dst, c.port, got, c.want)
		}
	}
}

// Endpoints in kube-proxy's order, by "ip:port" string: 10.244.1.10 before 10.244.1.3.
func TestEndpointOrderIsKubeProxys(t *testing.T) {
	sp := ServicePort{Namespace: "default", Name: "web", Protocol: "TCP", ClusterIP: "10.96.0.20", Port: 80,
		Endpoints: []Endpoint{{Pod: "web-1", IP: "10.244.1.3", Port: 8080, Ready: true}, {Pod: "web-2", IP: "10.244.1.10", Port: 8080, Ready: true}}}
	out := string(Render(Node{Name: "node-1"}, []ServicePort{sp}, nil))
	first := strings.Index(out, `"default/web -> 10.244.1.10:8080" -m statistic`)
	second := strings.Index(out, `"default/web -> 10.244.1.3:8080" -j`)
	if first < 0 || second < 0 || first > second {
		t.Errorf("endpoints not in kube-proxy's order:\n%s", out)
	}
}
