package nftnl

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	gnft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

var testNode = kubeproxy.Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12"}

// kindsOfPorts has one Service port of each kind the renderer handles differently.
func kindsOfPorts() []kubeproxy.ServicePort {
	var ports []kubeproxy.ServicePort
	for i, kind := range []string{"plain", "local", "affinity", "udp", "none", "lb"} {
		sp := kubeproxy.ServicePort{Namespace: "ns", Name: kind, PortName: "p", Protocol: "TCP",
			ClusterIP: "10.96.0." + string(rune('1'+i)), Port: 80, NodePort: int32(30080 + i),
			Endpoints: []kubeproxy.Endpoint{{Pod: "a", Node: "node-1", IP: "10.244.1.2", Port: 8080, Ready: true},
				{Pod: "b", Node: "node-2", IP: "10.244.2.2", Port: 8080, Ready: true}}}
		switch kind {
		case "local":
			sp.ExternalLocal, sp.InternalLocal, sp.ExternalIPs = true, true, []string{"192.0.2.1"}
		case "affinity":
			sp.AffinityClientIP, sp.AffinitySeconds = true, 60
		case "udp":
			sp.Protocol = "UDP"
		case "none":
			sp.Endpoints = nil
		case "lb":
			sp.LoadBalancerIPs, sp.LoadBalancerSourceRanges = []string{"203.0.113.7"}, []string{"0.0.0.0/1", "172.18.0.0/16"}
		}
		ports = append(ports, sp)
	}
	return ports
}

// Every command the renderer's full and incremental transactions hold compiles.
func TestBuildRenderedTransactions(t *testing.T) {
	ports := kindsOfPorts()
	rs := nftables.Render(testNode, ports)
	b, err := build(nftables.Full(rs, nftables.Existing{Chains: []string{"service-X-ns/gone/tcp/p"}, Sets: []string{"affinity-X-ns/gone"}}, true))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.out) < len(rs.Chains) {
		t.Errorf("%d messages for %d chains", len(b.out), len(rs.Chains))
	}
	next := nftables.Render(testNode, ports[:3])
	if _, err := build(nftables.Diff(rs, next)); err != nil {
		t.Fatal(err)
	}
}

// The messages netlab marshals itself for a rule and its anonymous verdict maps are the
// ones google/nftables makes, after capture's changes, byte for byte, for every rule the
// renderer writes (those with other anonymous sets still go through the library).
func TestRawRuleIsTheLibrarys(t *testing.T) {
	var captured []netlink.Message
	conn, err := gnft.New(gnft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
		}
		captured = append(captured, req[1:len(req)-1]...)
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	ports := kindsOfPorts()
	for i := range 3 { // more endpoints: longer verdict maps
		sp := ports[0]
		sp.Name = fmt.Sprintf("many%d", i)
		sp.ClusterIP = fmt.Sprintf("10.96.1.%d", i+1)
		sp.Endpoints = nil
		for j := range 3 + 4*i {
			sp.Endpoints = append(sp.Endpoints, kubeproxy.Endpoint{Pod: fmt.Sprint(j), IP: fmt.Sprintf("10.244.3.%d", j+2), Port: 8080, Ready: true})
		}
		ports = append(ports, sp)
	}
	rs := nftables.Render(testNode, ports)
	raw, lib := 0, 0
	for _, name := range rs.SortedChains() {
		for _, text := range rs.Chains[name].Rules {
			exprs, anon, udata, err := compileRule(table, text)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := rawRule(name, exprs, anon, udata)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				lib++
				continue
			}
			raw++
			captured = nil
			for _, a := range anon {
				if err := conn.AddSet(a.set, a.elems); err != nil {
					t.Fatal(err)
				}
			}
			conn.AddRule(&gnft.Rule{Table: table, Chain: &gnft.Chain{Table: table, Name: name}, Exprs: exprs, UserData: udata})
			if err := conn.Flush(); err != nil {
				t.Fatal(err)
			}
			if len(captured) != len(got) {
				t.Fatalf("chain %s, rule %q: %d messages, the library %d", name, text, len(got), len(captured))
			}
			for i, m := range captured {
				switch m.Header.Type {
				case netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET):
					markHostOrderKeys(m.Data)
				case netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM):
					m.Data = anonymousByID(m.Data)
				}
				if m.Header.Type != got[i].Header.Type || m.Header.Flags != got[i].Header.Flags || !bytes.Equal(m.Data, got[i].Data) {
					t.Fatalf("chain %s, rule %q, message %d:\nlibrary %+v\n% x\nnetlab  %+v\n% x", name, text, i, m.Header, m.Data, got[i].Header, got[i].Data)
				}
			}
		}
	}
	if raw < 50 || lib > raw/10 {
		t.Fatalf("%d rules marshalled here, %d by the library", raw, lib)
	}
}

// Text outside what kube-proxy's rules use is refused with every problem named by line.
func TestBuildRefusesUnknownSyntax(t *testing.T) {
	_, err := build([]byte("add table ip kube-proxy\nadd rule ip kube-proxy c tcp dport 80 accept\n" +
		"add rule ip other c drop\nadd element ip kube-proxy s { 1.2.3.4 . bogus }\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"line 2:", `unknown statement "tcp"`, "line 3:", "not table ip kube-proxy", "line 4:", `unknown key "bogus"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// Overlapping and adjacent prefixes merge into one range; the set starts with nft's end
// marker at 0.0.0.0; a range reaching 255.255.255.255 has no end marker.
func TestIntervalElements(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.0.0.0/8 10.1.0.0/16 11.0.0.0/8 1.2.3.4", "end 0.0.0.0,1.2.3.4,end 1.2.3.5,10.0.0.0,end 12.0.0.0"},
		{"0.0.0.0/1 128.0.0.0/1", "0.0.0.0"},
		{"192.168.0.0/16", "end 0.0.0.0,192.168.0.0,end 192.169.0.0"},
	} {
		var ps []netip.Prefix
		for _, s := range strings.Fields(c.in) {
			p, err := parsePrefix(s)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		var got []string
		for _, e := range intervalElements(ps) {
			s := netip.AddrFrom4([4]byte(e.Key)).String()
			if e.IntervalEnd {
				s = "end " + s
			}
			got = append(got, s)
		}
		if g := strings.Join(got, ","); g != c.want {
			t.Errorf("%s: got %s, want %s", c.in, g, c.want)
		}
	}
}

// A long run of elements for one set is split over messages small enough for netlink's
// 16-bit attribute length.
func TestElementsSplit(t *testing.T) {
	var text strings.Builder
	for i := range 250 {
		fmt.Fprintf(&text, "add element ip kube-proxy service-ips { 10.96.%d.%d . tcp . 80 comment \"ns/svc-%d:http\" : goto service-ABCDEFGH-ns/svc-%d/tcp/http }\n", i/200, i%200+1, i, i)
	}
	b, err := build([]byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.out) != 3 {
		t.Fatalf("%d messages for 250 elements, want 3", len(b.out))
	}
	for _, m := range b.out {
		if len(m.Data) > 0xffff {
			t.Errorf("message of %d bytes", len(m.Data))
		}
	}
}

// The messages netlab marshals itself to add, flush and delete a chain without a hook
// are google/nftables', byte for byte.
func TestRawChainIsTheLibrarys(t *testing.T) {
	var captured []netlink.Message
	conn, err := gnft.New(gnft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
		}
		captured = append(captured, req[1:len(req)-1]...)
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "ab", "abc", "abcd", "service-ULMVA6XW-ns1/svc1/tcp/p80", "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"} {
		c := &gnft.Chain{Table: table, Name: name}
		for _, op := range []struct {
			typ int
			lib func()
		}{
			{unix.NFT_MSG_NEWCHAIN, func() { conn.AddChain(c) }},
			{unix.NFT_MSG_DELRULE, func() { conn.FlushChain(c) }},
			{unix.NFT_MSG_DELCHAIN, func() { conn.DelChain(c) }},
		} {
			captured = nil
			op.lib()
			if err := conn.Flush(); err != nil {
				t.Fatal(err)
			}
			got := chainMessage(op.typ, name)
			if len(captured) != 1 {
				t.Fatalf("the library wrote %d messages", len(captured))
			}
			m := captured[0]
			if m.Header.Type != got.Header.Type || m.Header.Flags != got.Header.Flags || !bytes.Equal(m.Data, got.Data) {
				t.Errorf("chain %q, message %d:\nlibrary %+v\n% x\nnetlab  %+v\n% x", name, op.typ, m.Header, m.Data, got.Header, got.Data)
			}
		}
	}
}
