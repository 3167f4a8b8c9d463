package kubeproxy

import (
	"strings"
	"testing"
)

// With the nfacct counters, the rules read as kube-proxy's TestOverallIPTablesRules
// expects them (its fake iptables has both counters): the INVALID drop counts into
// ct_state_invalid_dropped_pkts, and a NodePort with endpoints has a rule for 127.0.0.0/8
// counting into localhost_nps_accepted_pkts before its own. Without them, neither.
func TestNFAcctRules(t *testing.T) {
	sp := ServicePort{Namespace: "ns2", Name: "svc2", PortName: "p80", Protocol: "TCP", ClusterIP: "172.30.0.42", Port: 80,
		NodePort: 3001, Endpoints: []Endpoint{{Pod: "p", Node: "test-node", IP: "10.180.0.2", Port: 80, Ready: true}}}
	empty := ServicePort{Namespace: "ns6", Name: "svc6", PortName: "p80", Protocol: "TCP", ClusterIP: "172.30.0.46", Port: 80,
		NodePort: 3006}
	node := Node{Name: "test-node", IP: "192.168.0.2", ClusterCIDR: "10.0.0.0/8", NFAcct: true}
	want := []string{
		"-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP\n",
		"-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT\n" +
			"-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT\n",
	}
	out := string(Render(node, []ServicePort{sp, empty}, nil))
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("rules lack\n%s", w)
		}
	}
	if strings.Count(out, "-d 127.0.0.0/8 --dport") != 1 {
		t.Errorf("a localhost NodePort rule for a Service without endpoints:\n%s", out)
	}
	rs, err := parseRules([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := rs.trace(packet{Src: "127.0.0.1", Dst: "127.0.0.1", DPort: 3001, Proto: "tcp", FromLocalProcess: true},
		traceEnv{localIPs: []string{node.IP}})
	if err != nil {
		t.Fatal(err)
	}
	if got := dnatTargets(outs); len(got) != 1 || got[0] != "10.180.0.2:80" || !outs[0].Masquerade {
		t.Errorf("127.0.0.1:3001 from the node: %+v", outs)
	}

	node.NFAcct = false
	out = string(Render(node, []ServicePort{sp}, nil))
	if strings.Contains(out, "nfacct") || strings.Contains(out, "-d 127.0.0.0/8 --dport") ||
		!strings.Contains(out, "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n") {
		t.Errorf("without the counters:\n%s", out)
	}
}
