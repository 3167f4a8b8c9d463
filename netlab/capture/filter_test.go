package capture

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// frame builds an Ethernet + IPv4 + TCP/UDP/ICMP header for the filter to look at.
func frame(proto byte, src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 14+20+8)
	b[12], b[13] = 0x08, 0x00
	ip := b[14:]
	ip[0] = 0x45
	ip[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	l4 := ip[20:]
	l4[0], l4[1] = byte(sport>>8), byte(sport)
	l4[2], l4[3] = byte(dport>>8), byte(dport)
	return b
}

func TestFlowFilter(t *testing.T) {
	raw, err := FlowFilter([]netip.Prefix{
		netip.MustParsePrefix("203.0.113.2/32"),
		netip.MustParsePrefix("203.0.113.100/32"),
		netip.MustParsePrefix("10.244.0.0/16"),
	}, []uint16{80, 8080})
	if err != nil {
		t.Fatal(err)
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	arp := frame(6, "203.0.113.2", "203.0.113.100", 40000, 80)
	arp[12], arp[13] = 0x08, 0x06
	for _, c := range []struct {
		name string
		pkt  []byte
		keep bool
	}{
		{"client SYN to the VIP", frame(6, "203.0.113.2", "203.0.113.100", 40000, 80), true},
		{"reply from the VIP", frame(6, "203.0.113.100", "203.0.113.2", 80, 40000), true},
		{"to a pod in the /16", frame(6, "172.18.0.11", "10.244.2.3", 51000, 8080), true},
		{"UDP from a pod", frame(17, "10.244.1.5", "172.18.0.11", 8080, 9999), true},
		{"ICMP reject to the client", frame(1, "172.18.0.11", "203.0.113.2", 0, 0), true},
		{"other address", frame(6, "172.18.0.1", "172.18.0.11", 40000, 80), false},
		{"other port", frame(6, "203.0.113.2", "203.0.113.100", 40000, 22), false},
		{"ICMP elsewhere", frame(1, "172.18.0.1", "172.18.0.12", 0, 0), false},
		{"ARP", arp, false},
	} {
		n, err := vm.Run(c.pkt)
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != c.keep {
			t.Errorf("%s: kept %v, want %v", c.name, n > 0, c.keep)
		}
	}
	if _, err := FlowFilter(nil, nil); err == nil {
		t.Error("an empty address list must be refused")
	}
}

func TestParseDDD(t *testing.T) {
	prog, err := parseDDD([]byte("2\n40 0 0 12\n6 0 0 262144\n"))
	if err != nil || len(prog) != 2 || prog[0].Op != 40 || prog[0].K != 12 || prog[1].K != 262144 {
		t.Fatalf("%v %v", prog, err)
	}
	if _, err := parseDDD([]byte("1\nbad line\n")); err == nil {
		t.Error("a bad line must be refused")
	}
}
