package kernel_test

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// RulesExist says, rule by rule, which rules a namespace has (iptables -C inside it), and
// fails for a chain that is not there or a namespace that is not.
func TestIntegrationRulesExist(t *testing.T) {
	labtest.RequireRoot(t)
	ns := labtest.Netns(t, "ke", "r")
	if err := kernel.Restore(ns, []byte("*nat\n:NL-TEST - [0:0]\n-A PREROUTING -m comment --comment \"netlab test\" -j NL-TEST\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	rules := []kernel.Rule{
		{Table: "nat", Chain: "PREROUTING", Args: []string{"-m", "comment", "--comment", "netlab test", "-j", "NL-TEST"}},
		{Table: "nat", Chain: "OUTPUT", Args: []string{"-m", "comment", "--comment", "netlab test", "-j", "NL-TEST"}},
		{Table: "nat", Chain: "PREROUTING", Args: []string{"-m", "comment", "--comment", "other", "-j", "NL-TEST"}},
	}
	got, err := kernel.RulesExist(ns, rules)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, false}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("RulesExist in %s = %v, want %v", ns, got, want)
	}
	if _, err := kernel.RulesExist(ns, []kernel.Rule{{Table: "nat", Chain: "PREROUTING", Args: []string{"-j", "NL-NO-SUCH-CHAIN"}}}); err == nil {
		t.Errorf("a jump to a chain %s does not have: no error", ns)
	}
	if _, err := kernel.RulesExist("nlt-no-such-namespace", rules[:1]); err == nil {
		t.Error("a namespace that is not there: no error")
	}
}
