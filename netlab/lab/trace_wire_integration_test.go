// Integration test of the packets a trace shows, on the default lab (address plan in
// lab_integration_test.go: client 203.0.113.2, VIP 203.0.113.100, lb 172.18.0.1 on the
// fabric, nodes 172.18.0.11+, pods 10.244.<node>.0/24).
package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
)

// firstSYN finds the first SYN a hop saw on an interface (its label's prefix) going one way.
func firstSYN(h lab.Hop, ifacePrefix, dir string) (lab.TracePacket, bool) {
	for _, p := range h.Packets {
		if strings.HasPrefix(p.Interface, ifacePrefix) && p.Direction == dir && p.Flags == "SYN" {
			return p, true
		}
	}
	return lab.TracePacket{}, false
}

func TestIntegrationTracePackets(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "tpk", "")
	ctx := context.Background()

	var pcap bytes.Buffer
	tr, err := lab.TraceWith(ctx, p.Lab, lab.TraceOptions{URL: "http://app.example/api", Packets: true, Pcap: &pcap})
	if err != nil {
		t.Fatal(err)
	}
	client, lbHop, in, pod := hop(t, tr, "client"), hop(t, tr, "load balancer"), hop(t, tr, "ingress"), hop(t, tr, "pod")
	for i, h := range tr.Hops {
		if h.Step != i+1 {
			t.Errorf("hop %d (%s) has step %d", i, h.Component, h.Step)
		}
	}

	// The client's SYN, on every interface it crosses, with the addresses of that point.
	syn1, ok1 := firstSYN(client, "client/eth0", "out")
	syn2, ok2 := firstSYN(lbHop, "lb/eth0", "in")
	syn3, ok3 := firstSYN(lbHop, "lb/eth1", "out")
	syn4, ok4 := firstSYN(in, "node-", "in")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		t.Fatalf("SYN not seen everywhere: client %v, lb in %v, lb out %v, node %v\n%+v", ok1, ok2, ok3, ok4, tr.Hops)
	}
	if syn1.Dst != "203.0.113.100:80" || syn2.Dst != "203.0.113.100:80" || syn2.Src != syn1.Src {
		t.Errorf("before the LB: %+v %+v", syn1, syn2)
	}
	if !strings.HasPrefix(syn3.Dst, "172.18.0.1") || !strings.HasSuffix(syn3.Dst, ":80") || syn3.Src != syn1.Src || syn4.Dst != syn3.Dst {
		t.Errorf("after the LB's DNAT: %+v, on the node %+v", syn3, syn4)
	}
	if !(syn1.Time <= syn2.Time && syn2.Time <= syn3.Time && syn3.Time <= syn4.Time) {
		t.Errorf("SYN out of order: %v %v %v %v", syn1.Time, syn2.Time, syn3.Time, syn4.Time)
	}
	// The pod sees the ingress's own connection, masqueraded, to its own address.
	var podIP string
	for _, pp := range p.Pods {
		if pp.Name == pod.Object {
			podIP = plan.Addr(pp.IP)
		}
	}
	var podIn bool
	for _, pk := range pod.Packets {
		if pk.Interface == pod.Object+"/eth0" && pk.Direction == "in" && strings.HasPrefix(pk.Dst, podIP+":") && pk.Time > syn4.Time {
			podIn = true
		}
	}
	if podIP == "" || !podIn {
		t.Errorf("pod %s (%s) saw no packet of the request after the node: %+v", pod.Object, podIP, pod.Packets)
	}

	// The rules that acted: the LB's DNAT and kube-proxy's Service → endpoint → DNAT,
	// and no trace rule left behind — after a trace, a trace interrupted with Ctrl-C, and
	// one killed.
	if len(lbHop.Rules) == 0 {
		t.Errorf("load balancer hop names no rule")
	}
	assertKubeProxyRules(t, p, false)
	if l := traceTables(t, p.Lab); len(l) > 0 {
		t.Errorf("trace tables left after the trace: %v", l)
	}
	interruptTrace(t, p, syscall.SIGINT)
	interruptTrace(t, p, syscall.SIGKILL)

	// JSON as the contract has it.
	b, _ := json.Marshal(tr)
	var js map[string]any
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	if js["status"] != float64(200) || js["drop"] != nil || js["url"] == nil || js["from"] != "client" {
		t.Errorf("trace JSON: status %v drop %v", js["status"], js["drop"])
	}

	// The pcapng: tcpdump reads it, and every interface is named <object>/<ifname>.
	file := filepath.Join(t.TempDir(), "trace.pcapng")
	if err := os.WriteFile(file, pcap.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tcpdump", "-nr", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "203.0.113.100.80: Flags [S]") {
		t.Errorf("tcpdump -r: %v\n%s", err, out)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(pcap.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
	}
	names := map[string]bool{}
	for i := 0; i < r.NInterfaces(); i++ {
		ifc, _ := r.Interface(i)
		names[ifc.Name] = true
	}
	for _, want := range []string{"client/eth0", "lb/eth0", "lb/eth1", "node-1/eth0", "node-2/cni0", pod.Object + "/eth0"} {
		if !names[want] {
			t.Errorf("pcapng has no interface %s: %v", want, names)
		}
	}

	// Failing requests exit with where they died.
	fails := []struct {
		name, from, url, object, reason string
	}{
		{"closed port on a pod", "node-1", "tcp://" + podIP + ":9", pod.Object, ""},
		{"client trying a pod IP", "", "http://" + podIP + ":8080/", "client", "IP_NOROUTE"},
	}
	for _, f := range fails {
		tr, err := lab.TraceWith(ctx, p.Lab, lab.TraceOptions{From: f.from, URL: f.url, Packets: true})
		var failed *lab.RequestFailedError
		if !errors.As(err, &failed) || tr == nil || tr.Drop == nil {
			t.Errorf("%s: want a failed trace with a drop, got %v, %+v", f.name, err, tr)
			continue
		}
		if tr.Drop.Object != f.object || (f.reason != "" && tr.Drop.Reason != f.reason) {
			t.Errorf("%s: drop %+v, want object %s reason %s", f.name, tr.Drop, f.object, f.reason)
		}
	}
}
