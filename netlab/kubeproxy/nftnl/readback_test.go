package nftnl_test

import (
	"slices"
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
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
		same, why, err = c.Holds(nftables.StagedSeq(rs, 1<<30))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return same, why
}

// A table read back compares equal with the rules it was built from, whichever way it
// was built (one transaction, stages, incremental changes), and unequal after any change
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
	nft := func(cmd string) {
		t.Helper()
		if out, err := kernel.Run(ns, []byte(cmd+"\n"), "nft", "-f", "-"); err != nil {
			t.Fatalf("nft %s: %v: %s", cmd, err, out)
		}
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
