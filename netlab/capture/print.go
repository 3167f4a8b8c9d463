package capture

import (
	"fmt"
	"net/netip"
	"time"
)

// Line is a packet as one line of text, tcpdump-like: time, `<object>/<ifname>`,
// direction, addresses, protocol and flags.
func Line(p Packet, ifaces []Iface) string {
	name := "?"
	if p.Iface < len(ifaces) {
		name = ifaces[p.Iface].Label()
	}
	s := Decode(p.Data)
	return fmt.Sprintf("%s %-14s %-3s %s", p.Time.Format("15:04:05.000000"), name, Direction(p), s.String())
}

// Direction is "out" for a packet the namespace sent on that interface, else "in".
func Direction(p Packet) string {
	if p.Outgoing {
		return "out"
	}
	return "in"
}

func (s Summary) String() string {
	out := fmt.Sprintf("%s > %s %s", ap(s.Src), ap(s.Dst), s.Proto)
	if s.Flags != "" {
		out += " " + s.Flags
	}
	if s.Proto == "tcp" || s.Proto == "udp" {
		out += fmt.Sprintf(" len %d", s.Len)
	}
	if s.Quoted != nil {
		out += fmt.Sprintf(" (for %s > %s %s)", ap(s.Quoted.Src), ap(s.Quoted.Dst), s.Quoted.Proto)
	}
	if s.Encap != "" {
		out += " [" + s.Encap + "]"
	}
	return out
}

// ap prints an address with its port, or without when there is none (ICMP, ARP).
func ap(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	if a.Port() == 0 {
		return a.Addr().String()
	}
	return a.String()
}

// Since is a packet's time after t0, in milliseconds as text ("0.412").
func Since(p Packet, t0 time.Time) float64 {
	return float64(p.Time.Sub(t0).Microseconds()) / 1000
}
