package lb

import (
	"strings"
	"testing"
)

func TestWanFilterRender(t *testing.T) {
	f := WanFilter{WanIface: "eth0", VIPs: []string{"203.0.113.101", "203.0.113.100"}, NodeCIDR: "172.18.0.0/24",
		ExposeNodes: true, NodeTCPPorts: []int{80, 443}, NodePortRange: "30000:32767", HealthPorts: []int{31000}}
	got := string(f.Render())
	for _, want := range []string{
		":NETLAB-WAN-FILTER - [0:0]",
		"--ctstate ESTABLISHED,RELATED",
		"--ctstate DNAT --ctorigdst 203.0.113.100/32",
		"-d 172.18.0.0/24 -p tcp -m multiport --dports 80,443",
		"-d 172.18.0.0/24 -p udp --dport 30000:32767",
		"-j DROP\nCOMMIT\n",
	} {
		if strings.Index(got, "--dport 31000") > strings.Index(got, "--dport 30000:32767") {
			t.Error("the health check node port is dropped after the NodePort range is allowed")
		}
		if !strings.Contains(got, want) {
			t.Errorf("rendering lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "203.0.113.100") > strings.Index(got, "203.0.113.101") {
		t.Error("VIPs not in order")
	}
	f.ExposeNodes = false
	closed := string(f.Render())
	if strings.Contains(closed, "172.18.0.0/24") {
		t.Errorf("exposeNodes false still lets the wan reach the nodes:\n%s", closed)
	}
	if !strings.Contains(closed, "--ctorigdst 203.0.113.101/32") {
		t.Errorf("exposeNodes false closed the VIPs:\n%s", closed)
	}
}
