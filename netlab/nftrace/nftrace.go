// Package nftrace switches the kernel's nf_tables packet tracing on for one flow in a set of
// network namespaces and reads which rules acted on its packets: what `nft monitor trace`
// and `xtables-monitor --trace` show, for iptables-nft's tables and nft's own alike.
//
// In each namespace a table `ip netlab-trace-<pid>-<n>` holds two chains hooked before
// conntrack (prerouting and output, priority -350) whose rules set `meta nftrace` on the
// flow's packets only: from or to the sender's address and port, and, where asked, the
// TCP SYNs the namespace itself sends to a prefix (an ingress's own connection to a
// Service). The table is created with the owner flag: it belongs to the netlink socket that
// made it, and the kernel deletes it when that socket closes — when Stop closes it, and
// also when the process dies by any signal. No trace rule outlives its trace.
package nftrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"golang.org/x/sys/unix"
)

// TablePrefix starts the name of every trace table; Comment is on every trace rule.
const (
	TablePrefix = "netlab-trace"
	Comment     = "netlab trace: nftrace for one traced flow"
)

// Target is a namespace to trace in.
type Target struct {
	Object string // the lab object it belongs to
	Netns  string
	// LocalSYNs also traces the TCP SYNs this namespace sends to Spec.SYNsTo.
	LocalSYNs bool
}

// Spec is the flow to trace.
type Spec struct {
	Peer   netip.AddrPort // the sender's address and port: its packets and the answers to it
	Proto  uint8          // unix.IPPROTO_TCP or unix.IPPROTO_UDP
	SYNsTo netip.Prefix   // see Target.LocalSYNs
}

// Event is one step of one traced packet through a chain: a rule that matched (with its
// verdict), a chain's return, or a base chain's policy.
type Event struct {
	Object, Netns string
	Seq           int    // order of arrival in the session
	ID            uint32 // the events of one packet in one namespace share it
	Table, Chain  string
	Handle        uint64 // the rule's handle (0 for a policy)
	Type          string // rule, return, policy
	Verdict       string // accept, drop, continue, jump, goto, return, queue, stolen
	Target        string // the chain of a jump or goto
	Src, Dst      netip.AddrPort
	Proto         uint8
	TCPFlags      uint8
	Iif, Oif      uint32
	// Hook says the event starts the packet's walk through one hook's chains: the kernel
	// sends the headers then (the others here are copied from it).
	Hook bool
}

// Mine says whether an event comes from a trace table's own chains.
func (e Event) Mine() bool { return strings.HasPrefix(e.Table, TablePrefix) }

// Session is tracing in progress.
type Session struct {
	ns      []*nsTrace
	mu      sync.Mutex
	events  []Event
	onEvent func(Event)
}

type nsTrace struct {
	target   Target
	ctl, mon int
	table    string
	stop     atomic.Bool
	done     chan struct{}
	overflow atomic.Bool
}

var tables atomic.Uint32

// Netfilter's verdicts (linux/netfilter.h).
const (
	nfDrop = iota
	nfAccept
	nfStolen
	nfQueue
	nfRepeat
)

// Start installs the trace rules in every target namespace and listens to their trace
// events; onEvent (may be nil) sees each event as it arrives. On error nothing is left.
func Start(targets []Target, spec Spec, onEvent func(Event)) (*Session, error) {
	if !spec.Peer.Addr().Is4() || spec.Peer.Port() == 0 {
		return nil, fmt.Errorf("nftrace: need an IPv4 address and port, got %s", spec.Peer)
	}
	s := &Session{onEvent: onEvent}
	s.ns = make([]*nsTrace, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := &nsTrace{target: tg, ctl: -1, mon: -1, done: make(chan struct{}),
				table: fmt.Sprintf("%s-%d-%d", TablePrefix, os.Getpid(), tables.Add(1))}
			s.ns[i] = n
			if errs[i] = n.open(); errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", tg.Netns, errs[i])
				return
			}
			go n.read(s)
			if errs[i] = n.install(spec); errs[i] != nil {
				errs[i] = fmt.Errorf("%s: trace rules: %w", tg.Netns, errs[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// open makes the namespace's two sockets: one subscribed to trace events, one that owns
// the trace table.
func (n *nsTrace) open() error {
	return kernel.Do(n.target.Netns, func() error {
		var err error
		if n.mon, err = socket(); err != nil {
			return err
		}
		_ = unix.SetsockoptInt(n.mon, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		tv := unix.NsecToTimeval((20 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(n.mon, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(n.mon, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, unix.NFNLGRP_NFTRACE); err != nil {
			return fmt.Errorf("subscribe to nftables trace events: %w", err)
		}
		n.ctl, err = socket()
		return err
	})
}

// install creates the trace table, its chains and rules in one transaction.
func (n *nsTrace) install(spec Spec) error {
	const fam = unix.NFPROTO_IPV4
	create := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE)
	tbl := strAttr(unix.NFTA_TABLE_NAME, n.table)
	msgs := [][]byte{message(nftType(unix.NFT_MSG_NEWTABLE), create|unix.NLM_F_EXCL, fam, 0, tbl,
		u32Attr(unix.NFTA_TABLE_FLAGS, tableFlagOwner))}
	prio := -350 // before conntrack (-200) and iptables' raw table (-300)
	for _, c := range []struct {
		name string
		hook uint32
	}{{"pre", unix.NF_INET_PRE_ROUTING}, {"out", unix.NF_INET_LOCAL_OUT}} {
		msgs = append(msgs, message(nftType(unix.NFT_MSG_NEWCHAIN), create, fam, 0,
			strAttr(unix.NFTA_CHAIN_TABLE, n.table), strAttr(unix.NFTA_CHAIN_NAME, c.name),
			nested(unix.NFTA_CHAIN_HOOK, u32Attr(unix.NFTA_HOOK_HOOKNUM, c.hook), u32Attr(unix.NFTA_HOOK_PRIORITY, uint32(int32(prio)))),
			u32Attr(unix.NFTA_CHAIN_POLICY, nfAccept), strAttr(unix.NFTA_CHAIN_TYPE, "filter")))
		var rules [][]attr
		for _, dir := range []struct{ addrOff, portOff uint32 }{{12, 0}, {16, 2}} { // saddr+sport, daddr+dport
			a := spec.Peer.Addr().As4()
			rules = append(rules, []attr{
				payload(unix.NFT_PAYLOAD_NETWORK_HEADER, dir.addrOff, 4), cmpEq(a[:]),
				metaLoad(unix.NFT_META_L4PROTO), cmpEq([]byte{spec.Proto}),
				payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, dir.portOff, 2), cmpEq(binary.BigEndian.AppendUint16(nil, spec.Peer.Port())),
			})
		}
		if c.name == "out" && n.target.LocalSYNs && spec.SYNsTo.IsValid() && spec.SYNsTo.Addr().Is4() {
			pfx := spec.SYNsTo.Masked()
			a := pfx.Addr().As4()
			m := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-pfx.Bits()))
			if pfx.Bits() == 0 {
				m = []byte{0, 0, 0, 0}
			}
			rules = append(rules, []attr{
				metaLoad(unix.NFT_META_L4PROTO), cmpEq([]byte{unix.IPPROTO_TCP}),
				payload(unix.NFT_PAYLOAD_NETWORK_HEADER, 16, 4), bitwiseAnd(m), cmpEq(a[:]),
				payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1), bitwiseAnd([]byte{0x12}), cmpEq([]byte{0x02}), // SYN without ACK
			})
		}
		for _, r := range rules {
			r = append(r, setNftrace()...)
			msgs = append(msgs, message(nftType(unix.NFT_MSG_NEWRULE), create|unix.NLM_F_APPEND, fam, 0,
				strAttr(unix.NFTA_RULE_TABLE, n.table), strAttr(unix.NFTA_RULE_CHAIN, c.name),
				nested(unix.NFTA_RULE_EXPRESSIONS, r...), comment(Comment)))
		}
	}
	return transact(n.ctl, batch(msgs...), len(msgs))
}

// read collects the namespace's trace events until stopped (and drained).
func (n *nsTrace) read(s *Session) {
	defer close(n.done)
	buf := make([]byte, 1<<16)
	// The kernel sends a packet's headers with its first event only.
	type pkt struct {
		src, dst netip.AddrPort
		proto    uint8
		flags    uint8
		iif, oif uint32
	}
	pkts := map[uint32]pkt{}
	for {
		nr, _, err := unix.Recvfrom(n.mon, buf, 0)
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				n.overflow.Store(true)
				continue
			}
			if (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && !n.stop.Load() {
				continue
			}
			return
		}
		msgs, _ := parseMessages(buf[:nr])
		for _, m := range msgs {
			if m.typ != nftType(unix.NFT_MSG_TRACE) || len(m.data) < 4 {
				continue
			}
			if e, ok := parseEvent(m.data[4:]); ok {
				e.Object, e.Netns = n.target.Object, n.target.Netns
				if e.Src.IsValid() {
					e.Hook = true
					pkts[e.ID] = pkt{e.Src, e.Dst, e.Proto, e.TCPFlags, e.Iif, e.Oif}
				} else if p, ok := pkts[e.ID]; ok {
					e.Src, e.Dst, e.Proto, e.TCPFlags, e.Iif, e.Oif = p.src, p.dst, p.proto, p.flags, p.iif, p.oif
				}
				s.add(e)
			}
		}
	}
}

func (s *Session) add(e Event) {
	s.mu.Lock()
	e.Seq = len(s.events)
	s.events = append(s.events, e)
	s.mu.Unlock()
	if s.onEvent != nil {
		s.onEvent(e)
	}
}

// Stop deletes the trace tables, reads the events still queued and returns all events in
// the order they arrived. It may be called more than once.
func (s *Session) Stop() []Event {
	var wg sync.WaitGroup
	for _, n := range s.ns {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.close()
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Overflowed says whether some namespace's events did not all fit its socket's buffer.
func (s *Session) Overflowed() bool {
	for _, n := range s.ns {
		if n != nil && n.overflow.Load() {
			return true
		}
	}
	return false
}

func (n *nsTrace) close() {
	if n.ctl >= 0 {
		// Deleting the table first, rather than only closing its owner, makes its removal
		// part of Stop; the close would do it too.
		_ = transact(n.ctl, batch(message(nftType(unix.NFT_MSG_DELTABLE), unix.NLM_F_REQUEST|unix.NLM_F_ACK, unix.NFPROTO_IPV4, 0,
			strAttr(unix.NFTA_TABLE_NAME, n.table))), 1)
		unix.Close(n.ctl)
		n.ctl = -1
	}
	if n.mon >= 0 {
		n.stop.Store(true)
		<-n.done
		unix.Close(n.mon)
		n.mon = -1
	}
}

// parseEvent reads one NFT_MSG_TRACE message's attributes.
func parseEvent(b []byte) (Event, bool) {
	a := parseAttrs(b)
	e := Event{Table: cstr(a[unix.NFTA_TRACE_TABLE]), Chain: cstr(a[unix.NFTA_TRACE_CHAIN])}
	if e.Table == "" {
		return e, false
	}
	if v := a[unix.NFTA_TRACE_ID]; len(v) == 4 {
		e.ID = binary.BigEndian.Uint32(v)
	}
	if v := a[unix.NFTA_TRACE_RULE_HANDLE]; len(v) == 8 {
		e.Handle = binary.BigEndian.Uint64(v)
	}
	if v := a[unix.NFTA_TRACE_IIF]; len(v) == 4 {
		e.Iif = binary.BigEndian.Uint32(v)
	}
	if v := a[unix.NFTA_TRACE_OIF]; len(v) == 4 {
		e.Oif = binary.BigEndian.Uint32(v)
	}
	if v := a[unix.NFTA_TRACE_TYPE]; len(v) == 4 {
		e.Type = map[uint32]string{unix.NFT_TRACETYPE_POLICY: "policy", unix.NFT_TRACETYPE_RETURN: "return", unix.NFT_TRACETYPE_RULE: "rule"}[binary.BigEndian.Uint32(v)]
	}
	if v, ok := a[unix.NFTA_TRACE_VERDICT]; ok {
		va := parseAttrs(v)
		if c := va[unix.NFTA_VERDICT_CODE]; len(c) == 4 {
			e.Verdict = verdictName(int32(binary.BigEndian.Uint32(c)))
		}
		e.Target = cstr(va[unix.NFTA_VERDICT_CHAIN])
	}
	if v := a[unix.NFTA_TRACE_POLICY]; len(v) == 4 && e.Type == "policy" {
		e.Verdict = verdictName(int32(binary.BigEndian.Uint32(v)))
	}
	if nh := a[unix.NFTA_TRACE_NETWORK_HEADER]; len(nh) >= 20 && nh[0]>>4 == 4 {
		e.Proto = nh[9]
		src, _ := netip.AddrFromSlice(nh[12:16])
		dst, _ := netip.AddrFromSlice(nh[16:20])
		var sp, dp uint16
		if th := a[unix.NFTA_TRACE_TRANSPORT_HEADER]; len(th) >= 4 && (e.Proto == unix.IPPROTO_TCP || e.Proto == unix.IPPROTO_UDP) {
			sp, dp = binary.BigEndian.Uint16(th), binary.BigEndian.Uint16(th[2:])
			if e.Proto == unix.IPPROTO_TCP && len(th) >= 14 {
				e.TCPFlags = th[13]
			}
		}
		e.Src, e.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	}
	return e, true
}

func verdictName(code int32) string {
	switch code {
	case nfDrop:
		return "drop"
	case nfAccept:
		return "accept"
	case nfStolen:
		return "stolen"
	case nfQueue:
		return "queue"
	case nfRepeat:
		return "repeat"
	case unix.NFT_CONTINUE:
		return "continue"
	case unix.NFT_BREAK:
		return "break"
	case unix.NFT_JUMP:
		return "jump"
	case unix.NFT_GOTO:
		return "goto"
	case unix.NFT_RETURN:
		return "return"
	}
	return fmt.Sprintf("verdict %d", code)
}

// Leftovers lists the trace tables in a namespace (none, unless a trace is running).
func Leftovers(ns string) ([]string, error) {
	var out []string
	err := kernel.Do(ns, func() error {
		fd, err := socket()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		msgs, err := dump(fd, message(nftType(unix.NFT_MSG_GETTABLE), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, unix.NFPROTO_UNSPEC, 0))
		for _, m := range msgs {
			if len(m.data) < 4 {
				continue
			}
			if name := cstr(parseAttrs(m.data[4:])[unix.NFTA_TABLE_NAME]); strings.HasPrefix(name, TablePrefix) {
				out = append(out, name)
			}
		}
		return err
	})
	return out, err
}

// dump sends a dump request and returns its answers.
func dump(fd int, req []byte) ([]nlmsg, error) {
	if _, err := unix.Write(fd, req); err != nil {
		return nil, err
	}
	var out []nlmsg
	buf := make([]byte, 1<<20)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return out, err
		}
		msgs, err := parseMessages(buf[:n])
		if err != nil {
			return out, err
		}
		for _, m := range msgs {
			switch m.typ {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.data)); code != 0 {
						return out, unix.Errno(-code)
					}
				}
				return out, nil
			}
			m.data = append([]byte(nil), m.data...)
			out = append(out, m)
		}
	}
}
