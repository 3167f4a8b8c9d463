package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nfnetlink_acct (linux/netfilter/nfnetlink_acct.h): the named packet and byte counters
// that iptables' nfacct match adds to.
const (
	nfnlSubsysAcct = 7
	nfnlMsgAcctNew = 0
	nfnlMsgAcctGet = 1
	nfacctName     = 1
	nfacctPkts     = 2
	nfacctBytes    = 3
)

// EnsureNFAcctHere makes the named nfacct counters in the calling thread's network
// namespace (each namespace has its own), keeping any that already exist with their
// counts. An error means the kernel has no nfacct support (nfnetlink_acct) or refused.
func EnsureNFAcctHere(names ...string) error {
	for _, name := range names {
		req := nl.NewNetlinkRequest(nfnlSubsysAcct<<8|nfnlMsgAcctNew, unix.NLM_F_CREATE|unix.NLM_F_ACK)
		req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: nl.NFNETLINK_V0})
		req.AddData(nl.NewRtAttr(nfacctName, nl.ZeroTerminated(name)))
		// An existing counter answers EBUSY unless the request asks to replace (and
		// zero) it: it is kept as it is.
		if _, err := req.Execute(unix.NETLINK_NETFILTER, 0); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("nfacct counter %s: %w", name, err)
		}
	}
	return nil
}

// NFAcctHere reads the named nfacct counter of the calling thread's network namespace.
func NFAcctHere(name string) (packets, bytes uint64, err error) {
	req := nl.NewNetlinkRequest(nfnlSubsysAcct<<8|nfnlMsgAcctGet, unix.NLM_F_ACK)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nfacctName, nl.ZeroTerminated(name)))
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, nfnlSubsysAcct<<8|nfnlMsgAcctNew)
	if err != nil {
		return 0, 0, fmt.Errorf("nfacct counter %s: %w", name, err)
	}
	if len(msgs) != 1 || len(msgs[0]) < nl.SizeofNfgenmsg {
		return 0, 0, fmt.Errorf("nfacct counter %s: %d answers", name, len(msgs))
	}
	attrs, err := nl.ParseRouteAttr(msgs[0][nl.SizeofNfgenmsg:])
	if err != nil {
		return 0, 0, fmt.Errorf("nfacct counter %s: %w", name, err)
	}
	for _, a := range attrs {
		switch {
		case a.Attr.Type == nfacctPkts && len(a.Value) == 8:
			packets = binary.BigEndian.Uint64(a.Value)
		case a.Attr.Type == nfacctBytes && len(a.Value) == 8:
			bytes = binary.BigEndian.Uint64(a.Value)
		}
	}
	return packets, bytes, nil
}
