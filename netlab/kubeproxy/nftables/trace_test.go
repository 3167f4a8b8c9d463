package nftables

import (
	"slices"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

var localIPs = []string{"192.168.0.2"}

type flow struct {
	name      string
	src, dst  string
	port      int
	proto     string
	local     bool
	affinity  map[string][]string
	want      []string // Targets
	masq      bool
	wantInPat string // a Path entry that must be there
}

func runFlows(t *testing.T, rs *Ruleset, flows []flow) {
	t.Helper()
	for _, f := range flows {
		proto := f.proto
		if proto == "" {
			proto = "tcp"
		}
		outs, err := Trace(rs, Packet{Src: f.src, Dst: f.dst, DPort: f.port, Proto: proto, FromLocalProcess: f.local},
			Env{LocalIPs: localIPs, Affinity: f.affinity})
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if got := Targets(outs); !slices.Equal(got, f.want) {
			t.Errorf("%s: got %v, want %v", f.name, got, f.want)
			continue
		}
		total := 0.0
		for _, o := range outs {
			total += o.Probability
			if o.Verdict == "ACCEPT" && o.Masquerade != f.masq {
				t.Errorf("%s: masquerade %v, want %v (path %v)", f.name, o.Masquerade, f.masq, o.Path)
			}
			if f.wantInPat != "" && !slices.ContainsFunc(o.Path, func(p string) bool { return strings.Contains(p, f.wantInPat) }) {
				t.Errorf("%s: path %v lacks %q", f.name, o.Path, f.wantInPat)
			}
		}
		if total < 0.999 || total > 1.001 {
			t.Errorf("%s: probabilities sum to %v", f.name, total)
		}
	}
}

// The flows of kube-proxy's own packet-flow tests, over the TestOverallNFTablesRules table.
func TestTraceOverall(t *testing.T) {
	rs := Render(testNode, overallPorts())
	runFlows(t, rs, []flow{
		{name: "pod to cluster IP", src: "10.0.0.2", dst: "172.30.0.41", port: 80, want: []string{"10.180.0.1:80"},
			wantInPat: "service-ips: 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80"},
		{name: "hairpin masquerades", src: "10.180.0.1", dst: "172.30.0.41", port: 80, want: []string{"10.180.0.1:80"}, masq: true},
		{name: "node to cluster IP masquerades", src: "192.168.0.2", dst: "172.30.0.41", port: 80, local: true, want: []string{"10.180.0.1:80"}, masq: true},
		{name: "wrong port of a cluster IP", src: "10.0.0.2", dst: "172.30.0.41", port: 443, want: []string{"REJECT"}},
		{name: "wrong protocol", src: "10.0.0.2", dst: "172.30.0.41", port: 80, proto: "udp", want: []string{"REJECT"}},
		{name: "unallocated cluster IP", src: "10.0.0.2", dst: "172.30.0.50", port: 80, want: []string{"DROP"}},
		{name: "no endpoints", src: "10.0.0.2", dst: "172.30.0.46", port: 80, want: []string{"REJECT"}, wantInPat: "no-endpoint-services"},
		{name: "spread", src: "10.0.0.2", dst: "172.30.0.44", port: 80, want: []string{"10.180.0.4:80", "10.180.0.5:80"},
			wantInPat: "numgen random mod 2"},
		{name: "external IP", src: "203.0.113.2", dst: "192.168.99.33", port: 80, want: []string{"10.180.0.4:80", "10.180.0.5:80"}, masq: true},
		{name: "NodePort", src: "203.0.113.2", dst: "192.168.0.2", port: 3003, want: []string{"10.180.0.3:80"}, masq: true,
			wantInPat: "service-nodeports: tcp . 3003"},
		{name: "ETP Local without local endpoints drops external traffic", src: "203.0.113.2", dst: "1.2.3.4", port: 80, want: []string{"DROP"}},
		{name: "ETP Local NodePort without local endpoints", src: "203.0.113.2", dst: "192.168.0.2", port: 3001, want: []string{"DROP"}},
		{name: "ETP Local short-circuits pods", src: "10.0.0.2", dst: "1.2.3.4", port: 80, want: []string{"10.180.0.2:80"}},
		{name: "LB source range allows", src: "203.0.113.2", dst: "5.6.7.8", port: 80, want: []string{"10.180.0.3:80"}, masq: true},
		{name: "LB source range blocks", src: "203.0.113.130", dst: "5.6.7.8", port: 80, want: []string{"DROP"}, wantInPat: "firewall-ips"},
		{name: "NodePort bypasses source ranges", src: "203.0.113.130", dst: "192.168.0.2", port: 3002, want: []string{"10.180.0.3:80"}, masq: true},
		{name: "affinity sticks", src: "10.0.0.9", dst: "172.30.0.45", port: 80, want: []string{"10.180.0.3:80"},
			affinity: map[string][]string{"affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80": {"10.0.0.9"}}},
	})
}

func TestTraceLocalPolicies(t *testing.T) {
	node := kubeproxy.Node{Name: "node-1", IP: "192.168.0.2", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/16"}
	eps := []kubeproxy.Endpoint{ep("10.244.1.3", 8080, "node-1"), ep("10.244.1.10", 8080, "node-1"), ep("10.244.2.3", 8080, "node-2")}
	etp := kubeproxy.ServicePort{Namespace: "default", Name: "web", Protocol: "TCP", ClusterIP: "10.96.0.20", Port: 80,
		NodePort: 30080, LoadBalancerIPs: []string{"198.51.100.10"}, ExternalLocal: true, Endpoints: eps}
	itp := kubeproxy.ServicePort{Namespace: "default", Name: "itp", Protocol: "UDP", ClusterIP: "10.96.0.21", Port: 53,
		InternalLocal: true, Endpoints: eps[2:]}
	aff := kubeproxy.ServicePort{Namespace: "default", Name: "sticky", Protocol: "TCP", ClusterIP: "10.96.0.22", Port: 80,
		AffinityClientIP: true, AffinitySeconds: 60, Endpoints: eps}
	rs := Render(node, []kubeproxy.ServicePort{etp, itp, aff})
	runFlows(t, rs, []flow{
		{name: "ETP Local keeps the client address", src: "203.0.113.2", dst: "198.51.100.10", port: 80,
			want: []string{"10.244.1.10:8080", "10.244.1.3:8080"}, wantInPat: "local-"},
		{name: "ETP Local NodePort", src: "203.0.113.2", dst: "192.168.0.2", port: 30080, want: []string{"10.244.1.10:8080", "10.244.1.3:8080"}},
		{name: "ClusterIP of an ETP Local Service uses every endpoint", src: "10.244.1.5", dst: "10.96.0.20", port: 80,
			want: []string{"10.244.1.10:8080", "10.244.1.3:8080", "10.244.2.3:8080"}},
		{name: "ITP Local without local endpoints drops", src: "10.244.1.5", dst: "10.96.0.21", port: 53, proto: "udp", want: []string{"DROP"}},
		{name: "affinity updates the set", src: "10.244.1.5", dst: "10.96.0.22", port: 80,
			want: []string{"10.244.1.10:8080", "10.244.1.3:8080", "10.244.2.3:8080"}, wantInPat: "numgen random mod 3"},
	})
	// Endpoints in kube-proxy's order: by "ip:port" string, .10 before .3.
	svc := rs.Chains[ServiceChain("default", "web", "tcp", "")].Rules
	last := svc[len(svc)-1]
	if i, j := strings.Index(last, "10.244.1.10/8080"), strings.Index(last, "10.244.1.3/8080"); i < 0 || j < 0 || i > j {
		t.Errorf("endpoint order: %s", last)
	}
	outs, _ := Trace(rs, Packet{Src: "10.244.1.5", Dst: "10.96.0.22", DPort: 80, Proto: "tcp"}, Env{LocalIPs: localIPs})
	for _, o := range outs {
		if len(o.Updated) != 1 || !strings.HasPrefix(o.Updated[0], PrefixAffinity) {
			t.Errorf("affinity not recorded: %+v", o)
		}
	}
}

func TestFlowPath(t *testing.T) {
	path, err := FlowPath(testNode, overallPorts(), Packet{Src: "203.0.113.2", Dst: "192.168.0.2", DPort: 3003, Proto: "tcp"}, "10.180.0.3:80")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"services",
		"service-nodeports: tcp . 3003 : goto external-4AT6LBPK-ns3/svc3/tcp/p80",
		"external-4AT6LBPK-ns3/svc3/tcp/p80", "service-4AT6LBPK-ns3/svc3/tcp/p80",
		"numgen random mod 1: 0 : goto endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80",
		"endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80", "masquerading: masquerade"}
	if !slices.Equal(path, want) {
		t.Errorf("path\n%q\nwant\n%q", path, want)
	}
	path, err = FlowPath(testNode, overallPorts(), Packet{Src: "203.0.113.130", Dst: "5.6.7.8", DPort: 80, Proto: "tcp"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if last := path[len(path)-1]; !strings.Contains(last, "DROP by firewall-HVFWP5L3-ns5/svc5/tcp/p80: ip saddr != { 203.0.113.0/25 } drop") {
		t.Errorf("blocked path %q", path)
	}
	if _, err := FlowPath(testNode, overallPorts(), Packet{Src: "10.0.0.2", Dst: "172.30.0.41", DPort: 80, Proto: "tcp"}, "10.9.9.9:80"); err == nil {
		t.Error("an endpoint the flow cannot reach gave a path")
	}
}
