package kernel_test

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// A batch makes what Handles' calls one by one make: loopbacks up, veths with their
// addresses, bridge ports with hairpin mode, routes and permanent neighbours; a second
// batch into a namespace whose ifindexes the first took makes its veth all the same.
// Namespaces of their own, nl-kb<pid>-{sw,a,b}: a bridge "br" in sw, a/eth0 10.98.0.2/24
// <-> sw/pa and b/eth0 10.98.0.3/24 <-> sw/pb. No packet leaves them.
func TestIntegrationBatch(t *testing.T) {
	labtest.RequireRoot(t)
	pre := fmt.Sprintf("nl-kb%d-", os.Getpid())
	sw, a, b := pre+"sw", pre+"a", pre+"b"
	for _, ns := range []string{sw, a, b} {
		if err := kernel.CreateNetns(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kernel.DeleteNetns(ns) })
	}
	h := kernel.NewHandles()
	defer h.Close()
	if err := h.EnsureBridge(sw, "br", "", []string{"10.98.0.1/24"}); err != nil {
		t.Fatal(err)
	}
	batch := h.NewBatch()
	for _, ns := range []string{sw, a} {
		batch.LoUp(ns)
	}
	if err := batch.AddVeth(kernel.VethEnd{NS: a, Name: "eth0", MAC: "02:00:00:00:00:3a", MTU: 1400, Addrs: []string{"10.98.0.2/24"}},
		kernel.VethEnd{NS: sw, Name: "pa", Master: "br", Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	if err := batch.Run(); err != nil {
		t.Fatal(err)
	}
	routes := h.NewBatch()
	if err := routes.AddRoute(a, "default", "10.98.0.1", "", false); err != nil {
		t.Fatal(err)
	}
	if err := routes.AddRoute(a, "10.97.0.0/16", "10.98.0.1", "eth0", true); err != nil {
		t.Fatal(err)
	}
	if err := routes.AddNeighbor(a, "eth0", "10.98.0.1", "02:00:00:00:00:01"); err != nil {
		t.Fatal(err)
	}
	if err := routes.Run(); err != nil {
		t.Fatal(err)
	}
	// A second batch, as `apply` makes: its first ifindexes are taken in sw, so the pair is
	// made by Handles.AddVeth, which tries the next ones.
	h2 := kernel.NewHandles()
	defer h2.Close()
	second := h2.NewBatch()
	second.LoUp(b)
	if err := second.AddVeth(kernel.VethEnd{NS: b, Name: "eth0", Addrs: []string{"10.98.0.3/24"}},
		kernel.VethEnd{NS: sw, Name: "pb", Master: "br", Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	if err := second.Run(); err != nil {
		t.Fatalf("a second batch's veth into the same namespace: %v", err)
	}

	handle := func(ns string) *netlink.Handle {
		t.Helper()
		n, err := netns.GetFromPath(kernel.NetnsPath(ns))
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nh, err := netlink.NewHandleAt(n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nh.Close)
		return nh
	}
	ha, hb, hs := handle(a), handle(b), handle(sw)
	link := func(nh *netlink.Handle, name string) netlink.Link {
		t.Helper()
		l, err := nh.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	br := link(hs, "br")
	for _, c := range []struct {
		nh         *netlink.Handle
		ns, name   string
		addr, peer string
	}{{ha, a, "eth0", "10.98.0.2/24", "pa"}, {hb, b, "eth0", "10.98.0.3/24", "pb"}} {
		e, p := link(c.nh, c.name), link(hs, c.peer)
		if e.Attrs().Flags&net.FlagUp == 0 || p.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: not both ends up: %v, %v", c.ns, e.Attrs().Flags, p.Attrs().Flags)
		}
		if p.Attrs().MasterIndex != br.Attrs().Index {
			t.Errorf("%s's master %d, want br (%d)", c.peer, p.Attrs().MasterIndex, br.Attrs().Index)
		}
		if pi, err := hs.LinkGetProtinfo(p); err != nil || !pi.Hairpin {
			t.Errorf("%s's hairpin mode is off: %+v %v", c.peer, pi, err)
		}
		addrs, err := c.nh.AddrList(e, netlink.FAMILY_V4)
		if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != c.addr || addrs[0].Broadcast.String() != "10.98.0.255" {
			t.Errorf("%s eth0's addresses: %v %v, want %s brd 10.98.0.255", c.ns, addrs, err, c.addr)
		}
		if e.Attrs().ParentIndex != p.Attrs().Index || p.Attrs().ParentIndex != e.Attrs().Index || e.Attrs().Index == p.Attrs().Index {
			t.Errorf("%s: eth0 index %d peer %d, %s index %d peer %d: want distinct peers of each other", c.ns,
				e.Attrs().Index, e.Attrs().ParentIndex, c.peer, p.Attrs().Index, p.Attrs().ParentIndex)
		}
	}
	if e := link(ha, "eth0"); e.Attrs().HardwareAddr.String() != "02:00:00:00:00:3a" || e.Attrs().MTU != 1400 || link(hs, "pa").Attrs().MTU != 1400 {
		t.Errorf("a's eth0 %s mtu %d; want 02:00:00:00:00:3a, 1400 (and pa's 1400)", e.Attrs().HardwareAddr, e.Attrs().MTU)
	}
	for _, c := range []struct {
		nh *netlink.Handle
		ns string
	}{{ha, a}, {hs, sw}, {hb, b}} {
		if lo := link(c.nh, "lo"); lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("lo of %s is down", c.ns)
		}
	}
	rt, err := h.Routes(a)
	if err != nil {
		t.Fatal(err)
	}
	if !rt.Has("default", "10.98.0.1") || !rt.Has("10.97.0.0/16", "10.98.0.1") {
		t.Errorf("a's routes: %v, want default and 10.97.0.0/16 via 10.98.0.1", rt)
	}
	neighs, err := ha.NeighList(link(ha, "eth0").Attrs().Index, netlink.FAMILY_V4)
	found := false
	for _, n := range neighs {
		found = found || (n.IP.String() == "10.98.0.1" && n.HardwareAddr.String() == "02:00:00:00:00:01" && n.State == netlink.NUD_PERMANENT)
	}
	if err != nil || !found {
		t.Errorf("a's neighbours: %v %v, want 10.98.0.1 lladdr 02:00:00:00:00:01 permanent", neighs, err)
	}
	// A request the kernel refuses is reported with what it was.
	bad := h.NewBatch()
	if err := bad.AddRoute(a, "10.96.0.0/16", "10.99.9.9", "", false); err != nil {
		t.Fatal(err)
	}
	if err := bad.Run(); err == nil {
		t.Error("a route via an unreachable gateway: no error")
	} else if want := "add route 10.96.0.0/16 via 10.99.9.9 in " + a; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
