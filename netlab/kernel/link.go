package kernel

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Handles caches one netlink handle per namespace for a batch of operations.
type Handles struct {
	hs  map[nsLink]*netlink.Handle // by namespace and netlink family
	nss map[string]netns.NsHandle
	// socks: a raw netlink socket per namespace, for requests netlink.Handle cannot
	// make (AddVeth's).
	socks map[string]*nl.SocketHandle
	// idx: the ifindex of links this batch made or looked up, by namespace and name.
	idx map[nsLink]int
	// nextIndex numbers the veths this batch creates (see AddVeth).
	nextIndex int
}

// firstVethIndex is far above the ifindexes a namespace hands out by itself.
const firstVethIndex = 10000

// NewHandles returns an empty cache; Close releases it.
func NewHandles() *Handles {
	return &Handles{hs: map[nsLink]*netlink.Handle{}, nss: map[string]netns.NsHandle{},
		socks: map[string]*nl.SocketHandle{}, idx: map[nsLink]int{}, nextIndex: firstVethIndex}
}

type nsLink struct{ ns, name string }

// socket returns a raw netlink route socket in the named namespace.
func (h *Handles) socket(name string) (*nl.SocketHandle, error) {
	if s, ok := h.socks[name]; ok {
		return s, nil
	}
	n, err := h.NS(name)
	if err != nil {
		return nil, err
	}
	// Made on a thread moved into the namespace by doIn, never the main one (see goLocked).
	var s *nl.NetlinkSocket
	err = doIn(n, func() (err error) {
		s, err = nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", name, err)
	}
	if err := s.SetSendTimeout(&nl.SocketTimeoutTv); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.SetReceiveTimeout(&nl.SocketTimeoutTv); err != nil {
		s.Close()
		return nil, err
	}
	sh := &nl.SocketHandle{Socket: s}
	h.socks[name] = sh
	return sh, nil
}

// dropSocket closes and forgets ns's raw socket (the next use makes another).
func (h *Handles) dropSocket(ns string) {
	if s, ok := h.socks[ns]; ok {
		s.Close()
		delete(h.socks, ns)
	}
}

// index returns the ifindex of a link of ns: the one this batch made or found, else looked
// up by name.
func (h *Handles) index(ns, name string) (int, error) {
	if i, ok := h.idx[nsLink{ns, name}]; ok {
		return i, nil
	}
	nh, err := h.Get(ns)
	if err != nil {
		return 0, err
	}
	l, err := nh.LinkByName(name)
	if err != nil {
		return 0, err
	}
	h.setIndex(ns, name, l.Attrs().Index)
	return l.Attrs().Index, nil
}

func (h *Handles) setIndex(ns, name string, i int) { h.idx[nsLink{ns, name}] = i }

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

// Get returns a netlink handle bound to the named namespace (no setns involved), for
// the route family (links, addresses, routes, neighbours).
func (h *Handles) Get(name string) (*netlink.Handle, error) {
	return h.get(name, unix.NETLINK_ROUTE)
}

// get returns a handle of one netlink family in the named namespace: a handle opens a
// socket per family it serves, each made by entering the namespace, and a big lab's up
// makes one handle per namespace.
func (h *Handles) get(name string, family int) (*netlink.Handle, error) {
	key := nsLink{name, strconv.Itoa(family)}
	if nh, ok := h.hs[key]; ok {
		return nh, nil
	}
	n, err := h.NS(name)
	if err != nil {
		return nil, err
	}
	var nh *netlink.Handle
	err = doIn(n, func() (err error) { // (see socket)
		nh, err = netlink.NewHandle(family)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	h.hs[key] = nh
	return nh, nil
}

// Close releases every handle; the cache can be used again, and closed again.
func (h *Handles) Close() {
	for _, nh := range h.hs {
		nh.Close()
	}
	for _, s := range h.socks {
		s.Close()
	}
	for _, n := range h.nss {
		n.Close()
	}
	clear(h.hs)
	clear(h.socks)
	clear(h.nss)
	clear(h.idx)
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
	h.setIndex(ns, name, l.Attrs().Index)
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

// masterIndex is the ifindex of the bridge e names as its master in e's namespace, 0 when
// it names none.
func (h *Handles) masterIndex(e VethEnd) (int, error) {
	if e.Master == "" {
		return 0, nil
	}
	m, err := h.index(e.NS, e.Master)
	if err != nil {
		return 0, fmt.Errorf("find bridge %s in %s: %w", e.Master, e.NS, err)
	}
	return m, nil
}

// vethEnds orders a pair as the kernel request wants it: the end that names a bridge
// (master) is the device, the other the peer; and parses their MACs (nil when unset).
func vethEnds(a, b VethEnd) (dev, peer VethEnd, devMAC, peerMAC net.HardwareAddr, err error) {
	dev, peer = a, b
	if a.Master == "" && b.Master != "" {
		dev, peer = b, a
	}
	for _, e := range []struct {
		end VethEnd
		hw  *net.HardwareAddr
	}{{dev, &devMAC}, {peer, &peerMAC}} {
		if e.end.MAC == "" {
			continue
		}
		hw, perr := net.ParseMAC(e.end.MAC)
		if perr != nil {
			return dev, peer, nil, nil, fmt.Errorf("veth %s/%s: %w", e.end.NS, e.end.Name, perr)
		}
		*e.hw = hw
	}
	return dev, peer, devMAC, peerMAC, nil
}

// AddVeth creates a veth pair with each end directly in its namespace, enslaves ends that
// name a master bridge, adds addresses and sets both ends up.
//
// It costs few netlink round trips, as a thousand pods make a thousand of them under the
// kernel's RTNL lock: one RTM_NEWLINK creates both ends, each with its own ifindex, the
// end that names a bridge up and enslaved (that end is the request's device, the other its
// peer: the kernel cannot open a peer before the pair is linked); then one message per
// address, one for hairpin mode and one that sets the peer up. No end is looked up by name
// afterwards: both ifindexes are chosen here.
//
// Each end gets an ifindex of its own from a high range, so it never equals its peer's. The
// kernel treats a link whose ifindex equals its iflink (the peer's index, which lives in
// another namespace) as not stacked, and then delays its carrier event by up to a second: a
// bridge port stays disabled and drops the first packets. An index already taken in either
// namespace (a namespace that outlived an earlier batch, as a node's under `apply`) makes the
// kernel answer EEXIST (EBUSY before Linux 6.6); when neither end's name exists, the next
// indexes are tried.
func (h *Handles) AddVeth(a, b VethEnd) error {
	dev, peer, devMAC, peerMAC, err := vethEnds(a, b)
	if err != nil {
		return err
	}
	sock, err := h.socket(dev.NS)
	if err != nil {
		return err
	}
	nsPeer, err := h.NS(peer.NS)
	if err != nil {
		return err
	}
	master, err := h.masterIndex(dev)
	if err != nil {
		return err
	}
	var devIdx, peerIdx int
	for try := 0; ; try++ {
		devIdx, peerIdx = h.nextIndex+1, h.nextIndex+2
		h.nextIndex += 2
		err = newVeth(sock, vethReq{name: dev.Name, index: devIdx, mac: devMAC, mtu: a.MTU, master: master},
			vethReq{name: peer.Name, index: peerIdx, mac: peerMAC, mtu: a.MTU}, int(nsPeer))
		if !(errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST)) || try == maxIndexTries || h.exists(dev.NS, dev.Name) || h.exists(peer.NS, peer.Name) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("add veth %s/%s <-> %s/%s: %w", a.NS, a.Name, b.NS, b.Name, err)
	}
	h.setIndex(dev.NS, dev.Name, devIdx)
	h.setIndex(peer.NS, peer.Name, peerIdx)
	ends := []struct {
		end VethEnd
		idx int
	}{{dev, devIdx}, {peer, peerIdx}}
	for _, e := range ends {
		if err := h.setupEnd(e.end, e.idx, e.end.Name == dev.Name && e.end.NS == dev.NS); err != nil {
			return err
		}
	}
	return nil
}

// exists says whether ns has a link of that name (an EEXIST from AddVeth is then about
// the name, not an ifindex).
func (h *Handles) exists(ns, name string) bool {
	nh, err := h.Get(ns)
	if err != nil {
		return false
	}
	_, err = nh.LinkByName(name)
	return err == nil
}

// maxIndexTries bounds AddVeth's retries on an ifindex already taken.
const maxIndexTries = 64

// vethReq is one end of a veth in an RTM_NEWLINK request.
type vethReq struct {
	name       string
	index, mtu int
	mac        net.HardwareAddr
	master     int // ifindex of the bridge to enslave the end to (the request's device only)
}

// vethQueues is the number of transmit and receive queues each veth end is created with.
// Without it the kernel allocates one per possible CPU, then, once the end is registered,
// cuts the real number to one (veth_init_queues), and cutting the transmit queues of a
// registered device waits for an RCU grace period under RTNL (synchronize_net in
// netif_set_real_num_tx_queues): two waits per veth, serial for every veth of a lab, and
// long on a busy machine. The result, one queue each way, is the same; a device created
// with one has nothing to cut.
const vethQueues = 1

// newVeth sends one RTM_NEWLINK on sock (a socket in dev's namespace) that creates dev and
// its peer in the namespace peerNS (an open namespace file descriptor), each with its
// ifindex, MAC and MTU when set, dev up and enslaved to its master.
func newVeth(sock *nl.SocketHandle, dev, peer vethReq, peerNS int) error {
	req := newVethReq(dev, peer, peerNS)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sock}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// newVethReq is newVeth's request.
func newVethReq(dev, peer vethReq, peerNS int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index, msg.Flags, msg.Change = int32(dev.index), unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(dev.name)))
	if dev.mtu > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(dev.mtu))))
	}
	if dev.mac != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(dev.mac)))
	}
	if dev.master > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(dev.master))))
	}
	// One queue each way from the start (see vethQueues).
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(vethQueues)))
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(vethQueues)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	p := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	pm := nl.NewIfInfomsgChild(p, unix.AF_UNSPEC)
	pm.Index = int32(peer.index) // not up here: a veth whose peer is not yet linked fails to open (ENOTCONN)
	p.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(peer.name))
	if peer.mtu > 0 {
		p.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(peer.mtu)))
	}
	if peer.mac != nil {
		p.AddRtAttr(unix.IFLA_ADDRESS, []byte(peer.mac))
	}
	p.AddRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(vethQueues))
	p.AddRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(vethQueues))
	p.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(peerNS)))
	req.AddData(info)
	return req
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
		delete(h.idx, nsLink{ns, l.Attrs().Name})
		if err := nh.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete %s in %s: %w", l.Attrs().Name, ns, err))
		}
	}
	return errors.Join(errs...)
}

// setupEnd finishes an end AddVeth created (the request's device already up and
// enslaved): the master of a peer that names one, hairpin mode, addresses, the peer up.
func (h *Handles) setupEnd(e VethEnd, idx int, isDev bool) error {
	nh, err := h.Get(e.NS)
	if err != nil {
		return err
	}
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: e.Name, Index: idx}}
	if e.Master != "" && !isDev {
		m, err := h.masterIndex(e)
		if err != nil {
			return err
		}
		if err := nh.LinkSetMasterByIndex(l, m); err != nil {
			return fmt.Errorf("attach %s to %s in %s: %w", e.Name, e.Master, e.NS, err)
		}
	}
	if e.Master != "" && e.Hairpin {
		if err := nh.LinkSetHairpin(l, true); err != nil {
			return fmt.Errorf("hairpin on %s in %s: %w", e.Name, e.NS, err)
		}
	}
	if err := h.addAddrs(nh, l, e.NS, e.Addrs); err != nil {
		return err
	}
	if !isDev {
		if err := nh.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up in %s: %w", e.Name, e.NS, err)
		}
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
		li, err := h.index(ns, dev)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", dev, ns, err)
		}
		r.LinkIndex = li
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
	li, err := h.index(ns, dev)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", dev, ns, err)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("entry %s on %s: %w", ip, dev, err)
	}
	n := &netlink.Neigh{LinkIndex: li, Family: family, State: netlink.NUD_PERMANENT,
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
