package kubeproxy

import (
	"github.com/netlabdev/netlab/netlab/internal/iptablestest"
)

// The tests trace Render's output through the test model of a node's iptables
// (internal/iptablestest), as kube-proxy's own tests trace theirs.

type (
	packet  = iptablestest.Packet
	outcome = iptablestest.Outcome
)

var dnatTargets = iptablestest.Targets

// traceEnv is what the tracer needs to know about the node.
type traceEnv struct {
	// localIPs are the node's own addresses; 127.0.0.0/8 always is.
	localIPs []string
	// recent is the xt_recent state: list name → source addresses in it.
	recent map[string][]string
}

// ruleset is a node's rules in the model.
type ruleset struct{ *iptablestest.Kernel }

// parseRules loads iptables-restore text as Render writes it into an empty node, with
// JumpRules in the built-in chains as an applier leaves them (each inserted at the top).
func parseRules(text []byte) (*ruleset, error) {
	k := iptablestest.NewKernel()
	for _, j := range JumpRules() {
		if err := k.Insert(j.Table, j.Chain, 1, j.Args); err != nil {
			return nil, err
		}
	}
	if err := k.Restore(text); err != nil {
		return nil, err
	}
	return &ruleset{k}, nil
}

// parseSave loads a node's iptables-save output, whose built-in chains hold the jumps.
func parseSave(text []byte) (*ruleset, error) {
	k, err := iptablestest.Load(text)
	if err != nil {
		return nil, err
	}
	return &ruleset{k}, nil
}

// trace walks pkt through the rules and returns every possible outcome.
func (rs *ruleset) trace(pkt packet, env traceEnv) ([]outcome, error) {
	tr, err := iptablestest.NewTracer(rs.Kernel, env.localIPs...)
	if err != nil {
		return nil, err
	}
	for name, srcs := range env.recent {
		for _, src := range srcs {
			if err := tr.AddRecent(name, src); err != nil {
				return nil, err
			}
		}
	}
	return tr.Trace(pkt)
}
