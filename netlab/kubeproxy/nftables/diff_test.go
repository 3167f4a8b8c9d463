package nftables

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiffTouchesOnlyWhatChanged(t *testing.T) {
	prev := Render(testNode, overallPorts())
	if d := Diff(prev, Render(testNode, overallPorts())); d != nil {
		t.Fatalf("no change should give no transaction, got:\n%s", d)
	}
	ports := overallPorts()
	ports[2].Endpoints = ports[2].Endpoints[:1] // svc4 keeps only 10.180.0.5
	ports = append(ports[:5], ports[6:]...)     // svc1 deleted
	d := string(Diff(prev, Render(testNode, ports)))
	for _, want := range []string{
		"flush chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80\n",
		"delete chain ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80\n",
		"delete element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 }\n",
		"delete element ip kube-proxy cluster-ips { 172.30.0.41 }\n",
		"delete chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	for _, not := range []string{"ns3/svc3", "ns5/svc5", "filter-input", "services "} {
		if strings.Contains(d, not) {
			t.Errorf("diff touches %q:\n%s", not, d)
		}
	}
	// Deletions come after every rule that stopped referring to the chains.
	if strings.Index(d, "delete chain") < strings.LastIndex(d, "add rule") {
		t.Errorf("chains deleted before the rules are rewritten:\n%s", d)
	}
}

func TestParseExisting(t *testing.T) {
	chains := []byte("table inet other {\n\tchain x/y {\n\t}\n}\ntable ip kube-proxy {\n\tchain services {\n\t}\n\tchain service-A-ns/s/tcp/ {\n\t}\n}\n")
	sets := []byte("table ip kube-proxy {\n\tset affinity-X-ns/s/tcp/__1.2.3.4/80 {\n\t\ttype ipv4_addr\n\t}\n}\n")
	ex := ParseExisting(chains, sets)
	if len(ex.Chains) != 2 || ex.Chains[1] != "service-A-ns/s/tcp/" || len(ex.Sets) != 1 || !ex.Table {
		t.Fatalf("%+v", ex)
	}
	if ex := ParseExisting([]byte("table ip kube-proxy {\n}\n"), nil); !ex.Table {
		t.Fatalf("an empty table: %+v", ex)
	}
	if ex := ParseExisting([]byte("table inet other {\n}\n"), nil); ex.Table {
		t.Fatalf("no table: %+v", ex)
	}
}

// `nft list chains` of a node synced from a Full transaction (captured from nft 1.0.6).
func TestMissingBaseChains(t *testing.T) {
	b, err := os.ReadFile("testdata/list-chains.txt")
	if err != nil {
		t.Fatal(err)
	}
	if m := MissingBaseChains(b); len(m) != 0 {
		t.Fatalf("missing %v", m)
	}
	if m := MissingBaseChains([]byte(strings.Replace(string(b), "priority filter", "priority raw", 1))); len(m) != 1 {
		t.Fatalf("a wrong priority must show: %v", m)
	}
}

// Staged writes what Full writes into an empty kernel (less the flushes of what does not
// exist yet), and only its last stage writes the base chains' rules.
func TestStagedWritesFull(t *testing.T) {
	rs := Render(testNode, overallPorts())
	var want []string
	for l := range strings.Lines(string(Full(rs, Existing{}, false))) {
		if !strings.HasPrefix(l, "flush ") {
			want = append(want, l)
		}
	}
	stages := Staged(rs, 1)
	var got []string
	for i, s := range stages {
		for l := range strings.Lines(string(s)) {
			got = append(got, l)
			rest, isRule := strings.CutPrefix(l, "add rule "+prefix)
			chain, _, _ := strings.Cut(rest, " ")
			if base := isRule && rs.Chains[chain].Base != ""; base != (i == len(stages)-1) {
				t.Errorf("stage %d of %d: %q", i+1, len(stages), l)
			}
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stages differ from Full (-Full +Staged):\n%s", d)
	}
	if len(stages) < 5 {
		t.Errorf("%d stages, want one per rule with an anonymous set and more", len(stages))
	}
}
