package kubeproxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netlabdev/netlab/netlab/iptables"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if d := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, d)
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		node Node
		opts Options
	}{
		{"node-1", node1, Options{ExistingNATChains: existingChains}},
		{"node-2", node2, Options{ExistingNATChains: existingChains}},
		{"node-1-partial-api", node1, Options{Changed: map[string]bool{"default/api": true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.name, RenderWith(tc.node, fixturePorts(), tc.opts))
		})
	}
}

// The expected names below come from kube-proxy's own test suite
// (kubernetes/kubernetes pkg/proxy/iptables/proxier_test.go, service port "ns1/svc1:p80",
// TCP, endpoint 10.180.0.1:80). The test also derives them independently from the
// documented algorithm: base32(sha256(servicePortName + lowercase protocol [+ "ip:port"]))[:16].
func TestChainNamesMatchKubeProxy(t *testing.T) {
	derive := func(prefix, s string) string {
		sum := sha256.Sum256([]byte(s))
		return prefix + base32.StdEncoding.EncodeToString(sum[:])[:16]
	}
	sp := ServicePort{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "TCP"}
	name := sp.ServicePortName()
	if name != "ns1/svc1:p80" {
		t.Fatalf("ServicePortName = %q", name)
	}
	for _, c := range []struct{ got, derived, kubeProxy string }{
		{SVCChain(name, sp.Protocol), derive("KUBE-SVC-", "ns1/svc1:p80tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{SEPChain(name, sp.Protocol, Endpoint{IP: "10.180.0.1", Port: 80}.String()), derive("KUBE-SEP-", "ns1/svc1:p80tcp10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"},
	} {
		if c.got != c.derived || c.got != c.kubeProxy {
			t.Errorf("chain %q, derived %q, kube-proxy %q", c.got, c.derived, c.kubeProxy)
		}
	}
	// The other per-service chains share the hash; only the prefix differs.
	h := strings.TrimPrefix(SVCChain(name, "tcp"), "KUBE-SVC-")
	for _, c := range []string{SVLChain(name, "tcp"), EXTChain(name, "tcp")} {
		if !strings.HasSuffix(c, h) || len(c) > 28 {
			t.Errorf("chain %q does not end in %q or is longer than 28", c, h)
		}
	}
	// An unnamed port hashes "ns/name" alone.
	unnamed := ServicePort{Namespace: "default", Name: "api", Protocol: "TCP"}
	if got, want := SVCChain(unnamed.ServicePortName(), "TCP"), derive("KUBE-SVC-", "default/apitcp"); got != want {
		t.Errorf("unnamed port chain %q, want %q", got, want)
	}
}

func TestProbabilityFormat(t *testing.T) {
	// kube-proxy formats 1/n with %0.10f: these strings appear in real iptables-save dumps.
	for n, want := range map[int]string{2: "0.5000000000", 3: "0.3333333333", 4: "0.2500000000", 7: "0.1428571429"} {
		if got := probability(n); got != want {
			t.Errorf("probability(%d) = %s, want %s", n, got, want)
		}
	}
	out := string(Render(node1, fixturePorts(), nil))
	if !strings.Contains(out, "--probability 0.3333333333 -j KUBE-SEP-") || !strings.Contains(out, "--probability 0.5000000000 -j KUBE-SEP-") {
		t.Errorf("three-endpoint service lacks 1/3 then 1/2 probabilities")
	}
}

func TestRenderDeterministicAndOrderIndependent(t *testing.T) {
	a := Render(node1, fixturePorts(), existingChains)
	ports := fixturePorts()
	for i, j := 0, len(ports)-1; i < j; i, j = i+1, j-1 {
		ports[i], ports[j] = ports[j], ports[i]
	}
	b := Render(node1, ports, existingChains)
	if !bytes.Equal(a, b) {
		t.Errorf("output depends on input order:\n%s", cmp.Diff(string(a), string(b)))
	}
}

func TestStaleChainsRemoved(t *testing.T) {
	out := string(Render(node1, fixturePorts(), existingChains))
	for _, c := range []string{"KUBE-SVC-STALE0000000000A", "KUBE-SEP-STALE0000000000B"} {
		if !strings.Contains(out, ":"+c+" - [0:0]\n") || !strings.Contains(out, "-X "+c+"\n") {
			t.Errorf("stale chain %s not flushed and deleted", c)
		}
	}
	for _, c := range []string{"CNI-HOSTPORT-DNAT", SVCChain("default/web:http", "tcp"), "KUBE-SERVICES"} {
		if strings.Contains(out, "-X "+c+"\n") {
			t.Errorf("chain %s deleted", c)
		}
	}
	// Nothing of an unused Service is left once its chains are gone.
	rs, err := parseRules(append([]byte("*nat\n:KUBE-SVC-STALE0000000000A - [0:0]\n:KUBE-SEP-STALE0000000000B - [0:0]\nCOMMIT\n"), out...))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rs.Tables["nat"]["KUBE-SVC-STALE0000000000A"]; ok {
		t.Errorf("stale chain survives a restore")
	}
}

func TestPartialSyncWritesOnlyChangedServices(t *testing.T) {
	out := string(RenderWith(node1, fixturePorts(), Options{Changed: map[string]bool{"default/api": true}}))
	api := SVCChain("default/api", "tcp")
	web := SVCChain("default/web:http", "tcp")
	if !strings.Contains(out, ":"+api+" - [0:0]") {
		t.Errorf("changed service chain %s not written", api)
	}
	if strings.Contains(out, ":"+web+" - [0:0]") || strings.Contains(out, "-A "+web+" ") {
		t.Errorf("unchanged service chain %s rewritten", web)
	}
	if !strings.Contains(out, "-j "+web+"\n") {
		t.Errorf("KUBE-SERVICES must still jump to unchanged %s", web)
	}
	// Unchanged chains still count as in use: they are not deleted as stale.
	out = string(RenderWith(node1, fixturePorts(), Options{Changed: map[string]bool{}, ExistingNATChains: []string{web}}))
	if strings.Contains(out, "-X "+web) {
		t.Errorf("partial sync deleted unchanged chain %s", web)
	}
}

func TestLargeClusterModeDropsEndpointComments(t *testing.T) {
	var ports []ServicePort
	for i := range 600 {
		ports = append(ports, ServicePort{Namespace: "bench", Name: "s" + strconv.Itoa(i), Protocol: "TCP",
			ClusterIP: "10.96." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1), Port: 80,
			Endpoints: []Endpoint{
				{Node: "node-1", IP: "10.244.1." + strconv.Itoa(i%250+1), Port: 80, Ready: true},
				{Node: "node-2", IP: "10.244.2." + strconv.Itoa(i%250+1), Port: 80, Ready: true},
			}})
	}
	out := string(Render(node1, ports, nil))
	if strings.Contains(out, " -> 10.244.") {
		t.Errorf("more than 1000 endpoints but per-endpoint comments kept")
	}
	if !strings.Contains(out, `"bench/s1 cluster IP"`) {
		t.Errorf("cluster IP comments must stay in large cluster mode")
	}
	if _, err := parseRules([]byte(out)); err != nil {
		t.Fatalf("large output does not parse: %v", err)
	}
}

func TestJumpRules(t *testing.T) {
	rules := JumpRules()
	want := map[string]bool{
		"nat/PREROUTING->KUBE-SERVICES": true, "nat/OUTPUT->KUBE-SERVICES": true,
		"nat/POSTROUTING->KUBE-POSTROUTING": true, "filter/FORWARD->KUBE-FORWARD": true,
		"filter/INPUT->KUBE-EXTERNAL-SERVICES": true, "filter/FORWARD->KUBE-EXTERNAL-SERVICES": true,
		"filter/INPUT->KUBE-NODEPORTS": true, "filter/FORWARD->KUBE-SERVICES": true,
		"filter/OUTPUT->KUBE-SERVICES": true,
	}
	out := Render(node1, nil, nil)
	rs, err := parseRules(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		delete(want, r.Table+"/"+r.Chain+"->"+r.Target)
		if r.Args[len(r.Args)-1] != r.Target || r.Args[len(r.Args)-2] != "-j" {
			t.Errorf("%+v does not end in -j %s", r, r.Target)
		}
		if _, ok := rs.Tables[r.Table][r.Target]; !ok {
			t.Errorf("jump target %s/%s is not declared by Render", r.Table, r.Target)
		}
	}
	for k := range want {
		t.Errorf("missing jump rule %s", k)
	}
}

func TestMissingAndAppendJumps(t *testing.T) {
	save := []byte(`*filter
:INPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
`)
	dump, err := iptables.Parse(save)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"PREROUTING"}, dump.ChainNames("nat")); d != "" {
		t.Errorf("nat chains (-want +got):\n%s", d)
	}
	missing := MissingJumps(dump)
	if len(missing) != len(JumpRules())-2 {
		t.Fatalf("%d missing, want all but filter INPUT->KUBE-FIREWALL and nat PREROUTING->KUBE-SERVICES", len(missing))
	}
	for _, j := range missing {
		if (j.Table == "filter" && j.Chain == "INPUT" && j.Target == "KUBE-FIREWALL") || (j.Table == "nat" && j.Chain == "PREROUTING") {
			t.Errorf("%+v is present but reported missing", j)
		}
	}
	if got := MissingJumps(&iptables.Dump{}); len(got) != len(JumpRules()) {
		t.Errorf("empty save: %d missing", len(got))
	}
	in := []byte("*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n")
	out := string(AppendJumps(in, []JumpRule{
		{Table: "filter", Chain: "OUTPUT", Target: "KUBE-SERVICES", Args: []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"}},
		{Table: "nat", Chain: "OUTPUT", Target: "KUBE-SERVICES", Args: []string{"-j", "KUBE-SERVICES"}},
	}))
	want := "*filter\n:KUBE-SERVICES - [0:0]\n-I OUTPUT 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n*nat\n-I OUTPUT 1 -j KUBE-SERVICES\nCOMMIT\n"
	if out != want {
		t.Errorf("AppendJumps:\n%s\nwant:\n%s", out, want)
	}
}
