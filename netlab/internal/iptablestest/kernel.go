// Package iptablestest is a model of one network namespace's iptables for tests: Kernel
// applies iptables-restore --noflush input as the kernel does, and Tracer walks the first
// packet of a new connection through the result, keeping the state the real matches keep
// (statistic nth counters, xt_recent lists, the packet mark). Without a random source, a
// random statistic match explores both branches and weighs each outcome by its
// probability, so a test sees every place a Service can send a packet.
//
// It understands the options netlab's renderers write (kube-proxy's iptables mode and
// the LB) and rejects anything else, so a rule is never silently ignored. The kubeproxy,
// lb and plan tests share it; it is test-only (package internal, imported by _test
// files). It reads the text through package iptables, the one parser.
package iptablestest

import (
	"errors"
	"fmt"
	"slices"

	"github.com/netlabdev/netlab/netlab/iptables"
)

// maxChainName is the kernel's limit on a chain name (XT_EXTENSION_MAXNAMELEN - 1 - 2).
const maxChainName = 28

// builtin lists each table's built-in chains.
var builtin = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":    {"PREROUTING", "OUTPUT"},
}

// IsBuiltin says whether chain is a built-in chain of table.
func IsBuiltin(table, chain string) bool { return slices.Contains(builtin[table], chain) }

// Kernel holds every table's chains and rules: table → chain → rules in order.
type Kernel struct {
	Tables map[string]map[string][]*Rule
}

// NewKernel is an empty namespace: the built-in chains of every table, no rules.
func NewKernel() *Kernel {
	k := &Kernel{Tables: map[string]map[string][]*Rule{}}
	for table, chains := range builtin {
		k.Tables[table] = map[string][]*Rule{}
		for _, c := range chains {
			k.Tables[table][c] = nil
		}
	}
	return k
}

// Load is a new Kernel holding text restored into an empty namespace: iptables-save
// output, or a renderer's restore input.
func Load(text []byte) (*Kernel, error) {
	k := NewKernel()
	if err := k.Restore(text); err != nil {
		return nil, err
	}
	return k, nil
}

// Restore applies iptables-restore --noflush input: a declared user chain is created or
// flushed (a built-in one keeps its rules), -N creates, -F flushes, -X deletes an empty,
// unreferenced chain, -A appends, -I inserts, -D deletes. Afterwards every jump must
// land on a chain that exists. Every problem is an error naming its line.
func (k *Kernel) Restore(text []byte) error {
	d, err := iptables.Parse(text)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range d.Tables {
		tab, ok := k.Tables[t.Name]
		if !ok {
			return fmt.Errorf("unknown table %q", t.Name)
		}
		for _, c := range t.Chains {
			switch {
			case len(c.Name) > maxChainName:
				errs = append(errs, fmt.Errorf("line %d: chain name %q longer than %d", c.Line, c.Name, maxChainName))
			case IsBuiltin(t.Name, c.Name):
			default:
				tab[c.Name] = nil // create or flush
			}
		}
		for _, r := range t.Rules {
			if err := k.apply(t.Name, r); err != nil {
				errs = append(errs, fmt.Errorf("line %d: %w", r.Line, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return k.checkJumps()
}

func (k *Kernel) apply(table string, r iptables.Rule) error {
	tab := k.Tables[table]
	_, exists := tab[r.Chain]
	switch r.Op {
	case "-N":
		if exists {
			return fmt.Errorf("-N %s: chain exists", r.Chain)
		}
		tab[r.Chain] = nil
		return nil
	case "-X":
		if !exists || IsBuiltin(table, r.Chain) {
			return fmt.Errorf("-X of missing or built-in chain %s/%s", table, r.Chain)
		}
		if len(tab[r.Chain]) > 0 {
			return fmt.Errorf("-X of chain %s/%s that still has %d rules", table, r.Chain, len(tab[r.Chain]))
		}
		for c, rules := range tab {
			for _, x := range rules {
				if x.target == r.Chain {
					return fmt.Errorf("-X of chain %s/%s still referenced from %s", table, r.Chain, c)
				}
			}
		}
		delete(tab, r.Chain)
		return nil
	}
	if !exists {
		return fmt.Errorf("%s to missing chain %s/%s", r.Op, table, r.Chain)
	}
	switch r.Op {
	case "-F":
		tab[r.Chain] = nil
		return nil
	case "-D":
		i := slices.IndexFunc(tab[r.Chain], func(x *Rule) bool { return slices.Equal(x.Args, r.Args) })
		if i < 0 {
			return fmt.Errorf("-D of a rule %s/%s does not have", table, r.Chain)
		}
		tab[r.Chain] = slices.Delete(tab[r.Chain], i, i+1)
		return nil
	}
	rule, err := parseRule(table, r.Chain, r.Args)
	if err != nil {
		return err
	}
	rule.Line = r.Line
	if r.Op == "-I" {
		return k.insert(rule, r.Pos)
	}
	tab[r.Chain] = append(tab[r.Chain], rule)
	return nil
}

func (k *Kernel) insert(r *Rule, pos int) error {
	rules := k.Tables[r.Table][r.Chain]
	if pos < 1 || pos > len(rules)+1 {
		return fmt.Errorf("-I %s %d: chain has %d rules", r.Chain, pos, len(rules))
	}
	k.Tables[r.Table][r.Chain] = slices.Insert(rules, pos-1, r)
	return nil
}

// Insert puts a rule at position pos (1 = first) of a chain, as `iptables -I` does.
func (k *Kernel) Insert(table, chain string, pos int, args []string) error {
	if _, ok := k.Tables[table][chain]; !ok {
		return fmt.Errorf("-I to missing chain %s/%s", table, chain)
	}
	r, err := parseRule(table, chain, args)
	if err != nil {
		return err
	}
	return k.insert(r, pos)
}

// Has says whether chain holds a rule with exactly args.
func (k *Kernel) Has(table, chain string, args []string) bool {
	return slices.ContainsFunc(k.Tables[table][chain], func(r *Rule) bool { return slices.Equal(r.Args, args) })
}

// checkJumps: every jump lands on a chain of its table.
func (k *Kernel) checkJumps() error {
	var errs []error
	for tn, tab := range k.Tables {
		for c, rules := range tab {
			for _, r := range rules {
				if r.target == "" || isTerminalTarget(r.target) {
					continue
				}
				if _, ok := tab[r.target]; !ok {
					errs = append(errs, fmt.Errorf("table %s chain %s: jump to missing chain %s", tn, c, r.target))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Rules returns the rules of a chain.
func (k *Kernel) Rules(table, chain string) []*Rule { return k.Tables[table][chain] }

// Chains returns the sorted chain names of a table, built-in ones included.
func (k *Kernel) Chains(table string) []string {
	var out []string
	for c := range k.Tables[table] {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// UserChains returns the sorted user-defined chains of every table.
func (k *Kernel) UserChains() []string {
	var out []string
	for tn, tab := range k.Tables {
		for c := range tab {
			if !IsBuiltin(tn, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}
