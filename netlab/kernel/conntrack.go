package kernel

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Flow is one conntrack entry: the original direction as the first packet had it, and
// the reply direction as the answer will have it (a DNAT shows as a reply source that
// differs from the original destination).
type Flow struct {
	Proto    uint8
	OrigSrc  netip.AddrPort
	OrigDst  netip.AddrPort
	ReplySrc netip.AddrPort
	ReplyDst netip.AddrPort
	Mark     uint32
	Packets  uint64 // both directions
	Bytes    uint64
	// Established is a TCP connection in conntrack's ESTABLISHED state.
	Established bool
}

// Flows lists the IPv4 conntrack table of the named namespace.
func (h *Handles) Flows(ns string) ([]Flow, error) {
	nh, err := h.get(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, err
	}
	list, err := nh.ConntrackTableList(netlink.ConntrackTable, netlink.InetFamily(unix.AF_INET))
	if err != nil {
		return nil, fmt.Errorf("conntrack in %s: %w", ns, err)
	}
	out := make([]Flow, 0, len(list))
	for _, f := range list {
		out = append(out, Flow{
			Proto:    f.Forward.Protocol,
			OrigSrc:  addrPort(f.Forward.SrcIP, f.Forward.SrcPort),
			OrigDst:  addrPort(f.Forward.DstIP, f.Forward.DstPort),
			ReplySrc: addrPort(f.Reverse.SrcIP, f.Reverse.SrcPort),
			ReplyDst: addrPort(f.Reverse.DstIP, f.Reverse.DstPort),
			Mark:     f.Mark,
			Packets:  f.Forward.Packets + f.Reverse.Packets,
			Bytes:    f.Forward.Bytes + f.Reverse.Bytes,
		})
		if tcp, ok := f.ProtoInfo.(*netlink.ProtoInfoTCP); ok {
			out[len(out)-1].Established = tcp.State == nl.TCP_CONNTRACK_ESTABLISHED
		}
	}
	return out, nil
}

func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip.To4())
	return netip.AddrPortFrom(a, port)
}
