package agent

import (
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// clearStaleUDP deletes the node's UDP conntrack entries that carry a flow to a Service
// somewhere the rules no longer send it (kubeproxy.UDPServing says which), as kube-proxy
// does after a sync. It scans the table only when what the rules do with UDP changed, and
// once after the first sync (entries may be older than this agent). It runs in the agent's
// own namespace, the node's, whose conntrack table its rules fill. On an error (a failed
// delete, or a dump the kernel interrupted, which may have missed entries) the next call
// scans again, against the same earlier state.
func (k *kubeProxy) clearStaleUDP(ports []kubeproxy.ServicePort) error {
	u := kubeproxy.NewUDPServing(k.syncer.node, ports)
	prev := k.udp
	if prev != nil && prev.Key() == u.Key() {
		return nil
	}
	k.udp = u
	if u.Empty() && (prev == nil || prev.Empty()) {
		return nil
	}
	// A dump walks the kernel's whole conntrack hash (every namespace's buckets, 262 144
	// of them here: ~25 ms of CPU), however few entries this namespace has: a namespace
	// with none (a node's at up, before any traffic) has nothing stale.
	if countConntrack() == 0 {
		return nil
	}
	n, err := deleteConntrack(netlink.ConntrackTable, unix.AF_INET, udpStale{now: u, prev: prev})
	if n > 0 {
		k.log.Info("stale UDP conntrack entries deleted", "entries", n)
	}
	if err != nil {
		k.udp = prev // the next call scans again against the same earlier state
		return err
	}
	return nil
}

// The kernel calls of clearStaleUDP, replaced in tests.
var (
	countConntrack  = conntrackEntries
	deleteConntrack = netlink.ConntrackDeleteFilters
)

// udpStale matches the conntrack entries clearStaleUDP deletes.
type udpStale struct{ now, prev *kubeproxy.UDPServing }

func (f udpStale) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	dst, ok1 := netip.AddrFromSlice(flow.Forward.DstIP)
	src, ok2 := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return false
	}
	return f.now.StaleSince(f.prev, netip.AddrPortFrom(dst.Unmap(), flow.Forward.DstPort),
		netip.AddrPortFrom(src.Unmap(), flow.Reverse.SrcPort))
}

// conntrackEntries is the number of conntrack entries of this process's network namespace
// (-1 when unknown).
func conntrackEntries() int {
	b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}
