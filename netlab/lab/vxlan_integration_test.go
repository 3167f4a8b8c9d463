// Integration test of the vxlan pod network (scenarios/vxlan.yaml under a unique name):
//
//	fabric 172.18.0.0/24: node-1 .11, node-2 .12; flannel.1 on each, VNI 1, UDP 8472
//	node-1 pods 10.244.1.0/24 (VTEP 10.244.1.0), node-2 pods 10.244.2.0/24 (VTEP 10.244.2.0)
package lab_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
)

// vxlanTX reads the packets flannel.1 has sent in a node's namespace.
func vxlanTX(t *testing.T, ns string) int {
	t.Helper()
	out, err := labtest.Exec(ns, "ip", "-s", "link", "show", "flannel.1")
	if err != nil {
		t.Fatalf("ip -s link in %s: %v\n%s", ns, err, out)
	}
	m := regexp.MustCompile(`TX:[^\n]*\n\s*\d+\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no TX counters in:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestIntegrationVXLAN(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "vxlan", labtest.Lesson(t, "vxlan.yaml"))
	node := map[string]plan.Node{}
	for _, n := range p.Nodes {
		node[n.Name] = n
	}
	before := vxlanTX(t, node["node-1"].Netns)
	crossed := 0
	for _, from := range labtest.EchoPods(p) {
		for _, to := range labtest.EchoPods(p) {
			if from.Name == to.Name {
				continue
			}
			e, _, err := labtest.GetEcho(from.Netns, fmt.Sprintf("http://%s:8080/", plan.Addr(to.IP)))
			if err != nil || e.Pod != to.Name || e.ClientIP != plan.Addr(from.IP) {
				t.Errorf("%s -> %s over vxlan: %+v %v", from.Name, to.Name, e, err)
			}
			if from.Node == "node-1" && to.Node == "node-2" {
				crossed++
			}
		}
	}
	if crossed == 0 {
		t.Fatal("no pod pair crossed from node-1 to node-2")
	}
	// Cross-node traffic left node-1 encapsulated: flannel.1 sent packets.
	if after := vxlanTX(t, node["node-1"].Netns); after-before < crossed*3 {
		t.Errorf("flannel.1 on node-1 sent %d packets for %d cross-node requests", after-before, crossed)
	}
	// Pods have room for the headers.
	if out, _ := labtest.Exec(p.Pods[0].Netns, "ip", "link", "show", "eth0"); !strings.Contains(out, "mtu 1450") {
		t.Errorf("pod eth0 MTU: %s", out)
	}
	// The whole path works over the overlay, and trace names it.
	checks, err := lab.CheckLab(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("check %s: %s", c.Name, c.Detail)
		}
	}
	// From node-1 to the web ClusterIP: kube-proxy picks one of 3 pods, 1 on node-2; a
	// trace that lands there names the overlay.
	var web string
	for _, s := range p.Services {
		if s.Name == "web" {
			web = s.ClusterIP
		}
	}
	for i := 0; i < 30; i++ {
		tr, err := lab.TraceRequest(context.Background(), p.Lab, "node-1", "http://"+web+"/")
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range tr.Hops {
			if h.Component == "network" && strings.Contains(h.Summary, "across the fabric") {
				if !strings.Contains(h.Summary, "dev flannel.1 onlink (vxlan: VNI 1 in UDP 8472 to 172.18.0.12)") {
					t.Errorf("network hop over vxlan: %s", h.Summary)
				}
				return
			}
		}
	}
	t.Error("30 traces from node-1 to the web ClusterIP never reached node-2's pod")
}
