package nftrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A small nfnetlink client: enough to create and delete one table with its chains and
// rules in one batch, dump a table's rules, and read trace events. x/sys/unix has the
// constants; the messages are built here.

const tableFlagOwner = 0x2 // NFT_TABLE_F_OWNER: the kernel deletes the table when its socket closes

var seq atomic.Uint32

// attr is one netlink attribute; nested ones hold their children.
type attr struct {
	typ      uint16
	data     []byte
	children []attr
}

func strAttr(t uint16, s string) attr { return attr{typ: t, data: append([]byte(s), 0)} }
func u32Attr(t uint16, v uint32) attr {
	return attr{typ: t, data: binary.BigEndian.AppendUint32(nil, v)}
}
func nested(t uint16, c ...attr) attr { return attr{typ: t | unix.NLA_F_NESTED, children: c} }

func (a attr) encode(b []byte) []byte {
	payload := a.data
	if a.children != nil {
		payload = nil
		for _, c := range a.children {
			payload = c.encode(payload)
		}
	}
	n := unix.NLA_HDRLEN + len(payload)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, a.typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// message is one netlink message: header, nfgenmsg, attributes.
func message(typ, flags uint16, family uint8, resID uint16, attrs ...attr) []byte {
	var body []byte
	body = append(body, family, unix.NFNETLINK_V0)
	body = binary.BigEndian.AppendUint16(body, resID)
	for _, a := range attrs {
		body = a.encode(body)
	}
	b := make([]byte, 0, unix.NLMSG_HDRLEN+len(body))
	b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+len(body)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq.Add(1))
	b = binary.NativeEndian.AppendUint32(b, 0)
	return append(b, body...)
}

func nftType(msg int) uint16 { return uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | msg) }

// batch wraps nftables messages in a transaction.
func batch(msgs ...[]byte) []byte {
	var b []byte
	b = append(b, message(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)...)
	for _, m := range msgs {
		b = append(b, m...)
	}
	return append(b, message(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)...)
}

// socket opens a netfilter netlink socket in the calling thread's network namespace.
func socket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// transact sends a batch and waits for the kernel's answer to each acknowledged message.
func transact(fd int, b []byte, acks int) error {
	if _, err := unix.Write(fd, b); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	var errs []error
	for acks > 0 {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := parseMessages(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.typ != unix.NLMSG_ERROR {
				continue
			}
			acks--
			if len(m.data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(m.data)); code != 0 {
					errs = append(errs, unix.Errno(-code))
				}
			}
		}
	}
	return errors.Join(errs...)
}

type nlmsg struct {
	typ   uint16
	flags uint16
	data  []byte // after the netlink header
}

func parseMessages(b []byte) ([]nlmsg, error) {
	var out []nlmsg
	for len(b) >= unix.NLMSG_HDRLEN {
		n := int(binary.NativeEndian.Uint32(b))
		if n < unix.NLMSG_HDRLEN || n > len(b) {
			return out, fmt.Errorf("netlink: bad message length %d", n)
		}
		out = append(out, nlmsg{typ: binary.NativeEndian.Uint16(b[4:]), flags: binary.NativeEndian.Uint16(b[6:]), data: b[unix.NLMSG_HDRLEN:n]})
		n = (n + 3) &^ 3
		if n > len(b) {
			break
		}
		b = b[n:]
	}
	return out, nil
}

// parseAttrs reads a run of attributes into type → payload (the last one of a type wins).
func parseAttrs(b []byte) map[uint16][]byte {
	out := map[uint16][]byte{}
	for len(b) >= unix.NLA_HDRLEN {
		n := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if n < unix.NLA_HDRLEN || n > len(b) {
			break
		}
		out[typ] = b[unix.NLA_HDRLEN:n]
		n = (n + 3) &^ 3
		if n > len(b) {
			break
		}
		b = b[n:]
	}
	return out
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Expressions, as the kernel takes them.

func expr(name string, data ...attr) attr {
	return nested(unix.NFTA_LIST_ELEM, strAttr(unix.NFTA_EXPR_NAME, name), nested(unix.NFTA_EXPR_DATA, data...))
}

func payload(base, offset, length uint32) attr {
	return expr("payload", u32Attr(unix.NFTA_PAYLOAD_DREG, unix.NFT_REG_1), u32Attr(unix.NFTA_PAYLOAD_BASE, base),
		u32Attr(unix.NFTA_PAYLOAD_OFFSET, offset), u32Attr(unix.NFTA_PAYLOAD_LEN, length))
}

func cmpEq(value []byte) attr {
	return expr("cmp", u32Attr(unix.NFTA_CMP_SREG, unix.NFT_REG_1), u32Attr(unix.NFTA_CMP_OP, unix.NFT_CMP_EQ),
		nested(unix.NFTA_CMP_DATA, attr{typ: unix.NFTA_DATA_VALUE, data: value}))
}

func metaLoad(key uint32) attr {
	return expr("meta", u32Attr(unix.NFTA_META_KEY, key), u32Attr(unix.NFTA_META_DREG, unix.NFT_REG_1))
}

func bitwiseAnd(mask []byte) attr {
	return expr("bitwise", u32Attr(unix.NFTA_BITWISE_SREG, unix.NFT_REG_1), u32Attr(unix.NFTA_BITWISE_DREG, unix.NFT_REG_1),
		u32Attr(unix.NFTA_BITWISE_LEN, uint32(len(mask))),
		nested(unix.NFTA_BITWISE_MASK, attr{typ: unix.NFTA_DATA_VALUE, data: mask}),
		nested(unix.NFTA_BITWISE_XOR, attr{typ: unix.NFTA_DATA_VALUE, data: make([]byte, len(mask))}))
}

// setNftrace is `meta nftrace set 1`.
func setNftrace() []attr {
	return []attr{
		expr("immediate", u32Attr(unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_1),
			nested(unix.NFTA_IMMEDIATE_DATA, attr{typ: unix.NFTA_DATA_VALUE, data: []byte{1}})),
		expr("meta", u32Attr(unix.NFTA_META_KEY, unix.NFT_META_NFTRACE), u32Attr(unix.NFTA_META_SREG, unix.NFT_REG_1)),
	}
}

// comment is a rule's comment as nft writes it (userdata TLV, type 0).
func comment(s string) attr {
	b := []byte{0, byte(len(s) + 1)}
	b = append(b, s...)
	return attr{typ: unix.NFTA_RULE_USERDATA, data: append(b, 0)}
}
