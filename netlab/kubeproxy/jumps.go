package kubeproxy

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
