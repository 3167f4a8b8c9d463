package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A Batch queues route netlink requests by namespace and sends each namespace's in as few
// writes as it can, reading the acknowledgements after each write instead of after each
// request. The kernel runs every request of a write in order, in the writer's context,
// before the write returns (RTNL is taken per request, as for one request a write): what
// the batch saves is the round trips — a write and a wake-up per request, and the netlink
// library's per-request work — not the kernel's work, and the order of requests within a
// namespace is kept. Requests are ordered by phase, every namespace's requests of one phase
// before any of the next: creations (and loopbacks) first, then what a created link's own
// namespace sets on it, then what its peer's namespace sets (routes and neighbours go in
// the first).
//
// It serves up's links step, whose namespaces are new: see AddVeth for the ifindexes.
type Batch struct {
	h      *Handles
	phases [3]batchPhase
	// veths: queued by AddVeth, in order; fallback: those to make again with
	// Handles.AddVeth (an ifindex taken: see Run).
	veths []batchVeth
	// dial, when set, replaces the namespace's netlink socket (a test's).
	dial func(ns string) (batchConn, error)
}

// batchConn is what send writes a chunk of requests to and reads their answers from.
type batchConn interface {
	write(buf []byte) error
	read() ([]syscall.NetlinkMessage, error)
}

// sockConn is a namespace's netlink socket as a batchConn.
type sockConn struct{ s *nl.SocketHandle }

func (c sockConn) write(buf []byte) error {
	return unix.Sendto(c.s.Socket.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

func (c sockConn) read() ([]syscall.NetlinkMessage, error) { return recvAcks(c.s) }

// conn returns ns's connection: its netlink socket, with room for a chunk's answers.
func (b *Batch) conn(ns string) (batchConn, error) {
	if b.dial != nil {
		return b.dial(ns)
	}
	sock, err := b.h.socket(ns)
	if err != nil {
		return nil, err
	}
	if err := sock.Socket.SetReceiveBufferSize(batchRcvBuf, false); err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", ns, err)
	}
	return sockConn{sock}, nil
}

type batchPhase struct {
	order []string // namespaces, in the order they were first given a request
	reqs  map[string][]batchReq
}

type batchReq struct {
	req  *nl.NetlinkRequest
	what string
	veth int // index in Batch.veths, or -1
	// create marks the request that creates veth: an ifindex already taken (EEXIST,
	// EBUSY) sends the pair to Handles.AddVeth instead of failing the batch.
	create bool
	// tolerate: an answer that is fine (an address already there).
	tolerate syscall.Errno
}

type batchVeth struct {
	a, b VethEnd
	// fallback: its creation found an ifindex taken (made again by Run); failed: its
	// creation failed otherwise. Either way nothing more is sent for it: the ifindexes
	// may be another link's.
	fallback, failed bool
}

// batchChunk bounds the requests of one write: their acknowledgements wait in the socket's
// receive buffer until the write returns (about 0.5–1 KiB of buffer each, an error's with
// its request), which send makes batchRcvBuf.
const batchChunk = 128

// batchRcvBuf is the receive buffer send asks for: room for a chunk's acknowledgements
// several times over.
const batchRcvBuf = 1 << 20

// NewBatch returns an empty batch on h's sockets and namespace handles.
func (h *Handles) NewBatch() *Batch {
	b := &Batch{h: h}
	for i := range b.phases {
		b.phases[i].reqs = map[string][]batchReq{}
	}
	return b
}

func (b *Batch) add(phase int, ns string, r batchReq) {
	p := &b.phases[phase]
	if _, ok := p.reqs[ns]; !ok {
		p.order = append(p.order, ns)
	}
	p.reqs[ns] = append(p.reqs[ns], r)
}

// LoUp queues setting the loopback of ns up: in a new namespace it is always ifindex 1.
func (b *Batch) LoUp(ns string) {
	b.add(0, ns, batchReq{req: linkUpReq(1), what: "set lo up in " + ns, veth: -1})
}

// AddVeth queues what Handles.AddVeth does, in three phases: the pair's creation (the end
// that names a bridge, created up and enslaved, is the request's device); that end's
// hairpin mode and addresses, in its namespace; the other end's master, hairpin mode,
// addresses and up, in its own. Each end gets its ifindex from the batch's range, as
// Handles.AddVeth does; should one be taken (a namespace that is not new), Run makes that
// pair again with Handles.AddVeth, which tries the next ones.
func (b *Batch) AddVeth(a, c VethEnd) error {
	dev, peer, devMAC, peerMAC, err := vethEnds(a, c)
	if err != nil {
		return err
	}
	h := b.h
	nsPeer, err := h.NS(peer.NS)
	if err != nil {
		return err
	}
	master, err := h.masterIndex(dev)
	if err != nil {
		return err
	}
	peerMaster, err := h.masterIndex(peer)
	if err != nil {
		return err
	}
	devIdx, peerIdx := h.nextIndex+1, h.nextIndex+2
	h.nextIndex += 2
	v := len(b.veths)
	b.veths = append(b.veths, batchVeth{a: a, b: c})
	what := fmt.Sprintf("add veth %s/%s <-> %s/%s", a.NS, a.Name, c.NS, c.Name)
	b.add(0, dev.NS, batchReq{req: newVethReq(vethReq{name: dev.Name, index: devIdx, mac: devMAC, mtu: a.MTU, master: master},
		vethReq{name: peer.Name, index: peerIdx, mac: peerMAC, mtu: a.MTU}, int(nsPeer)), what: what, veth: v, create: true})
	for _, e := range []struct {
		end   VethEnd
		idx   int
		phase int
	}{{dev, devIdx, 1}, {peer, peerIdx, 2}} {
		end := e.end
		if e.phase == 2 && peerMaster > 0 {
			b.add(2, end.NS, batchReq{req: setMasterReq(e.idx, peerMaster), veth: v,
				what: fmt.Sprintf("attach %s to %s in %s", end.Name, end.Master, end.NS)})
		}
		if end.Master != "" && end.Hairpin {
			b.add(e.phase, end.NS, batchReq{req: hairpinReq(e.idx), veth: v,
				what: fmt.Sprintf("hairpin on %s in %s", end.Name, end.NS)})
		}
		for _, s := range end.Addrs {
			req, err := addrReq(e.idx, s)
			if err != nil {
				return err
			}
			b.add(e.phase, end.NS, batchReq{req: req, veth: v, tolerate: unix.EEXIST,
				what: fmt.Sprintf("add %s to %s in %s", s, end.Name, end.NS)})
		}
		if e.phase == 2 {
			b.add(2, end.NS, batchReq{req: linkUpReq(e.idx), veth: v,
				what: fmt.Sprintf("set %s up in %s", end.Name, end.NS)})
		}
	}
	h.setIndex(dev.NS, dev.Name, devIdx)
	h.setIndex(peer.NS, peer.Name, peerIdx)
	return nil
}

// Run sends every queued request, phase by phase, and then makes the pairs whose ifindex
// was taken again with Handles.AddVeth. Nothing is sent for a pair after its creation
// failed (its ifindexes may be another link's). It returns every error.
func (b *Batch) Run() error {
	var errs []error
	for i := range b.phases {
		p := &b.phases[i]
		for _, ns := range p.order {
			errs = append(errs, b.send(ns, p.reqs[ns]))
		}
	}
	for _, v := range b.veths {
		if v.fallback {
			errs = append(errs, b.h.AddVeth(v.a, v.b))
		}
	}
	return errors.Join(errs...)
}

// send writes ns's requests, batchChunk at a time, and reads their acknowledgements.
func (b *Batch) send(ns string, reqs []batchReq) error {
	// A pair whose creation failed (in an earlier phase: a pair's creation is the only
	// request of its phase for it) is not touched: its ifindexes may be another link's.
	reqs = slices.DeleteFunc(slices.Clone(reqs), func(r batchReq) bool {
		return r.veth >= 0 && (b.veths[r.veth].fallback || b.veths[r.veth].failed)
	})
	if len(reqs) == 0 {
		return nil
	}
	conn, err := b.conn(ns)
	if err != nil {
		return err
	}
	// A write or read that fails leaves answers unread on the socket, which a later
	// request on it (AddVeth's) would take for its own: the socket goes. A creation whose
	// answer was not read, or that was never sent, counts as failed: the later phases
	// send its pair nothing.
	drop := func(err error, unsent ...[]batchReq) error {
		b.h.dropSocket(ns)
		b.failCreations(unsent...)
		return err
	}
	var errs []error
	for len(reqs) > 0 {
		n := min(len(reqs), batchChunk)
		chunk := reqs[:n]
		reqs = reqs[n:]
		var buf []byte
		bySeq := make(map[uint32]int, n)
		for i, r := range chunk {
			m := r.req.Serialize()
			bySeq[r.req.Seq] = i
			buf = append(buf, m...)
		}
		if err := conn.write(buf); err != nil {
			return drop(errors.Join(append(errs, fmt.Errorf("netlink write in %s: %w", ns, err))...), chunk, reqs)
		}
		answers := make([]syscall.Errno, n)
		left := n
		for left > 0 {
			msgs, err := conn.read()
			if err != nil {
				var unanswered []batchReq
				for _, i := range bySeq {
					unanswered = append(unanswered, chunk[i])
				}
				errs = append(errs, b.judge(chunk, answers, bySeq)...)
				return drop(errors.Join(append(errs, fmt.Errorf("netlink read in %s (%d answers missing): %w", ns, left, err))...), unanswered, reqs)
			}
			for _, m := range msgs {
				i, ok := bySeq[m.Header.Seq]
				if !ok || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
					continue
				}
				delete(bySeq, m.Header.Seq)
				left--
				answers[i] = syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data[:4])))
			}
		}
		errs = append(errs, b.judge(chunk, answers, nil)...)
	}
	return errors.Join(errs...)
}

// failCreations marks the pairs these requests create as failed.
func (b *Batch) failCreations(reqs ...[]batchReq) {
	for _, rs := range reqs {
		for _, r := range rs {
			if r.create {
				b.veths[r.veth].failed = true
			}
		}
	}
}

// judge takes a chunk's answers (those not in unanswered, by sequence number): a
// creation the kernel refused fails, or falls back to one request at a time when its
// name is taken; every other refusal not tolerated is an error.
func (b *Batch) judge(chunk []batchReq, answers []syscall.Errno, unanswered map[uint32]int) []error {
	skip := make(map[int]bool, len(unanswered))
	for _, i := range unanswered {
		skip[i] = true
	}
	var errs []error
	for i, r := range chunk {
		e := answers[i]
		if skip[i] || e == 0 || (r.tolerate != 0 && e == r.tolerate) {
			continue
		}
		if r.create && (e == unix.EEXIST || e == unix.EBUSY) {
			b.veths[r.veth].fallback = true
			continue
		}
		if r.create {
			b.veths[r.veth].failed = true
		}
		errs = append(errs, fmt.Errorf("%s: %w", r.what, e))
	}
	return errs
}

// recvAcks reads what is waiting on sock without waiting (the kernel answered every
// request of a write before the write returned), else waits for it as the netlink
// library does, with the socket's receive timeout.
func recvAcks(sock *nl.SocketHandle) ([]syscall.NetlinkMessage, error) {
	var rb [16 << 10]byte
	n, _, err := unix.Recvfrom(sock.Socket.GetFd(), rb[:], unix.MSG_DONTWAIT)
	if errors.Is(err, unix.EAGAIN) {
		msgs, _, err := sock.Socket.Receive()
		return msgs, err
	}
	if err != nil {
		return nil, err
	}
	return syscall.ParseNetlinkMessage(slices.Clone(rb[:n]))
}

// linkUpReq sets the link of ifindex idx up (as netlink.Handle.LinkSetUp asks).
func linkUpReq(idx int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index, msg.Flags, msg.Change = int32(idx), unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	return req
}

// setMasterReq enslaves the link of ifindex idx to the bridge of ifindex master.
func setMasterReq(idx, master int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(master))))
	return req
}

// hairpinReq turns hairpin mode on for the bridge port of ifindex idx (as
// netlink.Handle.LinkSetHairpin asks).
func hairpinReq(idx int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_BRIDGE)
	msg.Index = int32(idx)
	req.AddData(msg)
	br := nl.NewRtAttr(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, nil)
	br.AddRtAttr(nl.IFLA_BRPORT_MODE, []byte{1})
	req.AddData(br)
	return req
}

// addrReq adds an IPv4 address (CIDR form) to the link of ifindex idx, with the broadcast
// address netlink.Handle.AddrAdd would give it.
func addrReq(idx int, cidr string) (*nl.NetlinkRequest, error) {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return nil, fmt.Errorf("address %s: %w", cidr, err)
	}
	ip := a.IP.To4()
	if ip == nil {
		return nil, fmt.Errorf("address %s: not IPv4", cidr)
	}
	ones, bits := a.Mask.Size()
	req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(unix.AF_INET)
	msg.Index = uint32(idx)
	msg.Prefixlen = uint8(ones)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	if ones < 31 && bits == 32 {
		brd := make(net.IP, 4)
		for i := range ip {
			brd[i] = ip[i] | ^a.Mask[i]
		}
		req.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, brd))
	}
	return req, nil
}

// AddRoute queues what Handles.AddRouteOnlink does (an identical route already there is
// fine), in the first phase.
func (b *Batch) AddRoute(ns, dst, via, dev string, onlink bool) error {
	msg := nl.NewRtMsg() // main table, universe scope, proto boot, unicast: as RouteAdd
	msg.Family = unix.AF_INET
	var attrs []*nl.RtAttr
	if dst != "default" {
		_, n, err := net.ParseCIDR(dst)
		if err != nil || n.IP.To4() == nil {
			return fmt.Errorf("route %s: not an IPv4 CIDR", dst)
		}
		ones, _ := n.Mask.Size()
		msg.Dst_len = uint8(ones)
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_DST, n.IP.To4()))
	}
	if via != "" {
		gw := net.ParseIP(via).To4()
		if gw == nil {
			return fmt.Errorf("route %s: gateway %s is not IPv4", dst, via)
		}
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_GATEWAY, gw))
	}
	if dev != "" {
		li, err := b.h.index(ns, dev)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", dev, ns, err)
		}
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(li))))
	}
	if onlink {
		msg.Flags = unix.RTNH_F_ONLINK
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(msg)
	for _, a := range attrs {
		req.AddData(a)
	}
	b.add(0, ns, batchReq{req: req, veth: -1, tolerate: unix.EEXIST, what: fmt.Sprintf("add route %s via %s in %s", dst, via, ns)})
	return nil
}

// AddNeighbor queues what Handles.AddNeighbor does, in the first phase.
func (b *Batch) AddNeighbor(ns, dev, ip, mac string) error {
	return b.addNeigh(ns, dev, ip, mac, unix.AF_INET, 0)
}

// AddFDB queues what Handles.AddFDB does, in the first phase.
func (b *Batch) AddFDB(ns, dev, mac, dst string) error {
	return b.addNeigh(ns, dev, dst, mac, unix.AF_BRIDGE, netlink.NTF_SELF)
}

// addNeigh is setPermanentNeigh's request (as netlink.Handle.NeighSet asks).
func (b *Batch) addNeigh(ns, dev, ip, mac string, family, flags int) error {
	li, err := b.h.index(ns, dev)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", dev, ns, err)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("entry %s on %s: %w", ip, dev, err)
	}
	addr := net.ParseIP(ip).To4()
	if addr == nil {
		return fmt.Errorf("entry %s on %s: not an IPv4 address", ip, dev)
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	req.AddData(&netlink.Ndmsg{Family: uint8(family), Index: uint32(li), State: netlink.NUD_PERMANENT, Flags: uint8(flags)})
	req.AddData(nl.NewRtAttr(netlink.NDA_DST, addr))
	req.AddData(nl.NewRtAttr(netlink.NDA_LLADDR, []byte(hw)))
	b.add(0, ns, batchReq{req: req, veth: -1, what: fmt.Sprintf("entry %s lladdr %s on %s in %s", ip, mac, dev, ns)})
	return nil
}
