package capture

import (
	"fmt"
	"net/netip"
	"strings"
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

// Decode reads an Ethernet frame. The headers are read here, not by a packet library: the
// netlab binary starts twice per up and down, and gopacket's layers package costs every
// start of it ~1.5 ms of package initialisation and 5 MiB of tables the runtime scans
// (docs/design-notes.md, "The CLI's start"). What it reads is what tcpdump shows of a frame:
// 802.1Q tags, ARP, IPv4 (options skipped, fragments not reassembled), TCP, UDP (VXLAN on
// VXLANPorts unwrapped once), ICMP (an error's quoted packet). A header that does not fit
// in what was captured stops the decoding there: the summary keeps what was read before.
func Decode(frame []byte) Summary {
	return decodeEthernet(frame, 0)
}

// Header fields by offset; the names are those of the RFCs.
const (
	etherTypeIPv4  = 0x0800
	etherTypeARP   = 0x0806
	etherTypeDot1Q = 0x8100
	etherTypeQinQ  = 0x88a8
	protoICMP      = 1
	protoTCP       = 6
	protoUDP       = 17
	icmpUnreach    = 3
	icmpTimeExceed = 11
)

func decodeEthernet(frame []byte, depth int) Summary {
	var s Summary
	if len(frame) < 14 {
		return s
	}
	etherType, payload := be16(frame[12:]), frame[14:]
	if etherType < 0x0600 { // an 802.3 length: LLC follows
		s.Proto = "llc"
		return s
	}
	outer := etherType
	for (etherType == etherTypeDot1Q || etherType == etherTypeQinQ) && len(payload) >= 4 {
		etherType, payload = be16(payload[2:]), payload[4:]
	}
	switch etherType {
	case etherTypeARP:
		if a, ok := decodeARP(payload); ok {
			return a
		}
	case etherTypeIPv4:
		if ip, ok := parseIPv4(payload); ok {
			return ip.summarize(depth)
		}
	}
	s.Proto = etherTypeName(outer)
	return s
}

func decodeARP(b []byte) (Summary, bool) {
	if len(b) < 8 {
		return Summary{}, false
	}
	hw, pr := int(b[4]), int(b[5])
	if len(b) < 8+2*hw+2*pr {
		return Summary{}, false
	}
	src, _ := netip.AddrFromSlice(b[8+hw : 8+hw+pr])
	dst, _ := netip.AddrFromSlice(b[8+2*hw+pr : 8+2*hw+2*pr])
	s := Summary{Proto: "arp", Src: netip.AddrPortFrom(src, 0), Dst: netip.AddrPortFrom(dst, 0)}
	switch be16(b[6:]) {
	case 1:
		s.Flags = "who-has"
	case 2:
		s.Flags = "is-at"
	}
	return s, true
}

// ipv4 is an IPv4 header that parsed, and what follows it.
type ipv4 struct {
	src, dst netip.Addr
	proto    byte
	fragment bool   // more fragments follow, or this is not the first
	length   int    // the total length field (when it says 0, segmentation offload: what was captured, at most 65535)
	ihl      int    // header length in bytes
	payload  []byte // after the header, cut at the total length
}

// parseIPv4 reads an IPv4 header. A quoted header (in an ICMP error) may be followed by
// less than its total length: its payload is then what there is.
func parseIPv4(b []byte) (ipv4, bool) {
	if len(b) < 20 {
		return ipv4{}, false
	}
	ip := ipv4{length: int(be16(b[2:])), ihl: int(b[0]&0x0f) * 4, proto: b[9]}
	total := ip.length
	if total == 0 { // segmentation offload: the frame is the packet, longer than the field holds
		total = len(b)
		ip.length = min(total, 0xffff)
	}
	if total < 20 || ip.ihl < 20 || ip.ihl > total || ip.ihl > len(b) {
		return ipv4{}, false
	}
	if len(b) > total {
		b = b[:total]
	}
	for opts := b[20:ip.ihl]; len(opts) > 0; {
		switch opts[0] {
		case 0: // end of options
			opts = nil
		case 1: // no-operation
			opts = opts[1:]
		default:
			if len(opts) < 2 || int(opts[1]) < 2 || int(opts[1]) > len(opts) {
				return ipv4{}, false
			}
			opts = opts[opts[1]:]
		}
	}
	flagsFrag := be16(b[6:])
	ip.fragment = flagsFrag&0x2000 != 0 || flagsFrag&0x1fff != 0
	ip.src, _ = netip.AddrFromSlice(b[12:16])
	ip.dst, _ = netip.AddrFromSlice(b[16:20])
	ip.payload = b[ip.ihl:]
	return ip, true
}

func (ip ipv4) summarize(depth int) Summary {
	s := Summary{Len: ip.length - ip.ihl}
	l4 := ip.payload
	if !ip.fragment && len(l4) > 0 {
		// A TCP or UDP header cut short (a quoted one: 8 bytes) still says the protocol,
		// and its ports when they are there; its length is then 0. (With nothing after
		// the IP header, the length is the IP header's word.)
		switch ip.proto {
		case protoTCP:
			s.Proto, s.Len = "tcp", 0
			s.Src, s.Dst = netip.AddrPortFrom(ip.src, 0), netip.AddrPortFrom(ip.dst, 0)
			if len(l4) >= 20 {
				s.Src, s.Dst = netip.AddrPortFrom(ip.src, be16(l4)), netip.AddrPortFrom(ip.dst, be16(l4[2:]))
				s.Flags = tcpFlags(l4[13])
				if off := int(l4[12]>>4) * 4; off >= 20 && off <= len(l4) {
					s.Len = len(l4) - off
				}
			}
			return s
		case protoUDP:
			s.Proto, s.Len = "udp", 0
			s.Src, s.Dst = netip.AddrPortFrom(ip.src, 0), netip.AddrPortFrom(ip.dst, 0)
			if len(l4) < 8 {
				return s
			}
			s.Src, s.Dst = netip.AddrPortFrom(ip.src, be16(l4)), netip.AddrPortFrom(ip.dst, be16(l4[2:]))
			n := int(be16(l4[4:]))
			if n > 0 && n < 8 {
				return s
			}
			payload := l4[8:]
			if n >= 8 && n < len(l4) {
				payload = l4[8:n]
			}
			s.Len = len(payload)
			if depth == 0 && VXLANPorts[be16(l4[2:])] && len(payload) > 8 {
				inner := decodeEthernet(payload[8:], 1)
				vni := uint32(payload[4])<<16 | uint32(payload[5])<<8 | uint32(payload[6])
				inner.Encap = fmt.Sprintf("vxlan %s → %s VNI %d", ip.src, ip.dst, vni)
				return inner
			}
			return s
		}
	}
	s.Src, s.Dst = netip.AddrPortFrom(ip.src, 0), netip.AddrPortFrom(ip.dst, 0)
	if ip.proto == protoICMP && !ip.fragment && len(l4) >= 8 {
		s.Proto = "icmp"
		s.Flags = icmpName(l4[0], l4[1])
		if (l4[0] == icmpUnreach || l4[0] == icmpTimeExceed) && depth == 0 {
			if quoted, ok := parseIPv4(l4[8:]); ok {
				if q := quoted.summarize(1); q.Src.IsValid() {
					s.Quoted = &q
				}
			}
		}
		return s
	}
	s.Proto = protoName(ip.proto)
	return s
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// tcpFlags names the flags a reader of the lab's flows looks at, in tcpdump's order of
// interest: SYN, FIN, RST, PSH, ACK, joined by "-" ("SYN-ACK", "PSH-ACK").
func tcpFlags(b byte) string {
	var f []string
	for _, x := range []struct {
		bit  byte
		name string
	}{{0x02, "SYN"}, {0x01, "FIN"}, {0x04, "RST"}, {0x08, "PSH"}, {0x10, "ACK"}} {
		if b&x.bit != 0 {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, "-")
}

// icmpName is an ICMP type and code as the RFCs name them ("EchoRequest",
// "DestinationUnreachable(Port)"), numbers for the rest ("DestinationUnreachable(Code: 9)",
// "42(0)").
func icmpName(typ, code byte) string {
	var name string
	var codes []string
	switch typ {
	case 0:
		name = "EchoReply"
	case 3:
		name = "DestinationUnreachable"
		codes = []string{"Net", "Host", "Protocol", "Port", "FragmentationNeeded", "SourceRoutingFailed",
			"NetUnknown", "HostUnknown", "SourceIsolated", "NetAdminProhibited", "HostAdminProhibited",
			"NetTOS", "HostTOS", "CommAdminProhibited", "HostPrecedence", "PrecedenceCutoff"}
	case 4:
		name = "SourceQuench"
	case 5:
		name = "Redirect"
		codes = []string{"Net", "Host", "TOS+Net", "TOS+Host"}
	case 8:
		name = "EchoRequest"
	case 11:
		name = "TimeExceeded"
		codes = []string{"TTLExceeded", "FragmentReassemblyTimeExceeded"}
	case 12:
		name = "ParameterProblem"
		codes = []string{"PointerIndicatesError", "MissingOption", "BadLength"}
	default:
		return fmt.Sprintf("%d(%d)", typ, code)
	}
	switch {
	case codes == nil && code == 0:
		return name
	case int(code) < len(codes):
		return name + "(" + codes[code] + ")"
	}
	return fmt.Sprintf("%s(Code: %d)", name, code)
}

// protoName is an IP protocol number as a summary's Proto says it when no header of that
// protocol was read (a fragment, a truncated header, a protocol not decoded).
func protoName(p byte) string {
	switch p {
	case protoICMP:
		return "icmpv4"
	case 2:
		return "igmp"
	case 4:
		return "ipv4"
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case 41:
		return "ipv6"
	case 47:
		return "gre"
	case 50:
		return "esp"
	case 51:
		return "ah"
	case 132:
		return "sctp"
	}
	return fmt.Sprintf("proto %d", p)
}

// etherTypeName is an EtherType as a summary's Proto says it for a frame that is neither
// ARP nor IPv4 (or whose header did not parse).
func etherTypeName(t uint16) string {
	switch t {
	case etherTypeIPv4:
		return "ipv4"
	case etherTypeARP:
		return "arp"
	case 0x86dd:
		return "ipv6"
	case etherTypeDot1Q, etherTypeQinQ:
		return "dot1q"
	case 0x88cc:
		return "lldp"
	}
	return fmt.Sprintf("ethertype 0x%04x", t)
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
