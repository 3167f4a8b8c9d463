package nftnl_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftnl"
	"github.com/netlabdev/netlab/netlab/labtest"
)

var node = kubeproxy.Node{Name: "node-1", IP: "192.168.0.2", ClusterCIDR: "10.0.0.0/8", ServiceCIDR: "172.30.0.0/12"}

func ep(ip string, port int32, node string) kubeproxy.Endpoint {
	return kubeproxy.Endpoint{Pod: "p-" + ip, Node: node, IP: ip, Port: port, Ready: true}
}

// ports covers every kind of rule and element the renderer writes: Cluster and Local
// policies, NodePorts, external and LoadBalancer IPs with source ranges (one range, and
// several overlapping and adjacent ones), affinity, UDP, a Service without endpoints.
func ports() []kubeproxy.ServicePort {
	sp := func(ns, name, clusterIP string, eps ...kubeproxy.Endpoint) kubeproxy.ServicePort {
		return kubeproxy.ServicePort{Namespace: ns, Name: name, PortName: "p80", Protocol: "TCP",
			ClusterIP: clusterIP, Port: 80, Endpoints: eps}
	}
	svc1 := sp("ns1", "svc1", "172.30.0.41", ep("10.180.0.1", 80, ""))
	svc2 := sp("ns2", "svc2", "172.30.0.42", ep("10.180.0.2", 80, ""))
	svc2.NodePort, svc2.LoadBalancerIPs, svc2.ExternalIPs = 3001, []string{"1.2.3.4"}, []string{"192.168.99.22"}
	svc2.ExternalLocal, svc2.HealthCheckNodePort = true, 30000
	svc3 := sp("ns3", "svc3", "172.30.0.43", ep("10.180.0.3", 80, ""))
	svc3.NodePort = 3003
	svc4 := sp("ns4", "svc4", "172.30.0.44", ep("10.180.0.5", 80, "node-1"), ep("10.180.0.4", 80, ""))
	svc4.ExternalIPs = []string{"192.168.99.33"}
	svc4.ExternalLocal = true
	svc5 := sp("ns5", "svc5", "172.30.0.45", ep("10.180.0.3", 80, ""), ep("10.180.0.10", 80, "node-1"))
	svc5.NodePort, svc5.LoadBalancerIPs = 3002, []string{"5.6.7.8"}
	svc5.LoadBalancerSourceRanges = []string{" 203.0.113.0/25", "203.0.113.128/25", "192.168.0.0/12", "192.168.1.0/24"}
	svc5.AffinityClientIP, svc5.AffinitySeconds = true, 10800
	svc6 := sp("ns6", "svc6", "172.30.0.46")
	svc7 := sp("ns7", "dns", "172.30.0.10", ep("10.180.0.7", 53, "node-1"))
	svc7.Protocol, svc7.Port, svc7.PortName = "UDP", 53, "dns"
	svc8 := sp("ns8", "fw1", "172.30.0.48", ep("10.180.0.8", 8080, ""))
	svc8.LoadBalancerIPs, svc8.LoadBalancerSourceRanges = []string{"5.6.7.9"}, []string{"198.51.100.0/24"}
	return []kubeproxy.ServicePort{svc1, svc2, svc3, svc4, svc5, svc6, svc7, svc8}
}

// listTable is `nft list table ip kube-proxy` in ns with its sets, maps and chains in name
// order (nft lists them in the order they were created, which means nothing).
func listTable(t *testing.T, ns string) string {
	t.Helper()
	out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
	if err != nil {
		t.Fatalf("nft list table in %s: %v\n%s", ns, err, out)
	}
	var head []string
	var blocks []string
	cur := ""
	for line := range strings.Lines(string(out)) {
		switch {
		case cur != "":
			cur += line
			if line == "\t}\n" {
				blocks, cur = append(blocks, cur), ""
			}
		case strings.HasPrefix(line, "\tset ") || strings.HasPrefix(line, "\tmap ") || strings.HasPrefix(line, "\tchain "):
			cur = line
		case strings.TrimSpace(line) != "":
			head = append(head, line)
		}
	}
	slices.Sort(blocks)
	return strings.Join(head, "") + strings.Join(blocks, "")
}

func apply(t *testing.T, ns string, text []byte) {
	t.Helper()
	if err := kernel.Do(ns, func() error { return nftnl.Apply(text) }); err != nil {
		t.Fatalf("apply in %s: %v", ns, err)
	}
}

func existing(t *testing.T, ns string) nftables.Existing {
	t.Helper()
	var ex nftables.Existing
	if err := kernel.Do(ns, func() (err error) { ex, err = nftnl.ListExisting(); return err }); err != nil {
		t.Fatal(err)
	}
	return ex
}

func requireNft(t *testing.T) {
	labtest.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft is missing (scripts/deps.sh installs nftables): %v", err)
	}
}

// What netlink writes is what nft writes for the same text: the kernel's tables read the
// same, rule for rule and element for element.
func TestApplyReadsLikeNftF(t *testing.T) {
	requireNft(t)
	viaNetlink, viaNft := labtest.Netns(t, "nftnl", "nl"), labtest.Netns(t, "nftnl", "nft")
	rs := nftables.Render(node, ports())
	if ex := existing(t, viaNetlink); len(ex.Chains)+len(ex.Sets) != 0 {
		t.Fatalf("a fresh namespace holds %v", ex)
	}
	apply(t, viaNetlink, nftables.Full(rs, existing(t, viaNetlink), true))
	if out, err := kernel.Run(viaNft, nftables.Dump(rs), "nft", "-f", "-"); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	got, want := listTable(t, viaNetlink), listTable(t, viaNft)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("table written through netlink differs from nft -f's (-nft +netlink):\n%s", d)
	}
	for _, s := range []string{"numgen random mod 2 vmap", "ip saddr != { ", "fib saddr type local", "update @affinity-",
		"dnat to 10.180.0.7:53", "masquerade fully-random", `comment "rules for kube-proxy"`} {
		if !strings.Contains(got, s) {
			t.Errorf("table lacks %q:\n%s", s, got)
		}
	}
	if n := strings.Count(got, "\tchain "); n != len(rs.Chains) {
		t.Errorf("the table lists %d chains, want %d", n, len(rs.Chains))
	}
	ex := existing(t, viaNetlink)
	if len(ex.Chains) != len(rs.Chains) {
		t.Errorf("ListExisting: %d chains, want %d", len(ex.Chains), len(rs.Chains))
	}
}

// A series of incremental syncs leaves the kernel holding exactly what one full sync of
// the final Services writes.
func TestIncrementalEqualsFull(t *testing.T) {
	requireNft(t)
	inc, full := labtest.Netns(t, "nftnl", "inc"), labtest.Netns(t, "nftnl", "full")
	ps := ports()
	prev := nftables.Render(node, ps)
	apply(t, inc, nftables.Full(prev, existing(t, inc), true))
	steps := []struct {
		what   string
		change func([]kubeproxy.ServicePort) []kubeproxy.ServicePort
	}{
		{"endpoint leaves", func(p []kubeproxy.ServicePort) []kubeproxy.ServicePort {
			p[3].Endpoints = p[3].Endpoints[:1]
			return p
		}},
		{"endpoint not ready", func(p []kubeproxy.ServicePort) []kubeproxy.ServicePort {
			p[4].Endpoints[1].Ready = false
			return p
		}},
		{"service added", func(p []kubeproxy.ServicePort) []kubeproxy.ServicePort {
			s := p[0]
			s.Name, s.ClusterIP, s.NodePort = "new", "172.30.0.99", 3099
			s.Endpoints = []kubeproxy.Endpoint{ep("10.180.0.91", 80, "node-1"), ep("10.180.0.92", 80, "")}
			return append(p, s)
		}},
		{"service removed", func(p []kubeproxy.ServicePort) []kubeproxy.ServicePort {
			return append(p[:1], p[2:]...) // svc2 and its external chains
		}},
		{"endpoints gone", func(p []kubeproxy.ServicePort) []kubeproxy.ServicePort {
			p[0].Endpoints = nil
			return p
		}},
		{"affinity off, source ranges changed", func(p []kubeproxy.ServicePort) []kubeproxy.ServicePort {
			for i := range p {
				if p[i].Name == "svc5" {
					p[i].AffinityClientIP = false
					p[i].LoadBalancerSourceRanges = []string{"203.0.113.0/24"}
				}
			}
			return p
		}},
	}
	for _, s := range steps {
		ps = s.change(ps)
		next := nftables.Render(node, ps)
		d := nftables.Diff(prev, next)
		if d == nil {
			t.Fatalf("%s: no change", s.what)
		}
		apply(t, inc, d)
		prev = next
	}
	apply(t, full, nftables.Full(prev, existing(t, full), true))
	got, want := listTable(t, inc), listTable(t, full)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after incremental syncs the table differs from a full sync's (-full +incremental):\n%s", d)
	}
	// A full sync over the table in place, also the first of a restarted agent (which
	// re-creates the base chains), changes nothing.
	for _, first := range []bool{false, true} {
		apply(t, inc, nftables.Full(prev, existing(t, inc), first))
		if d := cmp.Diff(want, listTable(t, inc)); d != "" {
			t.Errorf("a full sync (first %v) over the table changed it (-want +got):\n%s", first, d)
		}
	}
}

// A transaction with an error changes nothing.
func TestApplyIsAtomic(t *testing.T) {
	requireNft(t)
	ns := labtest.Netns(t, "nftnl", "atom")
	rs := nftables.Render(node, ports())
	apply(t, ns, nftables.Full(rs, nftables.Existing{}, true))
	before := listTable(t, ns)
	bad := "add element ip kube-proxy cluster-ips { 172.30.0.77 }\nadd rule ip kube-proxy no-such-chain drop\n"
	err := kernel.Do(ns, func() error { return nftnl.Apply([]byte(bad)) })
	if err == nil {
		t.Fatal("a rule in a missing chain was accepted")
	}
	if after := listTable(t, ns); after != before {
		t.Errorf("a failed transaction changed the table:\n%s", cmp.Diff(before, after))
	}
}

// A full sync from no table in stages leaves exactly what one Full transaction leaves
// (`nft list table` the same, in the same order), and nothing is live before the last
// stage: until then the base chains hold no rule.
func TestStagedEqualsFull(t *testing.T) {
	requireNft(t)
	staged, full := labtest.Netns(t, "nftnl", "stg"), labtest.Netns(t, "nftnl", "one")
	rs := nftables.Render(node, ports())
	if ex := existing(t, staged); ex.Table {
		t.Fatalf("a new namespace has table %s: %+v", nftables.Table, ex)
	}
	apply(t, full, nftables.Full(rs, existing(t, full), true))
	stages := nftables.Staged(rs, 2)
	if len(stages) < 4 {
		t.Fatalf("%d stages for %d Services in stages of 2", len(stages), len(ports()))
	}
	for i, s := range stages {
		apply(t, staged, s)
		if i == len(stages)-1 {
			break
		}
		out, err := kernel.Run(staged, nil, "nft", "list", "table", "ip", nftables.Table)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for base := range nftables.BaseChains() {
			_, rest, found := strings.Cut(string(out), "\tchain "+base+" {\n")
			body, _, _ := strings.Cut(rest, "\t}\n")
			_, rules, hooked := strings.Cut(body, "policy accept;\n")
			if !found || !hooked {
				t.Fatalf("after stage %d no base chain %s:\n%s", i+1, base, out)
			}
			if strings.TrimSpace(rules) != "" {
				t.Errorf("after stage %d of %d base chain %s has rules:\n%s", i+1, len(stages), base, rules)
			}
		}
	}
	raw := func(ns string) string {
		out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	if d := cmp.Diff(raw(full), raw(staged)); d != "" {
		t.Errorf("staged table differs from one transaction's (-full +staged):\n%s", d)
	}
	if ex := existing(t, staged); !ex.Table {
		t.Error("ListExisting does not see the table")
	}
}

// ApplyAll applies its transactions in order and stops at the first that fails, naming it.
func TestApplyAllStopsAtTheFirstError(t *testing.T) {
	requireNft(t)
	ns := labtest.Netns(t, "nftnl", "all")
	rs := nftables.Render(node, ports())
	stages := nftables.Staged(rs, 2)
	bad := []byte("add rule ip kube-proxy no-such-chain drop\n")
	never := []byte("add element ip kube-proxy cluster-ips { 172.30.0.77 }\n")
	err := kernel.Do(ns, func() error { return nftnl.ApplyAll([][]byte{stages[0], bad, never}) })
	if err == nil || !strings.Contains(err.Error(), "transaction 2 of 3") {
		t.Fatalf("got %v, want the second transaction's error", err)
	}
	out, lerr := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
	if lerr != nil {
		t.Fatalf("the first transaction was not applied: %v\n%s", lerr, out)
	}
	if strings.Contains(string(out), "172.30.0.77") {
		t.Errorf("a transaction after the failed one was applied:\n%s", out)
	}
}

// A Conn stays usable across transactions, also after one failed.
func TestConnAcrossTransactions(t *testing.T) {
	requireNft(t)
	ns := labtest.Netns(t, "nftnl", "conn")
	rs := nftables.Render(node, ports())
	err := kernel.Do(ns, func() error {
		c, err := nftnl.Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Apply(nftables.Full(rs, nftables.Existing{}, true)); err != nil {
			return err
		}
		if err := c.Apply([]byte("add rule ip kube-proxy no-such-chain drop\n")); err == nil {
			return fmt.Errorf("a rule in a missing chain was accepted")
		}
		for _, ip := range []string{"172.30.0.77", "172.30.0.78"} {
			if err := c.Apply([]byte("add element ip kube-proxy cluster-ips { " + ip + " }\n")); err != nil {
				return fmt.Errorf("after a failed transaction: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := kernel.Run(ns, nil, "nft", "list", "set", "ip", nftables.Table, nftables.SetClusterIPs)
	if err != nil || !strings.Contains(string(out), "172.30.0.77") || !strings.Contains(string(out), "172.30.0.78") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// A full sync over a table in place (an agent restarting on its node), in the stages of
// nftables.Restaged, leaves what one Full transaction leaves — and what a sync on a new
// node leaves — while every stage keeps every Service served: no chain a packet can
// reach (from a base chain, a map element or another chain) is empty before its time.
// Over a table that already holds the rules it changes nothing, listing order included.
func TestRestagedEqualsFull(t *testing.T) {
	requireNft(t)
	rst, one, fresh := labtest.Netns(t, "nftnl", "rst"), labtest.Netns(t, "nftnl", "one"), labtest.Netns(t, "nftnl", "new")
	old := ports()
	gone := old[0]
	gone.Name, gone.ClusterIP = "gone", "172.30.0.98"
	gone.Endpoints = []kubeproxy.Endpoint{ep("10.180.0.97", 80, ""), ep("10.180.0.98", 80, "")}
	old = append(old, gone)
	prev := nftables.Render(node, old)
	// The kernel's table before the restart: the last sync's, with a base chain whose
	// priority someone changed.
	wrongBase := "flush chain ip kube-proxy nat-output\ndelete chain ip kube-proxy nat-output\n" +
		"add chain ip kube-proxy nat-output { type nat hook output priority -90 ; }\nadd rule ip kube-proxy nat-output jump services\n"
	for _, ns := range []string{rst, one} {
		apply(t, ns, nftables.Full(prev, existing(t, ns), true))
		apply(t, ns, []byte(wrongBase))
	}
	// What the restarted agent wants: an endpoint gone, one not ready, a Service added,
	// one removed, affinity off.
	ps := ports()
	ps[3].Endpoints = ps[3].Endpoints[:1]
	ps[4].Endpoints[1].Ready = false
	ps[4].AffinityClientIP = false
	added := ps[0]
	added.Name, added.ClusterIP, added.NodePort = "new", "172.30.0.99", 3099
	added.Endpoints = []kubeproxy.Endpoint{ep("10.180.0.91", 80, "node-1"), ep("10.180.0.92", 80, "")}
	ps = append(ps, added)
	next := nftables.Render(node, ps)

	apply(t, one, nftables.Full(next, existing(t, one), true))
	ex := existing(t, rst)
	if ex.Base["nat-output"] != "nat output -90" || ex.Base["nat-prerouting"] != "nat prerouting -100" {
		t.Fatalf("ListExisting read the base chains as %v", ex.Base)
	}
	stages := nftables.Restaged(next, ex, 2)
	if len(stages) < 5 {
		t.Fatalf("%d stages for %d Services in stages of 2", len(stages), len(ps))
	}
	for i, s := range stages {
		apply(t, rst, s)
		served(t, rst, fmt.Sprintf("after stage %d of %d", i+1, len(stages)), prev, next)
	}
	if d := cmp.Diff(listTable(t, one), listTable(t, rst)); d != "" {
		t.Errorf("the staged restart's table differs from one transaction's (-one +staged):\n%s", d)
	}
	for _, s := range nftables.Staged(next, 2) {
		apply(t, fresh, s)
	}
	if d := cmp.Diff(listTable(t, fresh), listTable(t, rst)); d != "" {
		t.Errorf("the staged restart's table differs from a new node's (-new +staged):\n%s", d)
	}
	raw := func(ns string) string {
		out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	before := raw(fresh)
	for _, s := range nftables.Restaged(next, existing(t, fresh), 2) {
		apply(t, fresh, s)
	}
	if d := cmp.Diff(before, raw(fresh)); d != "" {
		t.Errorf("a staged restart over the same rules changed the table (-before +after):\n%s", d)
	}
}

var chainRef = regexp.MustCompile(`(?:jump|goto) ([^ ,}\n]+)`)

// served fails the test when the table in ns has a base chain, or a chain some rule or
// map element leads to, without rules, unless the chain has none in prev's and next's
// rendering either.
func served(t *testing.T, ns, when string, prev, next *nftables.Ruleset) {
	t.Helper()
	out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", nftables.Table)
	if err != nil {
		t.Fatalf("%s: %v\n%s", when, err, out)
	}
	rules := map[string]int{}
	cur := ""
	for line := range strings.Lines(string(out)) {
		switch {
		case strings.HasPrefix(line, "\tchain "):
			cur = strings.TrimSuffix(strings.TrimPrefix(line, "\tchain "), " {\n")
			rules[cur] = 0
		case line == "\t}\n":
			cur = ""
		case cur != "":
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "type ") && !strings.HasPrefix(s, "comment ") {
				rules[cur]++
			}
		}
	}
	mayBeEmpty := func(c string) bool {
		for _, rs := range []*nftables.Ruleset{prev, next} {
			if ch := rs.Chains[c]; ch != nil && len(ch.Rules) > 0 {
				return false
			}
		}
		return true
	}
	reached := map[string]bool{}
	for base := range nftables.BaseChains() {
		reached[base] = true
	}
	for _, m := range chainRef.FindAllStringSubmatch(string(out), -1) {
		reached[m[1]] = true
	}
	for c := range reached {
		n, ok := rules[c]
		if !ok {
			t.Errorf("%s: no chain %s", when, c)
		} else if n == 0 && !mayBeEmpty(c) {
			t.Errorf("%s: chain %s is reached but empty", when, c)
		}
	}
}

// A Conn learns the generation each of its commits made; State reads the namespace's
// current one and the table's handle: any commit by anyone (here nft on another table)
// moves the generation, and a table made again has another handle.
func TestGenerationAndTableHandle(t *testing.T) {
	requireNft(t)
	ns := labtest.Netns(t, "nftnl", "gen")
	rs := nftables.Render(node, ports())
	err := kernel.Do(ns, func() error {
		c, err := nftnl.Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		s0, err := c.State()
		gen0, h0 := s0.Generation, s0.Table
		if err != nil {
			return err
		}
		if h0 != 0 || s0.Netns == 0 {
			return fmt.Errorf("handle %d with no table, netns cookie %d", h0, s0.Netns)
		}
		if err := c.ApplyAll(nftables.Staged(rs, 2)); err != nil {
			return err
		}
		s1, err := c.State()
		gen1, h1 := s1.Generation, s1.Table
		if err != nil {
			return err
		}
		if c.Committed() == 0 || c.Committed() != gen1 || gen1 <= gen0 || h1 == 0 {
			return fmt.Errorf("after the staged sync: committed %d, state %d (before %d), handle %d", c.Committed(), gen1, gen0, h1)
		}
		if err := c.Apply([]byte("add element ip kube-proxy cluster-ips { 172.30.0.77 }\n")); err != nil {
			return err
		}
		if c.Committed() != gen1+1 {
			return fmt.Errorf("one more commit: %d, want %d", c.Committed(), gen1+1)
		}
		if out, err := kernel.Run(ns, []byte("add table ip other\n"), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("nft: %v: %s", err, out)
		}
		s2, err := c.State()
		gen2, h2 := s2.Generation, s2.Table
		if err != nil {
			return err
		}
		if gen2 == c.Committed() || h2 != h1 {
			return fmt.Errorf("after another's commit: generation %d (ours %d), handle %d (was %d)", gen2, c.Committed(), h2, h1)
		}
		if err := c.Apply([]byte("delete table ip kube-proxy\n")); err == nil {
			return fmt.Errorf("delete table accepted by the compiler")
		}
		if out, err := kernel.Run(ns, []byte("delete table ip kube-proxy\n"), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("nft: %v: %s", err, out)
		}
		if err := c.Apply(nftables.Full(rs, nftables.Existing{}, true)); err != nil {
			return err
		}
		s3, err := c.State()
		gen3, h3 := s3.Generation, s3.Table
		if err != nil {
			return err
		}
		if gen3 != c.Committed() || h3 == h1 || h3 == 0 || s3.Netns != s0.Netns {
			return fmt.Errorf("table made again: generation %d (ours %d), handle %d (was %d)", gen3, c.Committed(), h3, h1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
