package kernel

import (
	"fmt"

	"github.com/coreos/go-iptables/iptables"
)

// Rule is one iptables rule in a chain of a table, as go-iptables takes it.
type Rule struct {
	Table, Chain string
	Args         []string
}

// RulesExist reports, rule by rule, whether each is in the named namespace (iptables -C,
// run from inside the namespace through go-iptables).
func RulesExist(ns string, rules []Rule) ([]bool, error) {
	out := make([]bool, len(rules))
	err := Do(ns, func() error {
		ipt, err := iptables.New(iptables.Timeout(5))
		if err != nil {
			return fmt.Errorf("iptables in %s: %w", ns, err)
		}
		for i, r := range rules {
			ok, err := ipt.Exists(r.Table, r.Chain, r.Args...)
			if err != nil {
				return fmt.Errorf("check %s/%s in %s: %w", r.Table, r.Chain, ns, err)
			}
			out[i] = ok
		}
		return nil
	})
	return out, err
}
