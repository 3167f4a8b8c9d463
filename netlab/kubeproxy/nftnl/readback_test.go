package nftnl_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gnft "github.com/google/nftables"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftnl"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// holds is Conn.Holds in ns for rs.
func holds(t *testing.T, ns string, rs *nftables.Ruleset) (bool, string) {
	t.Helper()
	var same bool
	var why string
	if err := kernel.Do(ns, func() error {
		c := &nftnl.Conn{}
		defer c.Close()
		var err error
		same, why, err = c.Holds(rs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return same, why
}

// A table read back compares equal with the rules it was built from, whichever way it
// was built (one transaction, incremental changes, stages from nothing or over another
// table), and unequal after any change
// to it by another program: a rule added or removed, an element, a chain's hook, the
// table's flags — or with other Services.
func TestHoldsReadsTheTableBack(t *testing.T) {
	requireNft(t)
	ns := labtest.Netns(t, "nftnl", "rb")
	all := ports()
	rs := nftables.Render(node, all)
	if same, why := holds(t, ns, rs); same || why != "no table" {
		t.Fatalf("no table: same %v (%s)", same, why)
	}
	apply(t, ns, nftables.Full(rs, existing(t, ns), true))
	if same, why := holds(t, ns, rs); !same {
		t.Fatalf("after one transaction: differs: %s", why)
	}
	// Incremental changes: an endpoint leaves, a Service goes, then both come back.
	fewer := slices.Clone(all[:len(all)-1])
	fewer[0].Endpoints = nil
	rs2 := nftables.Render(node, fewer)
	apply(t, ns, nftables.Diff(rs, rs2))
	if same, why := holds(t, ns, rs2); !same {
		t.Fatalf("after incremental changes: differs: %s", why)
	}
	if same, _ := holds(t, ns, rs); same {
		t.Fatal("the table after changes compares equal with the rules before them")
	}
	apply(t, ns, nftables.Diff(rs2, rs))
	if same, why := holds(t, ns, rs); !same {
		t.Fatalf("after changing back: differs: %s", why)
	}
	// Built in stages from nothing (Staged), and rewritten in stages over a table of
	// other Services (Restaged).
	nft := func(cmd string) {
		t.Helper()
		if out, err := kernel.Run(ns, []byte(cmd+"\n"), "nft", "-f", "-"); err != nil {
			t.Fatalf("nft %s: %v: %s", cmd, err, out)
		}
	}
	nft("delete table ip kube-proxy")
	applyAll(t, ns, nftables.Staged(rs, 2))
	if same, why := holds(t, ns, rs); !same {
		t.Fatalf("after Staged: differs: %s", why)
	}
	applyAll(t, ns, nftables.Restaged(rs2, existing(t, ns), 2))
	if same, why := holds(t, ns, rs2); !same {
		t.Fatalf("after Restaged over another table: differs: %s", why)
	}
	applyAll(t, ns, nftables.Restaged(rs, existing(t, ns), 2))
	if same, why := holds(t, ns, rs); !same {
		t.Fatalf("after Restaged back: differs: %s", why)
	}
	nft("add table ip other") // another table's commit changes nothing of ours
	if same, why := holds(t, ns, rs); !same {
		t.Fatalf("after another table's commit: differs: %s", why)
	}
	for _, c := range []struct{ change, undo string }{
		{"add rule ip kube-proxy services counter", ""},
		{"add rule ip kube-proxy mark-for-masquerade meta mark set mark or 0x8000", ""},
		{"delete element ip kube-proxy cluster-ips { 172.30.0.41 }", "add element ip kube-proxy cluster-ips { 172.30.0.41 }"},
		{"add element ip kube-proxy nodeport-ips { 192.168.0.9 }", "delete element ip kube-proxy nodeport-ips { 192.168.0.9 }"},
		{"add chain ip kube-proxy extra", "delete chain ip kube-proxy extra"},
		{"add set ip kube-proxy extra { type ipv4_addr ; }", "delete set ip kube-proxy extra"},
		{"delete chain ip kube-proxy nat-output\nadd chain ip kube-proxy nat-output { type nat hook output priority -99 ; }\nadd rule ip kube-proxy nat-output jump services", ""},
		{"add table ip kube-proxy { flags dormant ; }", "add table ip kube-proxy"},
	} {
		nft(c.change)
		if same, _ := holds(t, ns, rs); same {
			t.Errorf("after %q: compares equal", c.change)
		}
		if c.undo != "" {
			nft(c.undo)
		} else {
			nft("delete table ip kube-proxy")
			apply(t, ns, nftables.Full(rs, existing(t, ns), true))
		}
		if same, why := holds(t, ns, rs); !same {
			t.Fatalf("after undoing %q: differs: %s", c.change, why)
		}
	}
}

// applyAll applies texts in ns, each in one transaction.
func applyAll(t *testing.T, ns string, texts [][]byte) {
	t.Helper()
	if err := kernel.Do(ns, func() error { return nftnl.ApplyAll(texts) }); err != nil {
		t.Fatal(err)
	}
}

// What a syncer that defers deletes leaves behind (chains it flushed, and here an
// affinity set no rule uses any more), DeleteStale deletes: the table then holds exactly
// what the ports make.
func TestDeleteStaleLeavesTheTableAsTheModel(t *testing.T) {
	requireNft(t)
	ns := labtest.Netns(t, "nftnl", "ds")
	all := ports()
	rs := nftables.Render(node, all)
	apply(t, ns, nftables.Full(rs, existing(t, ns), true))
	svc5 := slices.IndexFunc(all, func(p kubeproxy.ServicePort) bool { return p.AffinityClientIP })
	if svc5 < 0 || len(all[svc5].Endpoints) < 2 {
		t.Fatal("no port with affinity and two endpoints")
	}
	fewer := slices.Clone(all)
	fewer[svc5].AffinityClientIP = false
	fewer[svc5].Endpoints = fewer[svc5].Endpoints[:1]
	rs2 := nftables.Render(node, fewer)
	var kept strings.Builder
	for l := range strings.Lines(string(nftables.Diff(rs, rs2))) {
		if !strings.HasPrefix(l, "delete ") {
			kept.WriteString(l)
		}
	}
	apply(t, ns, []byte(kept.String()))
	if same, _ := holds(t, ns, rs2); same {
		t.Fatal("the table with a flushed chain and an unused affinity set holds what the ports make")
	}
	del := string(nftables.DeleteStale(rs2, existing(t, ns)))
	if !strings.Contains(del, "delete set ip kube-proxy affinity-") || !strings.Contains(del, "delete chain ip kube-proxy endpoint-") {
		t.Fatalf("DeleteStale deletes no affinity set or no endpoint chain:\n%s", del)
	}
	apply(t, ns, []byte(del))
	if same, why := holds(t, ns, rs2); !same {
		t.Fatalf("after DeleteStale: differs: %s", why)
	}
	if d := nftables.DeleteStale(rs2, existing(t, ns)); d != nil {
		t.Fatalf("DeleteStale after DeleteStale: %s", d)
	}
}

// Existing lists the table's chains, every set (anonymous ones too) and the base
// chains' hooks as google/nftables reads them; nothing when there is no table.
func TestExistingListsTheTable(t *testing.T) {
	requireNft(t)
	ns := labtest.Netns(t, "nftnl", "ex")
	if ex := existing(t, ns); ex.Table || len(ex.Chains)+len(ex.Sets)+len(ex.Base) > 0 {
		t.Fatalf("no table: %+v", ex)
	}
	rs := nftables.Render(node, ports())
	apply(t, ns, nftables.Full(rs, existing(t, ns), true))
	ex := existing(t, ns)
	var chains, sets []string
	base := map[string]string{}
	if err := kernel.Do(ns, func() error {
		conn, err := gnft.New()
		if err != nil {
			return err
		}
		cs, err := conn.ListChainsOfTableFamily(gnft.TableFamilyIPv4)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.Table.Name != nftables.Table {
				continue
			}
			chains = append(chains, c.Name)
			if c.Hooknum != nil {
				hooks := map[gnft.ChainHook]string{*gnft.ChainHookPrerouting: "prerouting", *gnft.ChainHookInput: "input",
					*gnft.ChainHookForward: "forward", *gnft.ChainHookOutput: "output", *gnft.ChainHookPostrouting: "postrouting"}
				base[c.Name] = fmt.Sprintf("%s %s %d", c.Type, hooks[*c.Hooknum], *c.Priority)
			}
		}
		ss, err := conn.GetSets(&gnft.Table{Name: nftables.Table, Family: gnft.TableFamilyIPv4})
		for _, s := range ss {
			sets = append(sets, s.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !ex.Table {
		t.Fatal("the table is not listed")
	}
	if d := cmp.Diff(chains, ex.Chains); d != "" {
		t.Errorf("chains (-google/nftables +Existing):\n%s", d)
	}
	if d := cmp.Diff(sets, ex.Sets); d != "" {
		t.Errorf("sets (-google/nftables +Existing):\n%s", d)
	}
	if d := cmp.Diff(base, ex.Base); d != "" {
		t.Errorf("base chains (-google/nftables +Existing):\n%s", d)
	}
	if d := cmp.Diff(nftables.BaseChains(), ex.Base); d != "" {
		t.Errorf("base chains (-kube-proxy's +Existing):\n%s", d)
	}
	if !slices.ContainsFunc(ex.Sets, func(s string) bool { return strings.HasPrefix(s, "__") }) {
		t.Error("no anonymous set listed")
	}
}
