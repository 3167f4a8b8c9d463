package kubeproxy

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/netlabdev/netlab/netlab/iptables"
)

// chainKubeletFirewall is the filter chain holding the anti-martian rule for localhost
// NodePorts; kube-proxy writes a duplicate of kubelet's.
const chainKubeletFirewall = "KUBE-FIREWALL"

// JumpRule is one rule in a built-in chain that jumps to a kube-proxy chain. Args are
// complete rule arguments (matches, comment, "-j", Target) for go-iptables.
type JumpRule struct {
	Table  string   `json:"table"`
	Chain  string   `json:"chain"`
	Target string   `json:"target"`
	Args   []string `json:"args"`
}

// JumpRules returns the jump rules kube-proxy ensures in built-in chains, in the order it
// ensures them. kube-proxy prepends each one that is missing (EnsureRule(Prepend)), so
// an applier reproduces its chains by inserting each missing rule at position 1 in this
// order, after making sure Target exists (Render's output declares every Target).
func JumpRules() []JumpRule {
	newOnly := []string{"-m", "conntrack", "--ctstate", "NEW"}
	type j struct {
		table, target, chain, comment string
		extra                         []string
	}
	table := []j{
		{"filter", ChainExternalServices, "INPUT", "kubernetes externally-visible service portals", newOnly},
		{"filter", ChainExternalServices, "FORWARD", "kubernetes externally-visible service portals", newOnly},
		{"filter", ChainNodePorts, "INPUT", "kubernetes health check service ports", nil},
		{"filter", ChainServices, "FORWARD", "kubernetes service portals", newOnly},
		{"filter", ChainServices, "OUTPUT", "kubernetes service portals", newOnly},
		{"filter", ChainForward, "FORWARD", "kubernetes forwarding rules", nil},
		{"filter", ChainProxyFirewall, "INPUT", "kubernetes load balancer firewall", newOnly},
		{"filter", ChainProxyFirewall, "OUTPUT", "kubernetes load balancer firewall", newOnly},
		{"filter", ChainProxyFirewall, "FORWARD", "kubernetes load balancer firewall", newOnly},
		{"nat", ChainServices, "OUTPUT", "kubernetes service portals", nil},
		{"nat", ChainServices, "PREROUTING", "kubernetes service portals", nil},
		{"nat", ChainPostrouting, "POSTROUTING", "kubernetes postrouting rules", nil},
		// kube-proxy's copies of kubelet's jumps (no comment).
		{"filter", chainKubeletFirewall, "INPUT", "", nil},
		{"filter", chainKubeletFirewall, "OUTPUT", "", nil},
	}
	out := make([]JumpRule, 0, len(table))
	for _, r := range table {
		args := append([]string(nil), r.extra...)
		if r.comment != "" {
			args = append(args, "-m", "comment", "--comment", r.comment)
		}
		args = append(args, "-j", r.target)
		out = append(out, JumpRule{Table: r.table, Chain: r.chain, Target: r.target, Args: args})
	}
	return out
}

// MissingJumps returns the jump rules a node's iptables-save output lacks, in JumpRules
// order. A jump counts as present when its built-in chain has a rule jumping to its
// target (each table, chain and target names one jump rule).
func MissingJumps(save *iptables.Dump) []JumpRule {
	have := map[string]bool{}
	for _, t := range save.Tables {
		for _, r := range t.Rules {
			if r.Op == "-A" {
				have[t.Name+" "+r.Chain+" "+r.Target()] = true
			}
		}
	}
	var out []JumpRule
	for _, j := range JumpRules() {
		if !have[j.Table+" "+j.Chain+" "+j.Target] {
			out = append(out, j)
		}
	}
	return out
}

// AppendJumps adds to iptables-restore input the lines that put each jump at the top of its
// chain, in order (each one inserted at position 1, as kube-proxy prepends them), inside
// its table's section: the chains and the jumps to them land in one transaction. A table
// the input has no section for gets one.
func AppendJumps(input []byte, jumps []JumpRule) []byte {
	if len(jumps) == 0 {
		return input
	}
	lines := map[string][]string{}
	var order []string
	for _, j := range jumps {
		if _, ok := lines[j.Table]; !ok {
			order = append(order, j.Table)
		}
		args := make([]string, len(j.Args))
		for i, a := range j.Args {
			if strings.ContainsAny(a, " \t\"") {
				a = strconv.Quote(a)
			}
			args[i] = a
		}
		lines[j.Table] = append(lines[j.Table], "-I "+j.Chain+" 1 "+strings.Join(args, " "))
	}
	var out bytes.Buffer
	table := ""
	for line := range bytes.Lines(input) {
		t := bytes.TrimSpace(line)
		switch {
		case len(t) > 0 && t[0] == '*':
			table = string(t[1:])
		case string(t) == "COMMIT" && lines[table] != nil:
			for _, l := range lines[table] {
				out.WriteString(l + "\n")
			}
			delete(lines, table)
		}
		out.Write(line)
	}
	for _, tb := range order {
		if ls, ok := lines[tb]; ok {
			out.WriteString("*" + tb + "\n")
			for _, l := range ls {
				out.WriteString(l + "\n")
			}
			out.WriteString("COMMIT\n")
		}
	}
	return out.Bytes()
}

// CanaryChain is the empty chain kube-proxy's iptables mode keeps in the mangle, nat and
// filter tables (its iptables Monitor): when a table is flushed of chains, the canary is
// gone too and kube-proxy resyncs. netlab's agent watches the jumps from the built-in
// chains for that instead (they go with a flush of rules as well), and keeps the canaries
// so that a node's iptables-save reads like a real one's.
const CanaryChain = "KUBE-PROXY-CANARY"

// canaryTables are the tables kube-proxy keeps a canary in, in its order.
var canaryTables = []string{"mangle", "nat", "filter"}

// MissingCanaries returns the tables whose canary chain save lacks.
func MissingCanaries(save *iptables.Dump) []string {
	var out []string
	for _, t := range canaryTables {
		if !slices.Contains(save.ChainNames(t), CanaryChain) {
			out = append(out, t)
		}
	}
	return out
}

// AppendCanaries declares the canary chain of each of tables in iptables-restore input,
// inside the table's section, or in a section of its own for a table the input has none
// for (mangle, which Render never writes). Declaring an empty chain that exists changes
// nothing.
func AppendCanaries(input []byte, tables []string) []byte {
	if len(tables) == 0 {
		return input
	}
	decl := ":" + CanaryChain + " - [0:0]\n"
	left := slices.Clone(tables)
	var out bytes.Buffer
	for line := range bytes.Lines(input) {
		out.Write(line)
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '*' {
			if i := slices.Index(left, string(t[1:])); i >= 0 {
				out.WriteString(decl)
				left = slices.Delete(left, i, i+1)
			}
		}
	}
	for _, t := range left {
		out.WriteString("*" + t + "\n" + decl + "COMMIT\n")
	}
	return out.Bytes()
}
