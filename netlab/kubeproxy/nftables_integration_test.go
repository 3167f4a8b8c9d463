package kubeproxy_test

import (
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The same Services, the same behaviour, with kube-proxy in nftables mode; and the host's
// own nftables ruleset is what it was.
func TestIntegrationServicesNFTables(t *testing.T) {
	labtest.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft is missing (scripts/deps.sh installs nftables): %v", err)
	}
	before, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		after, err := exec.Command("nft", "list", "ruleset").Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(after) != string(before) {
			t.Errorf("the host's nftables ruleset changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	servicesSuite(t, "nftables")
}

// nftRulesCheck: every node holds table ip kube-proxy with exactly the chains kube-proxy's
// nftables mode wants for the current endpoints, its base chains as kube-proxy hooks
// them, and no chain of the iptables mode.
func nftRulesCheck(t *testing.T, p *plan.Plan) {
	ef, err := rundir.ForLab(p.Lab).ReadEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	labtest.WaitSynced(t, p)
	for _, n := range p.Nodes {
		node, _ := p.ProxyNode(n.Name)
		want := nftables.Render(node, ef.Ports)
		w := slices.Sorted(maps.Keys(want.Chains))
		// Chains an endpoint change left stale stay, flushed, until a sync at least
		// nftables.StaleDelay later deletes them (as kube-proxy does): wait for that.
		var chains []byte
		var got []string
		for deadline := time.Now().Add(20 * nftables.StaleDelay); ; time.Sleep(100 * time.Millisecond) {
			var err error
			if chains, err = kernel.Run(n.Netns, nil, "nft", "list", "chains"); err != nil {
				t.Fatal(err)
			}
			sets, err := kernel.Run(n.Netns, nil, "nft", "-t", "list", "sets")
			if err != nil {
				t.Fatal(err)
			}
			got = slices.Sorted(slices.Values(nftables.ParseExisting(chains, sets).Chains))
			if slices.Equal(got, w) || time.Now().After(deadline) {
				break
			}
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: chains\n%v\nwant\n%v", n.Name, got, w)
		}
		if !slices.Contains(got, nftables.ServiceChain("default", "web", "tcp", "http")) {
			t.Errorf("%s: no chain %s", n.Name, nftables.ServiceChain("default", "web", "tcp", "http"))
		}
		if m := nftables.MissingBaseChains(chains); len(m) > 0 {
			t.Errorf("%s: %v", n.Name, m)
		}
		for _, table := range []string{"filter", "nat"} {
			save, err := kernel.Save(n.Netns, false, table)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(save), ":KUBE-") {
				t.Errorf("%s: iptables %s table holds kube-proxy chains in nftables mode:\n%s", n.Name, table, save)
			}
		}
	}
	out, err := labtest.CLI(t, "check", "--name", p.Lab)
	if !strings.Contains(out, "kube-proxy nftables table") {
		t.Errorf("netlab check does not verify the table (%v):\n%s", err, out)
	}
	for line := range strings.Lines(out) {
		if strings.Contains(line, "kube-proxy nftables table") && !strings.HasPrefix(line, "ok") {
			t.Errorf("netlab check: %s", line)
		}
	}
}

var connections = regexp.MustCompile(`\[(\d+) connections, \d+ packets\]`)

// nftRulesCounterCheck: `netlab rules NODE --service web` shows web's chains annotated with
// their pods, and the connections counted on its endpoint chains grow with new ones.
func nftRulesCounterCheck(t *testing.T, p *plan.Plan) {
	pod := podsOf(p, "solo")[0]
	web := service(t, p, "web")
	sum := func() (int, int) {
		t.Helper()
		out, err := labtest.CLI(t, "rules", pod.Node, "--name", p.Lab, "--service", "web")
		if err != nil {
			t.Fatalf("netlab rules: %v\n%s", err, out)
		}
		if strings.Contains(out, "default/sticky") {
			t.Errorf("--service web shows sticky:\n%s", out)
		}
		total, chains := 0, 0
		for line := range strings.Lines(out) {
			if !strings.Contains(line, "chain endpoint-") || !strings.Contains(line, "# default/web:http: endpoint web-") {
				continue
			}
			m := connections.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("no count on %q", line)
			}
			n, _ := strconv.Atoi(m[1])
			total += n
			chains++
		}
		return total, chains
	}
	// Start from an empty conntrack table in the node (earlier subtests' closed connections
	// expire at their own pace and would make the count shrink meanwhile).
	var nodeNS string
	for _, n := range p.Nodes {
		if n.Name == pod.Node {
			nodeNS = n.Netns
		}
	}
	if out, err := kernel.Run(nodeNS, nil, "conntrack", "-F"); err != nil {
		t.Fatalf("conntrack -F: %v %s", err, out)
	}
	before, chains := sum()
	if chains != len(podsOf(p, "web")) {
		t.Fatalf("netlab rules shows %d endpoint chains of web, want %d", chains, len(podsOf(p, "web")))
	}
	const n = 25
	for i := range n {
		if _, _, err := labtest.GetEcho(pod.Netns, url(web.ClusterIP, 80)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	after, _ := sum()
	t.Logf("web's endpoint chains: %d connections before, %d after %d new ones", before, after, n)
	if after-before != n {
		t.Errorf("endpoint chains counted %d connections before and %d after %d new ones", before, after, n)
	}
}
