package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// NewRuleSyncerMode returns a syncer for node in kube-proxy mode ("iptables", "" or
// "nftables").
func NewRuleSyncerMode(node kubeproxy.Node, mode string) (*RuleSyncer, error) {
	switch mode {
	case "", "iptables":
		return &RuleSyncer{node: node}, nil
	case "nftables":
		return &RuleSyncer{node: node, nft: true}, nil
	}
	return nil, fmt.Errorf("unknown kube-proxy mode %q (iptables or nftables)", mode)
}

// syncNFT is Sync in nftables mode, as kube-proxy's nftables proxier does it: every sync
// is one `nft -f` transaction, so the table changes atomically. A full sync recreates
// the base chains on the first run, flushes and refills every chain, set and map, and
// deletes the per-service chains and affinity sets the kernel holds that are no longer
// wanted; later syncs write only the chains and map elements that changed.
func (r *RuleSyncer) syncNFT(ports []kubeproxy.ServicePort, full bool) (SyncStats, error) {
	start := time.Now()
	ctx := context.Background()
	next := nftables.Render(r.node, ports)
	var input []byte
	if full || r.nftLast == nil {
		chains, err := kernel.RunHere(ctx, nil, "nft", "list", "chains")
		if err != nil {
			r.nftLast = nil
			return SyncStats{Full: true, Took: time.Since(start)}, err
		}
		sets, err := kernel.RunHere(ctx, nil, "nft", "-t", "list", "sets")
		if err != nil {
			r.nftLast = nil
			return SyncStats{Full: true, Took: time.Since(start)}, err
		}
		input = nftables.Full(next, nftables.ParseExisting(chains, sets), !r.started)
		full = true
	} else {
		input = nftables.Diff(r.nftLast, next)
	}
	st := SyncStats{Full: full, Bytes: len(input)}
	if input != nil {
		if _, err := kernel.RunHere(ctx, input, "nft", "-f", "-"); err != nil {
			r.nftLast = nil
			st.Took = time.Since(start)
			return st, err
		}
	}
	r.started = true
	if full {
		r.lastFull = time.Now()
	}
	r.nftLast = next
	st.Took = time.Since(start)
	return st, nil
}
