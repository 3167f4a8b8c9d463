package capture

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Summary is what a packet says about the flow it belongs to: addresses and ports as they
// are on that wire, the protocol, TCP flags, and for a VXLAN frame the outer header it
// travelled in (the addresses are then the inner packet's).
type Summary struct {
	Src, Dst netip.AddrPort // ports are 0 for ICMP
	Proto    string         // tcp, udp, icmp, arp, or the EtherType
	Flags    string         // TCP: SYN, SYN-ACK, ACK, PSH-ACK, FIN-ACK, RST...; ICMP: type/code
	Len      int            // IP payload length (the L4 segment)
	Encap    string         // "vxlan 172.18.0.11 → 172.18.0.12 VNI 1"
	// ICMP errors quote the packet they answer: its addresses, for matching to a flow.
	Quoted *Summary
}

// VXLANPorts are the UDP ports decoded as VXLAN (flannel's 8472 and IANA's 4789).
var VXLANPorts = map[uint16]bool{8472: true, 4789: true}

// Decode reads an Ethernet frame.
func Decode(frame []byte) Summary {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	return summarize(pkt, 0)
}

func summarize(pkt gopacket.Packet, depth int) Summary {
	var s Summary
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if arp, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		s.Proto = "arp"
		src, _ := netip.AddrFromSlice(arp.SourceProtAddress)
		dst, _ := netip.AddrFromSlice(arp.DstProtAddress)
		s.Src, s.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		s.Flags = map[uint16]string{1: "who-has", 2: "is-at"}[arp.Operation]
		return s
	}
	ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		if eth != nil {
			s.Proto = strings.ToLower(eth.EthernetType.String())
		}
		return s
	}
	src, _ := netip.AddrFromSlice(ip4.SrcIP.To4())
	dst, _ := netip.AddrFromSlice(ip4.DstIP.To4())
	s.Len = int(ip4.Length) - int(ip4.IHL)*4
	switch l := pkt.TransportLayer().(type) {
	case *layers.TCP:
		s.Proto = "tcp"
		s.Src, s.Dst = netip.AddrPortFrom(src, uint16(l.SrcPort)), netip.AddrPortFrom(dst, uint16(l.DstPort))
		s.Flags = tcpFlags(l)
		s.Len = len(l.Payload)
	case *layers.UDP:
		s.Proto = "udp"
		s.Src, s.Dst = netip.AddrPortFrom(src, uint16(l.SrcPort)), netip.AddrPortFrom(dst, uint16(l.DstPort))
		s.Len = len(l.Payload)
		if depth == 0 && VXLANPorts[uint16(l.DstPort)] && len(l.Payload) > 8 {
			inner := summarize(gopacket.NewPacket(l.Payload[8:], layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true}), 1)
			vni := uint32(l.Payload[4])<<16 | uint32(l.Payload[5])<<8 | uint32(l.Payload[6])
			inner.Encap = fmt.Sprintf("vxlan %s → %s VNI %d", src, dst, vni)
			return inner
		}
	default:
		s.Src, s.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		if ic, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			s.Proto = "icmp"
			s.Flags = ic.TypeCode.String()
			if t := ic.TypeCode.Type(); (t == layers.ICMPv4TypeDestinationUnreachable || t == layers.ICMPv4TypeTimeExceeded) && depth == 0 {
				q := summarize(gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.DecodeOptions{Lazy: true, NoCopy: true}), 1)
				if q.Src.IsValid() {
					s.Quoted = &q
				}
			}
		} else {
			s.Proto = strings.ToLower(ip4.Protocol.String())
		}
	}
	return s
}

func tcpFlags(t *layers.TCP) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{t.SYN, "SYN"}, {t.FIN, "FIN"}, {t.RST, "RST"}, {t.PSH, "PSH"}, {t.ACK, "ACK"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, "-")
}

// Flow is a connection's two ends at one point of the path, in either order.
type Flow struct{ A, B netip.AddrPort }

// Key is the same for both directions of a flow.
func (f Flow) Key() Flow {
	if f.B.Addr().Less(f.A.Addr()) || (f.B.Addr() == f.A.Addr() && f.B.Port() < f.A.Port()) {
		return Flow{f.B, f.A}
	}
	return f
}

// FlowOf is the flow a summary belongs to (for an ICMP error, the flow it answers).
func (s Summary) FlowOf() Flow {
	if s.Quoted != nil {
		return Flow{s.Quoted.Src, s.Quoted.Dst}.Key()
	}
	return Flow{s.Src, s.Dst}.Key()
}
