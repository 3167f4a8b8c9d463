package agent

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftnl"
)

// NewRuleSyncerMode returns a syncer for node in kube-proxy mode ("iptables", "" or
// "nftables").
func NewRuleSyncerMode(node kubeproxy.Node, mode string) (*RuleSyncer, error) {
	switch mode {
	case "", "iptables":
		return &RuleSyncer{node: node}, nil
	case "nftables":
		return &RuleSyncer{node: node, nft: true, nftModel: nftables.NewModel(node), nftConn: &nftnl.Conn{}}, nil
	}
	return nil, fmt.Errorf("unknown kube-proxy mode %q (iptables or nftables)", mode)
}

// anonPerStage bounds the rules with an anonymous set in one transaction of a staged
// full sync (see nftables.Staged).
const anonPerStage = 500

// fullSyncGCPercent is the garbage collector's GOGC while a full sync runs.
const fullSyncGCPercent = 400

// syncNFT is Sync in nftables mode, as kube-proxy's nftables proxier does it: an
// incremental sync is one netlink transaction (the nft -f text the model writes,
// compiled by nftnl), so the table changes atomically; it writes only the chains and map
// elements of the Service ports that changed (the model finds them and writes their
// commands without walking the table). A full sync flushes and refills every chain, set
// and map, re-creates base chains whose hook is not kube-proxy's, and deletes the
// per-service chains and affinity sets the kernel holds that are no longer wanted: from
// no table in stages live at the last (nftables.Staged), over a table in place in stages
// each of which keeps every Service served (nftables.Restaged).
func (r *RuleSyncer) syncNFT(ports []kubeproxy.ServicePort, full bool) (SyncStats, error) {
	start := time.Now()
	if full || !r.nftSynced {
		// A full sync allocates much that lives only until its stages are sent (the
		// rendering, text, messages): the heap may grow further between collections
		// meanwhile (a fifth of netlab's CPU time in a 1000-Service full sync was the
		// collector's).
		defer debug.SetGCPercent(debug.SetGCPercent(fullSyncGCPercent))
	}
	delta, ok := r.nftModel.Update(ports) // only the changed ports rendered again
	var stages [][]byte
	if full || !ok || !r.nftSynced {
		existing, err := nftnl.ListExisting()
		if err != nil {
			r.nftSynced = false
			return SyncStats{Full: true, Took: time.Since(start)}, err
		}
		if existing.Table {
			// The table serves: refill it in stages, each leaving every Service served
			// (see nftables.Restaged), not in one transaction that costs N².
			stages = nftables.Restaged(r.nftModel.Ruleset(), existing, anonPerStage)
		} else {
			// Nothing is served yet: build the table in stages, live at the last one.
			stages = nftables.Staged(r.nftModel.Ruleset(), anonPerStage)
		}
		full = true
	} else if delta != nil {
		stages = [][]byte{delta}
	}
	st := SyncStats{Full: full}
	for _, input := range stages {
		st.Bytes += len(input)
	}
	if err := r.nftConn.ApplyAll(stages); err != nil {
		r.nftSynced = false
		st.Took = time.Since(start)
		return st, err
	}
	if full {
		r.lastFull = time.Now()
	}
	r.nftSynced = true
	st.Took = time.Since(start)
	return st, nil
}

// Close releases the syncer's netlink connection (nftables mode); the rules stay.
func (r *RuleSyncer) Close() error { return r.nftConn.Close() }
