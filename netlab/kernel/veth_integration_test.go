package kernel_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// Address plan: namespaces of their own, nl-kv<pid>-sw (a bridge "br"), nl-kv<pid>-a and
// nl-kv<pid>-b; veths a/eth0 (10.99.0.2/24, a fixed MAC and MTU) <-> sw/pa and b/eth0
// (10.99.0.3/24) <-> sw/pb, enslaved to br, hairpin on. No packet leaves these namespaces.
func TestIntegrationAddVeth(t *testing.T) {
	labtest.RequireRoot(t)
	pre := fmt.Sprintf("nl-kv%d-", os.Getpid())
	sw, a, b := pre+"sw", pre+"a", pre+"b"
	for _, ns := range []string{sw, a, b} {
		if err := kernel.CreateNetns(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kernel.DeleteNetns(ns) })
	}
	h := kernel.NewHandles()
	defer h.Close()
	if err := h.EnsureBridge(sw, "br", "", nil); err != nil {
		t.Fatal(err)
	}
	err := h.AddVeth(kernel.VethEnd{NS: a, Name: "eth0", MAC: "02:00:00:00:00:2a", MTU: 1400, Addrs: []string{"10.99.0.2/24"}},
		kernel.VethEnd{NS: sw, Name: "pa", Master: "br", Hairpin: true})
	if err != nil {
		t.Fatal(err)
	}
	link := func(ns, name string) netlink.Link {
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
		defer nh.Close()
		l, err := nh.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "eth0" {
			addrs, err := nh.AddrList(l, netlink.FAMILY_V4)
			if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.99.0.2/24" {
				t.Errorf("eth0's addresses: %v %v, want 10.99.0.2/24", addrs, err)
			}
		}
		if name == "pa" {
			pi, err := nh.LinkGetProtinfo(l)
			if err != nil || !pi.Hairpin {
				t.Errorf("pa's hairpin mode is off: %+v %v", pi, err)
			}
		}
		return l
	}
	// A second batch, as `apply` is: its first ifindexes are taken in sw already.
	h2 := kernel.NewHandles()
	defer h2.Close()
	err = h2.AddVeth(kernel.VethEnd{NS: b, Name: "eth0", Addrs: []string{"10.99.0.3/24"}},
		kernel.VethEnd{NS: sw, Name: "pb", Master: "br", Hairpin: true})
	if err != nil {
		t.Fatalf("a second batch's veth into the same namespace: %v", err)
	}
	pb := link(sw, "pb")
	if pb.Attrs().MasterIndex == 0 || pb.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("pb: master %d, flags %v; want enslaved and up", pb.Attrs().MasterIndex, pb.Attrs().Flags)
	}
	// The pairs pass traffic over the bridge: a TCP connection from a's eth0 to b's.
	var ln net.Listener
	if err := kernel.Do(b, func() (err error) { ln, err = net.Listen("tcp4", "10.99.0.3:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	var got []byte
	err = kernel.Do(a, func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		got, err = io.ReadAll(c)
		return err
	})
	if err != nil || string(got) != "hi" {
		t.Errorf("a to b over br: %q, %v", got, err)
	}
	e, p := link(a, "eth0"), link(sw, "pa")
	br := link(sw, "br")
	if e.Attrs().Flags&net.FlagUp == 0 || p.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("not both up: eth0 %v, pa %v", e.Attrs().Flags, p.Attrs().Flags)
	}
	if e.Attrs().HardwareAddr.String() != "02:00:00:00:00:2a" || e.Attrs().MTU != 1400 || p.Attrs().MTU != 1400 {
		t.Errorf("eth0 %s mtu %d, pa mtu %d; want 02:00:00:00:00:2a, 1400, 1400", e.Attrs().HardwareAddr, e.Attrs().MTU, p.Attrs().MTU)
	}
	// One queue each way, from creation (kernel.vethQueues): not one per CPU cut down later.
	for _, l := range []netlink.Link{e, p} {
		if l.Attrs().NumTxQueues != 1 || l.Attrs().NumRxQueues != 1 {
			t.Errorf("%s: %d tx and %d rx queues, want 1 and 1", l.Attrs().Name, l.Attrs().NumTxQueues, l.Attrs().NumRxQueues)
		}
	}
	if p.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("pa's master %d, want br (%d)", p.Attrs().MasterIndex, br.Attrs().Index)
	}
	if e.Attrs().Index == e.Attrs().ParentIndex || e.Attrs().ParentIndex != p.Attrs().Index || p.Attrs().ParentIndex != e.Attrs().Index {
		t.Errorf("eth0 index %d peer %d, pa index %d peer %d: want distinct peers of each other",
			e.Attrs().Index, e.Attrs().ParentIndex, p.Attrs().Index, p.Attrs().ParentIndex)
	}
}
