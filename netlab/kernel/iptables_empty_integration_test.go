package kernel_test

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// IPTablesEmptyHere is true in a new namespace, and false once any IPv4 table is in it:
// made by iptables-restore (whichever backend iptables uses) or by nft in family ip.
func TestIntegrationIPTablesEmptyHere(t *testing.T) {
	labtest.RequireRoot(t)
	empty := func(ns string) bool {
		var got bool
		if err := kernel.Do(ns, func() error { got = kernel.IPTablesEmptyHere(); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	ns := labtest.Netns(t, "ke", "a")
	if !empty(ns) {
		t.Fatalf("a new namespace %s: IPTablesEmptyHere is false", ns)
	}
	if err := kernel.Restore(ns, []byte("*filter\n:NL-TEST - [0:0]\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	if empty(ns) {
		t.Errorf("%s with a filter table: IPTablesEmptyHere is true", ns)
	}
	if save, err := kernel.Save(ns, false, ""); err != nil || len(save) == 0 {
		t.Errorf("iptables-save in %s: %q, %v (expected the table IPTablesEmptyHere saw)", ns, save, err)
	}

	other := labtest.Netns(t, "ke", "b")
	if _, err := kernel.Run(other, []byte("add table ip nltest\n"), "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if empty(other) {
		t.Errorf("%s with an nft table of family ip: IPTablesEmptyHere is true", other)
	}
}
