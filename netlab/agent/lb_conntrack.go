package agent

import (
	"net"

	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// expireConntrack deletes the LB's conntrack entries that carry a virtual service's
// connections to a real server that left it, as IPVS does with expire_nodest_conn: once a
// node is out, a client that reuses a source port would otherwise follow the old entry
// (SYN_SENT lives 120 s) to the dead node instead of being scheduled again. It runs in
// the agent's own namespace (the LB's) and returns how many entries it deleted.
func expireConntrack(vs lb.VirtualService, b lb.Backend) (uint, error) {
	f := &netlink.ConntrackFilter{}
	proto := uint8(unix.IPPROTO_TCP)
	if vs.Protocol == lb.ProtoUDP {
		proto = unix.IPPROTO_UDP
	}
	if err := f.AddProtocol(proto); err != nil {
		return 0, err
	}
	if err := f.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(vs.VIP)); err != nil {
		return 0, err
	}
	if err := f.AddPort(netlink.ConntrackOrigDstPort, uint16(vs.Port)); err != nil {
		return 0, err
	}
	if err := f.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(b.IP)); err != nil {
		return 0, err
	}
	return netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f)
}
