package lb

import (
	"strconv"
	"strings"
	"testing"
)

func TestSourceRangesFirewall(t *testing.T) {
	vs := vsWith(SchedRR, []Backend{{Name: "node-1", IP: "172.18.0.11", Port: 30080, Weight: 1, Healthy: true}})
	vs.SourceRanges = []string{"203.0.113.0/25", "198.51.100.7/32"}
	out, err := Render([]VirtualService{vs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fw := FWChain(vs)
	for _, want := range []string{
		":" + fw + " - [0:0]",
		"-A " + ChainFilter + " -p tcp -m conntrack --ctstate NEW --ctorigdst " + vs.VIP + "/32 --ctorigdstport " + strconv.Itoa(vs.Port),
		"-A " + fw + " -s 203.0.113.0/25 -j RETURN\n-A " + fw + " -s 198.51.100.7/32 -j RETURN\n-A " + fw + " -m comment",
		"-j DROP",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
	// Without ranges the chain is stale and goes away.
	vs.SourceRanges = nil
	out, _ = Render([]VirtualService{vs}, []string{fw})
	if !strings.Contains(string(out), "-X "+fw+"\n") || strings.Contains(string(out), "-j "+fw) {
		t.Errorf("stale firewall chain not removed:\n%s", out)
	}
	vs.SourceRanges = []string{"not-a-cidr"}
	if _, err := Render([]VirtualService{vs}, nil); err == nil || !strings.Contains(err.Error(), "not-a-cidr") {
		t.Errorf("bad range accepted: %v", err)
	}
}
