package nftnl

import (
	"encoding/binary"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// The messages of a rule and of the anonymous verdict maps it looks up, marshalled here
// into one buffer each. google/nftables marshals every attribute into a buffer of its
// own and copies it into its parent's, three or four levels deep: with the messages
// collected from it, half of netlab's own time in a full sync. These write exactly the
// library's bytes (after netlab's own changes to them: the host byte order mark,
// elements of a new anonymous set by ID only), which a test checks for every rule the
// renderer writes; expressions and sets written otherwise go through the library.

// enc appends netlink attributes to a buffer.
type enc []byte

func (b enc) attr(typ uint16, data []byte) enc {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for n := len(data); n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b
}

func (b enc) str(typ uint16, s string) enc {
	n := 4 + len(s) + 1
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	for ; n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b
}

func (b enc) u32(typ uint16, v uint32) enc {
	b = binary.NativeEndian.AppendUint16(b, 8)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint32(b, v)
}

// open starts a nested attribute; close (with what open returned) ends it.
func (b enc) open(typ uint16) (enc, int) {
	at := len(b)
	b = binary.NativeEndian.AppendUint16(b, 0)
	return binary.NativeEndian.AppendUint16(b, unix.NLA_F_NESTED|typ), at
}

func (b enc) close(at int) enc {
	binary.NativeEndian.PutUint16(b[at:], uint16(len(b)-at))
	return b
}

// value is a nested attribute holding one NFTA_DATA_VALUE.
func (b enc) value(typ uint16, data []byte) enc {
	b, at := b.open(typ)
	return b.attr(unix.NFTA_DATA_VALUE, data).close(at)
}

// expression appends one rule expression (an NFTA_LIST_ELEM).
func (b enc) expression(e expr.Any) (enc, error) {
	var name string
	switch e := e.(type) {
	case *expr.Payload:
		if e.OperationType == expr.PayloadWrite || e.CsumType > 0 {
			return b.library(e)
		}
		name = "payload"
	case *expr.Cmp:
		name = "cmp"
	case *expr.Bitwise:
		name = "bitwise"
	case *expr.Meta:
		name = "meta"
	case *expr.Immediate, *expr.Verdict:
		name = "immediate"
	case *expr.Lookup:
		name = "lookup"
	case *expr.Numgen:
		if e.Type != unix.NFT_NG_RANDOM && e.Type != unix.NFT_NG_INCREMENTAL {
			return b.library(e)
		}
		name = "numgen"
	case *expr.NAT:
		name = "nat"
	default:
		return b.library(e)
	}
	b, elem := b.open(unix.NFTA_LIST_ELEM)
	b = b.str(unix.NFTA_EXPR_NAME, name)
	b, data := b.open(unix.NFTA_EXPR_DATA)
	switch e := e.(type) {
	case *expr.Payload:
		b = b.u32(unix.NFTA_PAYLOAD_DREG, e.DestRegister).u32(unix.NFTA_PAYLOAD_BASE, uint32(e.Base)).
			u32(unix.NFTA_PAYLOAD_OFFSET, e.Offset).u32(unix.NFTA_PAYLOAD_LEN, e.Len)
	case *expr.Cmp:
		b = b.u32(unix.NFTA_CMP_SREG, e.Register).u32(unix.NFTA_CMP_OP, uint32(e.Op)).value(unix.NFTA_CMP_DATA, e.Data)
	case *expr.Bitwise:
		b = b.u32(unix.NFTA_BITWISE_SREG, e.SourceRegister).u32(unix.NFTA_BITWISE_DREG, e.DestRegister).
			u32(unix.NFTA_BITWISE_LEN, e.Len).value(unix.NFTA_BITWISE_MASK, e.Mask).value(unix.NFTA_BITWISE_XOR, e.Xor)
	case *expr.Meta:
		b = b.u32(unix.NFTA_META_KEY, uint32(e.Key))
		if e.SourceRegister {
			b = b.u32(unix.NFTA_META_SREG, e.Register)
		} else {
			b = b.u32(unix.NFTA_META_DREG, e.Register)
		}
	case *expr.Immediate:
		b = b.u32(unix.NFTA_IMMEDIATE_DREG, e.Register).value(unix.NFTA_IMMEDIATE_DATA, e.Data)
	case *expr.Verdict:
		b = b.u32(unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT)
		var imm, v int
		b, imm = b.open(unix.NFTA_IMMEDIATE_DATA)
		b, v = b.open(unix.NFTA_DATA_VERDICT)
		b = b.u32(unix.NFTA_VERDICT_CODE, uint32(e.Kind))
		if e.Chain != "" {
			b = b.str(unix.NFTA_VERDICT_CHAIN, e.Chain)
		}
		b = b.close(v).close(imm)
	case *expr.Lookup:
		if e.SourceRegister != 0 {
			b = b.u32(unix.NFTA_LOOKUP_SREG, e.SourceRegister)
		}
		if e.IsDestRegSet {
			b = b.u32(unix.NFTA_LOOKUP_DREG, e.DestRegister)
		}
		if e.Invert {
			b = b.u32(unix.NFTA_LOOKUP_FLAGS, unix.NFT_LOOKUP_F_INV)
		}
		b = b.str(unix.NFTA_LOOKUP_SET, e.SetName).u32(unix.NFTA_LOOKUP_SET_ID, e.SetID)
	case *expr.Numgen:
		b = b.u32(unix.NFTA_NG_DREG, e.Register).u32(unix.NFTA_NG_MODULUS, e.Modulus).
			u32(unix.NFTA_NG_TYPE, e.Type).u32(unix.NFTA_NG_OFFSET, e.Offset)
	case *expr.NAT:
		b = b.u32(unix.NFTA_NAT_TYPE, uint32(e.Type)).u32(unix.NFTA_NAT_FAMILY, e.Family)
		if e.RegAddrMin != 0 {
			b = b.u32(unix.NFTA_NAT_REG_ADDR_MIN, e.RegAddrMin)
			if e.RegAddrMax != 0 {
				b = b.u32(unix.NFTA_NAT_REG_ADDR_MAX, e.RegAddrMax)
			}
		}
		if e.RegProtoMin != 0 {
			b = b.u32(unix.NFTA_NAT_REG_PROTO_MIN, e.RegProtoMin)
			if e.RegProtoMax != 0 {
				b = b.u32(unix.NFTA_NAT_REG_PROTO_MAX, e.RegProtoMax)
			}
		}
		var flags uint32
		if e.Random {
			flags |= expr.NF_NAT_RANGE_PROTO_RANDOM
		}
		if e.FullyRandom {
			flags |= expr.NF_NAT_RANGE_PROTO_RANDOM_FULLY
		}
		if e.Persistent {
			flags |= expr.NF_NAT_RANGE_PERSISTENT
		}
		if e.Prefix {
			flags |= expr.NF_NAT_RANGE_PREFIX
		}
		if e.Specified {
			flags |= expr.NF_NAT_RANGE_PROTO_SPECIFIED
		}
		if flags != 0 {
			b = b.u32(unix.NFTA_NAT_FLAGS, flags)
		}
	}
	return b.close(data).close(elem), nil
}

// library appends an expression google/nftables marshals.
func (b enc) library(e expr.Any) (enc, error) {
	data, err := expr.Marshal(unix.NFPROTO_IPV4, e)
	if err != nil {
		return b, err
	}
	return b.attr(unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, data), nil
}

func message(typ int, flags netlink.HeaderFlags, data enc) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: flags},
		Data:   data,
	}
}

func header() enc { return enc(nfgen(unix.NFPROTO_IPV4)) }

// ruleMessage is AddRule's message for a rule appended to chain.
func ruleMessage(chain string, exprs []expr.Any, udata []byte) (netlink.Message, error) {
	b := make(enc, 0, 64+len(chain)+96*len(exprs)+len(udata))
	b = append(b, header()...)
	b = b.str(unix.NFTA_RULE_TABLE, nftables.Table).str(unix.NFTA_RULE_CHAIN, chain)
	b, list := b.open(unix.NFTA_RULE_EXPRESSIONS)
	for _, e := range exprs {
		var err error
		if b, err = b.expression(e); err != nil {
			return netlink.Message{}, err
		}
	}
	b = b.close(list)
	if udata != nil {
		b = b.attr(unix.NFTA_RULE_USERDATA, udata)
	}
	return message(unix.NFT_MSG_NEWRULE,
		netlink.Request|netlink.Acknowledge|netlink.Create|unix.NLM_F_ECHO|unix.NLM_F_APPEND, b), nil
}

// verdictMap reports whether s is an anonymous verdict map keyed by an integer in host
// byte order (numgen's), the only anonymous set written here.
func verdictMap(s *gnft.Set) bool {
	return s.Anonymous && s.Constant && s.IsMap && !s.Interval && !s.HasTimeout && !s.Dynamic &&
		!s.Concatenation && !s.Counter && s.Size == 0 && s.Comment == "" &&
		s.KeyType == gnft.TypeInteger && s.DataType == gnft.TypeVerdict && s.ID != 0
}

// verdictMapMessages are AddSet's two messages for a verdict map (see verdictMap) and
// its elements, as capture leaves them: the host byte order mark in the set's
// userdata, the elements named by the set's ID only.
func verdictMapMessages(s *gnft.Set, elems []gnft.SetElement) []netlink.Message {
	const flags = netlink.Request | netlink.Acknowledge | netlink.Create
	b := make(enc, 0, 160)
	b = append(b, header()...)
	b = b.str(unix.NFTA_SET_TABLE, nftables.Table).str(unix.NFTA_SET_NAME, s.Name).
		u32(unix.NFTA_SET_FLAGS, unix.NFT_SET_ANONYMOUS|unix.NFT_SET_CONSTANT|unix.NFT_SET_MAP).
		u32(unix.NFTA_SET_KEY_TYPE, 4).u32(unix.NFTA_SET_KEY_LEN, 4).u32(unix.NFTA_SET_ID, s.ID).
		u32(unix.NFTA_SET_DATA_TYPE, uint32(unix.NFT_DATA_VERDICT)).u32(unix.NFTA_SET_DATA_LEN, 0)
	var desc int
	b, desc = b.open(unix.NFTA_SET_DESC)
	b = b.u32(unix.NFTA_SET_DESC_SIZE, uint32(len(elems))).close(desc)
	// NFTNL_UDATA_SET_KEYBYTEORDER: 1, host byte order (the library writes 2).
	b = b.attr(unix.NFTA_SET_USERDATA, []byte{0, 4, 1, 0, 0, 0})
	msgs := []netlink.Message{message(unix.NFT_MSG_NEWSET, flags, b)}
	if len(elems) == 0 {
		return msgs
	}
	e := make(enc, 0, 64+96*len(elems))
	e = append(e, header()...)
	e = e.u32(unix.NFTA_SET_ELEM_LIST_SET_ID, s.ID).str(unix.NFTA_SET_ELEM_LIST_TABLE, nftables.Table)
	e, list := e.open(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	for i, v := range elems {
		var item, data, verdict int
		e, item = e.open(uint16(i + 1))
		e = e.value(unix.NFTA_SET_ELEM_KEY, v.Key)
		e, data = e.open(unix.NFTA_SET_ELEM_DATA)
		e, verdict = e.open(unix.NFTA_DATA_VERDICT)
		e = e.u32(unix.NFTA_VERDICT_CODE, uint32(v.VerdictData.Kind))
		if v.VerdictData.Chain != "" {
			e = e.str(unix.NFTA_VERDICT_CHAIN, v.VerdictData.Chain)
		}
		e = e.close(verdict).close(data).close(item)
	}
	e = e.close(list)
	return append(msgs, message(unix.NFT_MSG_NEWSETELEM, flags, e))
}

// plainElements reports whether elems are what verdictMapMessages writes: keys and
// verdicts, nothing else.
func plainElements(elems []gnft.SetElement) bool {
	for _, v := range elems {
		if v.VerdictData == nil || v.IntervalEnd || len(v.KeyEnd) > 0 || v.Timeout != 0 || len(v.Val) > 0 ||
			v.Comment != "" || len(v.Key) == 0 {
			return false
		}
	}
	return true
}

// rawRule returns the messages of a rule and its anonymous sets, marshalled here, or
// false when one of the sets is not a verdict map written here (the caller then goes
// through the library).
func rawRule(chain string, exprs []expr.Any, anon []anonSet, udata []byte) ([]netlink.Message, bool, error) {
	for _, a := range anon {
		if !verdictMap(a.set) || !plainElements(a.elems) {
			return nil, false, nil
		}
	}
	var msgs []netlink.Message
	for _, a := range anon {
		msgs = append(msgs, verdictMapMessages(a.set, a.elems)...)
	}
	m, err := ruleMessage(chain, exprs, udata)
	if err != nil {
		return nil, false, err
	}
	return append(msgs, m), true, nil
}

// chainMessage is the message google/nftables writes for a chain of the table without a
// hook (AddChain: NFT_MSG_NEWCHAIN), for flushing a chain (FlushChain: NFT_MSG_DELRULE)
// or for deleting one (DelChain: NFT_MSG_DELCHAIN): the table's and the chain's names.
// A staged full sync writes thousands of them; through the library each cost a batch
// of its own and an acknowledgement read back from its test dialer.
func chainMessage(typ int, chain string) netlink.Message {
	tableAttr, nameAttr := uint16(unix.NFTA_CHAIN_TABLE), uint16(unix.NFTA_CHAIN_NAME)
	flags := netlink.Request | netlink.Acknowledge
	switch typ {
	case unix.NFT_MSG_NEWCHAIN:
		flags |= netlink.Create
	case unix.NFT_MSG_DELRULE:
		tableAttr, nameAttr = unix.NFTA_RULE_TABLE, unix.NFTA_RULE_CHAIN
	}
	b := make(enc, 0, 4+8+len(nftables.Table)+8+len(chain)+4)
	b = append(b, header()...)
	b = b.str(tableAttr, nftables.Table).str(nameAttr, chain)
	return message(typ, flags, b)
}
