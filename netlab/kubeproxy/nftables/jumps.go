package nftables

// Jump is one rule from a base chain of table ip kube-proxy to one of kube-proxy's
// top-level chains.
type Jump struct{ Chain, Target string }

// Jumps lists the rules from the base chains to kube-proxy's top-level chains, in
// render order: what the kube-proxy agent's repair check expects to find in the kernel.
// Without them (a flushed or deleted table) no Service works.
func Jumps() []Jump {
	out := make([]Jump, 0, len(jumpChains))
	for _, j := range jumpChains {
		out = append(out, Jump{Chain: j.src, Target: j.dst})
	}
	return out
}
