package kernel

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Handles caches one netlink handle per namespace for a batch of operations.
type Handles struct {
	hs  map[string]*netlink.Handle
	nss map[string]netns.NsHandle
	// nextIndex numbers the veths this batch creates (see AddVeth).
	nextIndex int
}

// firstVethIndex is far above the ifindexes a namespace hands out by itself.
const firstVethIndex = 10000

// NewHandles returns an empty cache; Close releases it.
func NewHandles() *Handles {
	return &Handles{hs: map[string]*netlink.Handle{}, nss: map[string]netns.NsHandle{}, nextIndex: firstVethIndex}
}

// NS returns the open namespace handle of a named namespace.
func (h *Handles) NS(name string) (netns.NsHandle, error) {
	if n, ok := h.nss[name]; ok {
		return n, nil
	}
	n, err := netns.GetFromPath(NetnsPath(name))
	if err != nil {
		return netns.None(), fmt.Errorf("open namespace %s: %w", name, err)
	}
	h.nss[name] = n
	return n, nil
}

// Get returns a netlink handle bound to the named namespace (no setns involved).
func (h *Handles) Get(name string) (*netlink.Handle, error) {
	if nh, ok := h.hs[name]; ok {
		return nh, nil
	}
	n, err := h.NS(name)
	if err != nil {
		return nil, err
	}
	nh, err := netlink.NewHandleAt(n)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	h.hs[name] = nh
	return nh, nil
}

// Close releases every handle.
func (h *Handles) Close() {
	for _, nh := range h.hs {
		nh.Close()
	}
	for _, n := range h.nss {
		n.Close()
	}
}

// EnsureBridge creates a bridge in ns (tolerating one that exists) and sets it up; mac,
// when set, fixes the bridge's address (else it follows its ports').
func (h *Handles) EnsureBridge(ns, name, mac string, addrs []string) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
		br.HardwareAddr = hw
	}
	if err := nh.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add bridge %s in %s: %w", name, ns, err)
	}
	l, err := nh.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find bridge %s in %s: %w", name, ns, err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s in %s exists and is a %s, not a bridge", name, ns, l.Type())
	}
	if err := h.addAddrs(nh, l, ns, addrs); err != nil {
		return err
	}
	if err := nh.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up in %s: %w", name, ns, err)
	}
	return nil
}

// VethEnd is one end of a veth pair to create.
type VethEnd struct {
	NS, Name, Master string
	MAC              string // for the A end; empty: the kernel picks one
	MTU              int    // for both ends, taken from the A end; 0: the default
	Addrs            []string
	Hairpin          bool
}

// AddVeth creates a veth pair with each end directly in its namespace, enslaves ends that
// name a master bridge, adds addresses and sets both ends up.
func (h *Handles) AddVeth(a, b VethEnd) error {
	ha, err := h.Get(a.NS)
	if err != nil {
		return err
	}
	nsb, err := h.NS(b.NS)
	if err != nil {
		return err
	}
	// The A end gets an ifindex of its own from a high range, so it never equals its
	// peer's. The kernel treats a link whose ifindex equals its iflink (the peer's index,
	// which lives in another namespace) as not stacked, and then delays its carrier event
	// by up to a second: a bridge port stays disabled and drops the first packets.
	h.nextIndex++
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a.Name, Index: h.nextIndex}, PeerName: b.Name, PeerNamespace: netlink.NsFd(nsb)}
	if a.MAC != "" {
		hw, err := net.ParseMAC(a.MAC)
		if err != nil {
			return fmt.Errorf("veth %s/%s: %w", a.NS, a.Name, err)
		}
		v.HardwareAddr = hw
	}
	if a.MTU > 0 {
		v.MTU, v.PeerMTU = a.MTU, uint32(a.MTU)
	}
	if err := ha.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s/%s <-> %s/%s: %w", a.NS, a.Name, b.NS, b.Name, err)
	}
	for _, end := range []VethEnd{a, b} {
		if err := h.setupEnd(end); err != nil {
			return err
		}
	}
	return nil
}

// DelVeths deletes every veth in a namespace. Deleting one end deletes its peer at once,
// whereas a namespace whose last reference goes is freed by a kernel work queue some time
// later, and until then its veth peers keep their names in the other namespace: a pod
// removed and added again by apply would find its old host end still there.
func (h *Handles) DelVeths(ns string) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	links, err := nh.LinkList()
	if err != nil {
		return fmt.Errorf("list links in %s: %w", ns, err)
	}
	var errs []error
	for _, l := range links {
		if l.Type() != "veth" {
			continue
		}
		if err := nh.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete %s in %s: %w", l.Attrs().Name, ns, err))
		}
	}
	return errors.Join(errs...)
}

func (h *Handles) setupEnd(e VethEnd) error {
	nh, err := h.Get(e.NS)
	if err != nil {
		return err
	}
	l, err := nh.LinkByName(e.Name)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", e.Name, e.NS, err)
	}
	if e.Master != "" {
		m, err := nh.LinkByName(e.Master)
		if err != nil {
			return fmt.Errorf("find bridge %s in %s: %w", e.Master, e.NS, err)
		}
		if err := nh.LinkSetMaster(l, m); err != nil {
			return fmt.Errorf("attach %s to %s in %s: %w", e.Name, e.Master, e.NS, err)
		}
		if e.Hairpin {
			if err := nh.LinkSetHairpin(l, true); err != nil {
				return fmt.Errorf("hairpin on %s in %s: %w", e.Name, e.NS, err)
			}
		}
	}
	if err := h.addAddrs(nh, l, e.NS, e.Addrs); err != nil {
		return err
	}
	if err := nh.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up in %s: %w", e.Name, e.NS, err)
	}
	return nil
}

func (h *Handles) addAddrs(nh *netlink.Handle, l netlink.Link, ns string, addrs []string) error {
	for _, a := range addrs {
		ad, err := netlink.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
		if err := nh.AddrAdd(l, ad); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to %s in %s: %w", a, l.Attrs().Name, ns, err)
		}
	}
	return nil
}

// AddAddr adds an address (CIDR form) to a link in ns; an existing one is fine.
func (h *Handles) AddAddr(ns, link, addr string) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	l, err := nh.LinkByName(link)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", link, ns, err)
	}
	return h.addAddrs(nh, l, ns, []string{addr})
}

// LoUp sets the loopback of ns up.
func (h *Handles) LoUp(ns string) error {
	return h.SetLink(ns, "lo", true)
}

// SetLink sets a link of ns up or down.
func (h *Handles) SetLink(ns, name string, up bool) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	l, err := nh.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", name, ns, err)
	}
	if up {
		err = nh.LinkSetUp(l)
	} else {
		err = nh.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set %s in %s up=%v: %w", name, ns, up, err)
	}
	return nil
}

// LinkUp says whether a link of ns is administratively up.
func (h *Handles) LinkUp(ns, name string) (bool, error) {
	nh, err := h.Get(ns)
	if err != nil {
		return false, err
	}
	l, err := nh.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("find %s in %s: %w", name, ns, err)
	}
	return l.Attrs().Flags&net.FlagUp != 0, nil
}

// AddRouteOnlink adds a route in ns: dst "default" or a CIDR, via a gateway or out of
// dev; onlink declares the gateway on-link (reachable on dev whatever its address, as a
// VXLAN overlay routes to other nodes' VTEPs). An existing identical route is fine.
func (h *Handles) AddRouteOnlink(ns, dst, via, dev string, onlink bool) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	r := &netlink.Route{}
	if dst != "default" {
		_, n, err := net.ParseCIDR(dst)
		if err != nil {
			return fmt.Errorf("route %s: %w", dst, err)
		}
		r.Dst = n
	}
	if via != "" {
		r.Gw = net.ParseIP(via)
	}
	if dev != "" {
		l, err := nh.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", dev, ns, err)
		}
		r.LinkIndex = l.Attrs().Index
	}
	if onlink {
		r.Flags = int(netlink.FLAG_ONLINK)
	}
	if err := nh.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route %s via %s in %s: %w", dst, via, ns, err)
	}
	return nil
}

// VXLANDev is a VXLAN device to create: unicast (no group), learning off, as flannel's.
type VXLANDev struct {
	NS, Name, MAC, Addr, Local string
	VNI, Port, MTU             int
}

// AddVXLAN creates a VXLAN device in its namespace, gives it its address and sets it up.
func (h *Handles) AddVXLAN(v VXLANDev) error {
	nh, err := h.Get(v.NS)
	if err != nil {
		return err
	}
	hw, err := net.ParseMAC(v.MAC)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", v.Name, err)
	}
	dev := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: v.Name, HardwareAddr: hw, MTU: v.MTU},
		VxlanId: v.VNI, SrcAddr: net.ParseIP(v.Local), Port: v.Port, Learning: false}
	if err := nh.LinkAdd(dev); err != nil {
		return fmt.Errorf("add vxlan %s in %s: %w", v.Name, v.NS, err)
	}
	l, err := nh.LinkByName(v.Name)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", v.Name, v.NS, err)
	}
	if err := h.addAddrs(nh, l, v.NS, []string{v.Addr}); err != nil {
		return err
	}
	if err := nh.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up in %s: %w", v.Name, v.NS, err)
	}
	return nil
}

// AddFDB adds a permanent forwarding entry to a VXLAN device: frames for mac go to the
// VTEP at dst.
func (h *Handles) AddFDB(ns, dev, mac, dst string) error {
	return h.setPermanentNeigh(ns, dev, dst, mac, unix.AF_BRIDGE, netlink.NTF_SELF)
}

// AddNeighbor adds (or replaces) a permanent neighbour entry in ns.
func (h *Handles) AddNeighbor(ns, dev, ip, mac string) error {
	return h.setPermanentNeigh(ns, dev, ip, mac, netlink.FAMILY_V4, 0)
}

// setPermanentNeigh writes a permanent entry ip -> mac on dev: an ARP entry (FAMILY_V4) or
// a VXLAN device's forwarding entry (AF_BRIDGE with NTF_SELF, ip being the remote VTEP).
func (h *Handles) setPermanentNeigh(ns, dev, ip, mac string, family, flags int) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	l, err := nh.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", dev, ns, err)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("entry %s on %s: %w", ip, dev, err)
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family, State: netlink.NUD_PERMANENT,
		Flags: flags, IP: net.ParseIP(ip), HardwareAddr: hw}
	if err := nh.NeighSet(n); err != nil {
		return fmt.Errorf("entry %s lladdr %s on %s in %s: %w", ip, mac, dev, ns, err)
	}
	return nil
}

// SetSysctl writes a net.* sysctl inside ns. A key the kernel does not have (a module
// that is not loaded) is reported with os.ErrNotExist.
func SetSysctl(ns, key, value string) error {
	if !strings.HasPrefix(key, "net.") {
		return fmt.Errorf("sysctl %s: only per-namespace net.* sysctls are allowed", key)
	}
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return Do(ns, func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}

// RouteTable is the IPv4 main table of a namespace, keyed for MissingRoute: "dst via".
type RouteTable map[string]bool

// Routes reads the IPv4 routes of ns's main table.
func (h *Handles) Routes(ns string) (RouteTable, error) {
	nh, err := h.Get(ns)
	if err != nil {
		return nil, err
	}
	rs, err := nh.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list routes in %s: %w", ns, err)
	}
	out := RouteTable{}
	for _, r := range rs {
		dst := "default"
		if r.Dst != nil && !(r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) {
			dst = r.Dst.String()
		}
		via := ""
		if r.Gw != nil {
			via = r.Gw.String()
		}
		out[dst+" "+via] = true
	}
	return out, nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// Has says whether the table has a route to dst (a CIDR or "default") via the gateway
// (empty: any route to dst without a gateway).
func (t RouteTable) Has(dst, via string) bool {
	if dst != "default" {
		if _, n, err := net.ParseCIDR(dst); err == nil {
			dst = n.String()
		}
	}
	return t[dst+" "+via]
}

// DelNeighbor removes the neighbour entry for ip on dev in ns; an entry, device or
// namespace already gone is fine.
func (h *Handles) DelNeighbor(ns, dev, ip string) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	l, err := nh.LinkByName(dev)
	if err != nil {
		return nil
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, IP: net.ParseIP(ip)}
	if err := nh.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete neighbour %s on %s in %s: %w", ip, dev, ns, err)
	}
	return nil
}

// DelAddr removes an address (CIDR form) from a link in ns; one already gone is fine.
func (h *Handles) DelAddr(ns, link, addr string) error {
	nh, err := h.Get(ns)
	if err != nil {
		return err
	}
	l, err := nh.LinkByName(link)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", link, ns, err)
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return err
	}
	if err := nh.AddrDel(l, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("delete %s from %s in %s: %w", addr, link, ns, err)
	}
	return nil
}
