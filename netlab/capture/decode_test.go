package capture

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The decoder reads headers itself (the CLI's start does not pay for gopacket's tables);
// gopacket, a test dependency only, is the reference it is held to: every frame below, every
// prefix of it (a frame cut by the snap length or a quoted packet cut by ICMP), and random
// byte changes of each, summarize the same through both, but for the names of the protocols
// and ICMP types the decoder names its own way (namedAlike).

// reference is the summary gopacket's decoding gives, as netlab computed it before its own
// decoder.
func reference(frame []byte) Summary {
	return refSummarize(gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true}), 0)
}

func refSummarize(pkt gopacket.Packet, depth int) Summary {
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
		var f []string
		for _, x := range []struct {
			on   bool
			name string
		}{{l.SYN, "SYN"}, {l.FIN, "FIN"}, {l.RST, "RST"}, {l.PSH, "PSH"}, {l.ACK, "ACK"}} {
			if x.on {
				f = append(f, x.name)
			}
		}
		s.Flags = strings.Join(f, "-")
		s.Len = len(l.Payload)
	case *layers.UDP:
		s.Proto = "udp"
		s.Src, s.Dst = netip.AddrPortFrom(src, uint16(l.SrcPort)), netip.AddrPortFrom(dst, uint16(l.DstPort))
		s.Len = len(l.Payload)
		if depth == 0 && VXLANPorts[uint16(l.DstPort)] && len(l.Payload) > 8 {
			inner := refSummarize(gopacket.NewPacket(l.Payload[8:], layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true}), 1)
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
				q := refSummarize(gopacket.NewPacket(ic.Payload, layers.LayerTypeIPv4, gopacket.DecodeOptions{Lazy: true, NoCopy: true}), 1)
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

// namedAlike says whether two summaries are the same, or differ only where the decoder
// reads less than gopacket or names things its own way:
//   - a frame whose EtherType or IP protocol the decoder does not read further (IPv6, GRE,
//     IP in IP, MPLS, 0xffff, which gopacket reads as IPv4...: gopacket may find an IPv4
//     header or ports inside): the names
//     differ ("ah" against "ipsecah", "ethertype 0x1234" against "unknownethernettype"),
//     the addresses do not;
//   - an IPv4 header that does not parse: gopacket keeps the layer it failed on, no address
//     read and protocol 0 (IPv6HopByHop); the decoder names the EtherType;
//   - an ICMP type outside the ones the lab meets ("13(0)" against "TimestampRequest").
func namedAlike(got, want Summary) bool {
	if got.Quoted != nil && want.Quoted != nil {
		if !namedAlike(*got.Quoted, *want.Quoted) {
			return false
		}
		got.Quoted, want.Quoted = nil, nil
	}
	if got == want {
		return true
	}
	switch {
	case strings.HasPrefix(got.Proto, "ethertype "), got.Proto == "ipv6", got.Proto == "llc", got.Proto == "lldp", got.Proto == "dot1q":
		return !got.Src.IsValid() && !got.Dst.IsValid()
	case !got.Src.IsValid() && !want.Src.IsValid() && want.Proto == "ipv6hopbyhop":
		return got.Proto == "ipv4" || got.Proto == "dot1q"
	case strings.HasPrefix(got.Proto, "proto "), slices.Contains([]string{"ipv4", "ipv6", "gre", "ah", "esp", "sctp", "igmp"}, got.Proto):
		return got.Src.Addr() == want.Src.Addr() && got.Dst.Addr() == want.Dst.Addr()
	case got.Proto == "icmp" && isNumber(strings.SplitN(got.Flags, "(", 2)[0]): // a type the decoder does not name
		got.Flags = want.Flags
		return got == want
	}
	return false
}

func isNumber(s string) bool { _, err := strconv.Atoi(s); return err == nil }

// frames are the kinds of frame a lab's captures see, built with gopacket's serializer.
func frames(t testing.TB) map[string][]byte {
	t.Helper()
	mac1, mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ip1, ip2 := net.IP{203, 0, 113, 2}, net.IP{10, 244, 1, 5}
	eth := func(t layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: t}
	}
	ipv4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p, SrcIP: ip1, DstIP: ip2}
	}
	tcp := func(syn, ack, psh, fin, rst bool) *layers.TCP {
		return &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: syn, ACK: ack, PSH: psh, FIN: fin, RST: rst, Window: 1000}
	}
	ser := func(ls ...gopacket.SerializableLayer) []byte {
		buf := gopacket.NewSerializeBuffer()
		for _, l := range ls {
			if tl, ok := l.(*layers.TCP); ok {
				_ = tl.SetNetworkLayerForChecksum(ipv4(layers.IPProtocolTCP))
			}
		}
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), buf.Bytes()...)
	}
	body := gopacket.Payload("GET / HTTP/1.1\r\nHost: demo.local\r\n\r\n")
	out := map[string][]byte{
		"tcp SYN":     ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), tcp(true, false, false, false, false)),
		"tcp SYN-ACK": ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), tcp(true, true, false, false, false)),
		"tcp PSH-ACK": ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), tcp(false, true, true, false, false), body),
		"tcp FIN-ACK": ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), tcp(false, true, false, true, false)),
		"tcp RST":     ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), tcp(false, false, false, false, true)),
		"udp dns":     ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload("query")),
		"icmp echo":   ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}, gopacket.Payload("ping")),
		"icmp reply":  ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0)}),
		"arp request": ser(eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: mac1, SourceProtAddress: ip1, DstHwAddress: make([]byte, 6), DstProtAddress: ip2}),
		"arp reply": ser(eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 2, SourceHwAddress: mac2, SourceProtAddress: ip2, DstHwAddress: mac1, DstProtAddress: ip1}),
		"vlan tcp": ser(eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, ipv4(layers.IPProtocolTCP), tcp(true, false, false, false, false)),
		"ipv6":     ser(eth(layers.EthernetTypeIPv6), gopacket.Payload(make([]byte, 40))),
		"llc":      append(ser(&layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: layers.EthernetType(20)}), make([]byte, 20)...),
		"igmp":     ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolIGMP), gopacket.Payload(make([]byte, 8))),
		"gre":      ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolGRE), gopacket.Payload(make([]byte, 8))),
		"sctp":     ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolSCTP), gopacket.Payload(make([]byte, 12))),
	}
	opts := ipv4(layers.IPProtocolTCP)
	opts.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}}
	out["ipv4 options"] = ser(eth(layers.EthernetTypeIPv4), opts, tcp(true, false, false, false, false))
	frag := ipv4(layers.IPProtocolUDP)
	frag.Flags = layers.IPv4MoreFragments
	out["first fragment"] = ser(eth(layers.EthernetTypeIPv4), frag, &layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload(make([]byte, 100)))
	frag = ipv4(layers.IPProtocolUDP)
	frag.FragOffset = 14
	out["later fragment"] = ser(eth(layers.EthernetTypeIPv4), frag, gopacket.Payload(make([]byte, 100)))
	// The inner frame of a VXLAN packet between two nodes (flannel's port), and an ICMP
	// error quoting a TCP and a UDP packet (its header and first 8 bytes).
	inner := out["tcp PSH-ACK"]
	vx := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{172, 18, 0, 11}, DstIP: net.IP{172, 18, 0, 12}}
	out["vxlan"] = ser(eth(layers.EthernetTypeIPv4), vx, &layers.UDP{SrcPort: 41000, DstPort: 8472}, gopacket.Payload(append([]byte{8, 0, 0, 0, 0, 0, 1, 0}, inner...)))
	for name, c := range map[string]struct {
		typ, code uint8
		quoted    string
	}{"icmp port unreachable": {3, 3, "udp dns"}, "icmp host unreachable": {3, 1, "tcp SYN"}, "icmp ttl exceeded": {11, 0, "tcp SYN"}, "icmp odd code": {3, 42, "tcp SYN"}} {
		q := out[c.quoted][14:]
		q = q[:min(len(q), 28)]
		out[name] = ser(eth(layers.EthernetTypeIPv4), &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{172, 18, 0, 1}, DstIP: ip1},
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(c.typ, c.code)}, gopacket.Payload(q))
	}
	// An offloaded segment: total length 0, the frame longer than the field can hold.
	big := ser(eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), tcp(false, true, false, false, false), gopacket.Payload(make([]byte, 70000)))
	big[14+2], big[14+3] = 0, 0
	out["tso"] = big
	return out
}

func TestDecodeAsGopacket(t *testing.T) {
	fs := frames(t)
	want := map[string]string{ // what a reader sees, for the kinds the lab's traces rely on
		"tcp SYN":               "203.0.113.2:40000 > 10.244.1.5:80 tcp SYN len 0",
		"tcp PSH-ACK":           "203.0.113.2:40000 > 10.244.1.5:80 tcp PSH-ACK len 36",
		"udp dns":               "203.0.113.2:5353 > 10.244.1.5:53 udp len 5",
		"icmp echo":             "203.0.113.2 > 10.244.1.5 icmp EchoRequest",
		"arp request":           "203.0.113.2 > 10.244.1.5 arp who-has",
		"vlan tcp":              "203.0.113.2:40000 > 10.244.1.5:80 tcp SYN len 0",
		"icmp port unreachable": "172.18.0.1 > 203.0.113.2 icmp DestinationUnreachable(Port) (for 203.0.113.2:5353 > 10.244.1.5:53 udp)",
		"icmp host unreachable": "172.18.0.1 > 203.0.113.2 icmp DestinationUnreachable(Host) (for 203.0.113.2 > 10.244.1.5 tcp)",
		"icmp ttl exceeded":     "172.18.0.1 > 203.0.113.2 icmp TimeExceeded(TTLExceeded) (for 203.0.113.2 > 10.244.1.5 tcp)",
		"vxlan":                 "203.0.113.2:40000 > 10.244.1.5:80 tcp PSH-ACK len 36 [vxlan 172.18.0.11 → 172.18.0.12 VNI 1]",
		"first fragment":        "203.0.113.2 > 10.244.1.5 udp len 108",
		"tso":                   "203.0.113.2:40000 > 10.244.1.5:80 tcp ACK len 70000",
		"ipv6":                  "- > - ipv6",
	}
	for name, f := range fs {
		if w, ok := want[name]; ok {
			if got := Decode(f).String(); got != w {
				t.Errorf("%s: %q, want %q", name, got, w)
			}
		}
		rng := rand.New(rand.NewPCG(1, uint64(len(f))))
		cases := [][]byte{f}
		for n := 0; n < len(f) && n < 200; n++ {
			cases = append(cases, f[:n])
		}
		for range 300 {
			g := append([]byte(nil), f...)
			for range 1 + rng.IntN(3) {
				g[rng.IntN(min(len(g), 120))] = byte(rng.Uint32())
			}
			cases = append(cases, g)
		}
		for _, c := range cases {
			got, ref := Decode(c), reference(c)
			if !namedAlike(got, ref) {
				t.Errorf("%s (%d bytes % x...): decoded %+v (quoted %v), gopacket %+v (quoted %v)", name, len(c), c[:min(len(c), 64)], got, got.Quoted, ref, ref.Quoted)
				break
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, fr := range frames(f) {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ref := Decode(b), reference(b)
		if !namedAlike(got, ref) {
			t.Errorf("decoded %+v (quoted %v), gopacket %+v (quoted %v)", got, got.Quoted, ref, ref.Quoted)
		}
	})
}
