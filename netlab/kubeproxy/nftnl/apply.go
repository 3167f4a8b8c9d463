package nftnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// batch is one transaction being built from nft command text. Rules and their anonymous
// verdict maps are marshalled here (encode.go); google/nftables marshals the other
// messages, which are captured (through its test dialer) rather than sent by it, and
// sent by send, for three reasons: the table and the chain with a comment need
// userdata the library cannot write, and go in the same transaction in their place;
// the anonymous verdict maps keyed by numgen need nft's host byte order mark, which the
// library writes as big endian for every anonymous set, or nft would list their keys
// 0 and 1 as 0 and 16777216; and the kernel is asked to acknowledge only the last
// message, not every one (tens of thousands in a full sync).
type batch struct {
	conn  *gnft.Conn
	table *gnft.Table
	out   []netlink.Message
	// captured receives what conn "sends".
	captured []netlink.Message
	// consecutive element additions or deletions of one set go in one message.
	elemSet string
	elemOp  string
	elems   []gnft.SetElement
}

var table = &gnft.Table{Name: nftables.Table, Family: gnft.TableFamilyIPv4}

// build turns nft -f text (as nftables.Full and nftables.Diff write it: one command a
// line, only the commands and syntax kube-proxy's rules use) into the messages of conn.
func build(text []byte) (*batch, error) {
	b := &batch{table: table}
	conn, err := gnft.New(gnft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil { // Flush waits for an acknowledgement of each message
			return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
		}
		b.captured = append(b.captured, req[1:len(req)-1]...) // without batch begin and end
		return nil, nil
	}))
	if err != nil {
		return nil, err
	}
	b.conn = conn
	var errs []error
	n := 0
	for line := range bytes.Lines(text) {
		n++
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		if err := b.command(s); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
		}
	}
	if err := b.capture(); err != nil {
		errs = append(errs, err)
	}
	return b, errors.Join(errs...)
}

// capture moves the messages the library has built so far to b.out.
func (b *batch) capture() error {
	if err := b.flushElems(); err != nil {
		return err
	}
	if err := b.conn.Flush(); err != nil {
		return err
	}
	for i, m := range b.captured {
		switch m.Header.Type {
		case netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET):
			markHostOrderKeys(m.Data)
		case netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM):
			b.captured[i].Data = anonymousByID(m.Data)
		}
	}
	b.out = append(b.out, b.captured...)
	b.captured = nil
	return nil
}

// raw appends a message built here, after what the library has built so far.
func (b *batch) raw(m netlink.Message) error {
	if err := b.capture(); err != nil {
		return err
	}
	b.out = append(b.out, m)
	return nil
}

const prefix = nftables.Family + " " + nftables.Table + " "

func (b *batch) command(s string) error {
	verb, rest, _ := strings.Cut(s, " ")
	kind, rest, _ := strings.Cut(rest, " ")
	if kind == "table" {
		if rest != nftables.Family+" "+nftables.Table && !strings.HasPrefix(rest, prefix) {
			return fmt.Errorf("not table ip kube-proxy: %q", s)
		}
	} else if !strings.HasPrefix(rest, prefix) {
		return fmt.Errorf("not table ip kube-proxy: %q", s)
	}
	rest = strings.TrimPrefix(rest, prefix)
	name, spec, _ := strings.Cut(rest, " ")
	if kind != "element" {
		if err := b.flushElems(); err != nil {
			return err
		}
	}
	switch verb + " " + kind {
	case "add table":
		c, ok, err := specComment(strings.TrimPrefix(rest, nftables.Table))
		if err != nil {
			return err
		}
		if !ok {
			b.conn.AddTable(b.table)
			return nil
		}
		return b.raw(rawTable(c))
	case "add chain":
		if spec == "" {
			return b.raw(chainMessage(unix.NFT_MSG_NEWCHAIN, name))
		}
		return b.addChain(name, spec)
	case "flush chain":
		return b.raw(chainMessage(unix.NFT_MSG_DELRULE, name))
	case "delete chain":
		return b.raw(chainMessage(unix.NFT_MSG_DELCHAIN, name))
	case "add set", "add map":
		set, err := parseSetSpec(name, spec)
		if err != nil {
			return err
		}
		set.Table = b.table
		return b.conn.AddSet(set, nil)
	case "flush set", "flush map":
		b.conn.FlushSet(&gnft.Set{Table: b.table, Name: name})
	case "delete set", "delete map":
		b.conn.DelSet(&gnft.Set{Table: b.table, Name: name})
	case "add rule":
		exprs, anon, udata, err := compileRule(b.table, spec)
		if err != nil {
			return err
		}
		if msgs, ok, err := rawRule(name, exprs, anon, udata); err != nil {
			return err
		} else if ok {
			if err := b.capture(); err != nil {
				return err
			}
			b.out = append(b.out, msgs...)
			return nil
		}
		for _, a := range anon {
			if err := b.conn.AddSet(a.set, a.elems); err != nil {
				return err
			}
		}
		b.conn.AddRule(&gnft.Rule{Table: b.table, Chain: &gnft.Chain{Table: b.table, Name: name}, Exprs: exprs, UserData: udata})
	case "add element", "delete element":
		e, err := parseElement(spec, verb == "add")
		if err != nil {
			return err
		}
		if b.elemSet != name || b.elemOp != verb || len(b.elems) == elemsPerMessage {
			if err := b.flushElems(); err != nil {
				return err
			}
			b.elemSet, b.elemOp = name, verb
		}
		b.elems = append(b.elems, e)
	default:
		return fmt.Errorf("unsupported command %q", verb+" "+kind)
	}
	return nil
}

// elemsPerMessage bounds the elements in one message: their list is one netlink
// attribute, whose length has 16 bits, and one element (key, verdict with a chain name,
// comment) takes at most about 570 bytes.
const elemsPerMessage = 100

func (b *batch) flushElems() error {
	if len(b.elems) == 0 {
		return nil
	}
	set := &gnft.Set{Table: b.table, Name: b.elemSet}
	var err error
	if b.elemOp == "add" {
		err = b.conn.SetAddElements(set, b.elems)
	} else {
		err = b.conn.SetDeleteElements(set, b.elems)
	}
	b.elems = nil
	return err
}

var hooks = map[string]*gnft.ChainHook{
	"prerouting":  gnft.ChainHookPrerouting,
	"input":       gnft.ChainHookInput,
	"forward":     gnft.ChainHookForward,
	"output":      gnft.ChainHookOutput,
	"postrouting": gnft.ChainHookPostrouting,
}

// addChain: "NAME", "NAME { type T hook H priority P ; }" or "NAME { comment "C" ; }".
func (b *batch) addChain(name, spec string) error {
	c := &gnft.Chain{Table: b.table, Name: name}
	if spec != "" {
		toks, err := tokens(spec)
		if err != nil {
			return err
		}
		switch {
		case len(toks) == 9 && toks[0] == "{" && toks[1] == "type" && toks[3] == "hook" && toks[5] == "priority" && toks[7] == ";" && toks[8] == "}":
			c.Type = gnft.ChainType(toks[2])
			if c.Type != gnft.ChainTypeFilter && c.Type != gnft.ChainTypeNAT {
				return fmt.Errorf("chain %s: unknown type %q", name, toks[2])
			}
			c.Hooknum = hooks[toks[4]]
			if c.Hooknum == nil {
				return fmt.Errorf("chain %s: unknown hook %q", name, toks[4])
			}
			p, err := strconv.ParseInt(toks[6], 10, 32)
			if err != nil {
				return fmt.Errorf("chain %s: priority %q", name, toks[6])
			}
			c.Priority = gnft.ChainPriorityRef(gnft.ChainPriority(p))
		default:
			comment, ok, err := specComment(spec)
			if err != nil || !ok {
				return fmt.Errorf("chain %s: unsupported spec %q", name, spec)
			}
			return b.raw(rawChain(name, comment))
		}
	}
	b.conn.AddChain(c)
	return nil
}

// specComment reads `{ comment "C" ; }`.
func specComment(spec string) (string, bool, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return "", false, nil
	}
	toks, err := tokens(spec)
	if err != nil {
		return "", false, err
	}
	if len(toks) != 5 || toks[0] != "{" || toks[1] != "comment" || toks[3] != ";" || toks[4] != "}" {
		return "", false, fmt.Errorf("unsupported spec %q", spec)
	}
	c, err := unquote(toks[2])
	return c, err == nil, err
}

var datatypes = map[string]gnft.SetDatatype{
	"ipv4_addr":    gnft.TypeIPAddr,
	"inet_proto":   gnft.TypeInetProto,
	"inet_service": gnft.TypeInetService,
	"verdict":      gnft.TypeVerdict,
}

// parseSetSpec reads a set or map spec: "{ type K [. K] [: V] ; [flags F,G ;] [timeout Ns ;]
// [comment "C" ;] }".
func parseSetSpec(name, spec string) (*gnft.Set, error) {
	toks, err := tokens(spec)
	if err != nil {
		return nil, err
	}
	if len(toks) < 2 || toks[0] != "{" || toks[len(toks)-1] != "}" {
		return nil, fmt.Errorf("set %s: spec %q", name, spec)
	}
	s := &gnft.Set{Name: name}
	var clause []string
	for _, t := range toks[1:] {
		if t != ";" && t != "}" {
			clause = append(clause, t)
			continue
		}
		if len(clause) == 0 {
			continue
		}
		if err := setClause(s, clause); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
		clause = nil
	}
	if s.KeyType.Name == "" {
		return nil, fmt.Errorf("set %s: no type", name)
	}
	return s, nil
}

func setClause(s *gnft.Set, clause []string) error {
	switch clause[0] {
	case "type":
		var keys []gnft.SetDatatype
		i := 1
		for ; i < len(clause); i++ {
			t := clause[i]
			if t == "." {
				continue
			}
			if t == ":" {
				break
			}
			dt, ok := datatypes[t]
			if !ok || t == "verdict" {
				return fmt.Errorf("unknown key type %q", t)
			}
			keys = append(keys, dt)
		}
		switch len(keys) {
		case 0:
			return fmt.Errorf("no key type")
		case 1:
			s.KeyType = keys[0]
			if s.KeyType == gnft.TypeIPAddr {
				s.KeyByteOrder = binaryutil.BigEndian
			}
		default:
			kt, err := gnft.ConcatSetType(keys...)
			if err != nil {
				return err
			}
			s.KeyType = kt
		}
		if i < len(clause) {
			if i != len(clause)-2 || clause[i+1] != "verdict" {
				return fmt.Errorf("unsupported map data %q", strings.Join(clause[i:], " "))
			}
			s.IsMap, s.DataType = true, gnft.TypeVerdict
		}
	case "flags":
		if len(clause) != 2 {
			return fmt.Errorf("flags %q", clause)
		}
		for _, f := range strings.Split(clause[1], ",") {
			switch f {
			case "dynamic":
				s.Dynamic = true
				if s.Size == 0 {
					s.Size = dynamicSetSize
				}
			case "timeout":
				s.HasTimeout = true
			default:
				return fmt.Errorf("unsupported flag %q", f)
			}
		}
	case "timeout":
		if len(clause) != 2 {
			return fmt.Errorf("timeout %q", clause)
		}
		d, err := time.ParseDuration(clause[1])
		if err != nil {
			return fmt.Errorf("timeout %q", clause[1])
		}
		s.Timeout = d
	case "comment":
		if len(clause) != 2 {
			return fmt.Errorf("comment %q", clause)
		}
		c, err := unquote(clause[1])
		if err != nil {
			return err
		}
		s.Comment = c
	default:
		return fmt.Errorf("unsupported clause %q", strings.Join(clause, " "))
	}
	return nil
}

// dynamicSetSize is the size nft gives a set that rules add to when it has none.
const dynamicSetSize = 65535

// parseElement reads "{ KEY [comment "C"] [: VERDICT] }"; KEY is an address, or a
// concatenation of address, protocol name and port.
func parseElement(spec string, add bool) (gnft.SetElement, error) {
	toks, err := tokens(spec)
	if err != nil {
		return gnft.SetElement{}, err
	}
	if len(toks) < 3 || toks[0] != "{" || toks[len(toks)-1] != "}" {
		return gnft.SetElement{}, fmt.Errorf("element %q", spec)
	}
	toks = toks[1 : len(toks)-1]
	var e gnft.SetElement
	var parts []string
	i := 0
	for ; i < len(toks) && toks[i] != "comment" && toks[i] != ":"; i++ {
		if toks[i] != "." {
			parts = append(parts, toks[i])
		}
	}
	if len(parts) == 0 {
		return e, fmt.Errorf("element %q: no key", spec)
	}
	for _, p := range parts {
		k, err := keyPart(p, len(parts) > 1)
		if err != nil {
			return e, fmt.Errorf("element %q: %w", spec, err)
		}
		e.Key = append(e.Key, k...)
	}
	if i < len(toks) && toks[i] == "comment" {
		if i+1 >= len(toks) {
			return e, fmt.Errorf("element %q: comment", spec)
		}
		if e.Comment, err = unquote(toks[i+1]); err != nil {
			return e, err
		}
		i += 2
	}
	if i < len(toks) && toks[i] == ":" {
		rest := toks[i+1:]
		j := 0
		next := func() (string, error) {
			if j >= len(rest) {
				return "", fmt.Errorf("element %q ends early", spec)
			}
			j++
			return rest[j-1], nil
		}
		t, err := next()
		if err != nil {
			return e, err
		}
		if e.VerdictData, err = parseVerdict(t, next); err != nil {
			return e, err
		}
		if j != len(rest) {
			return e, fmt.Errorf("element %q: trailing %q", spec, rest[j:])
		}
	} else if i != len(toks) {
		return e, fmt.Errorf("element %q: trailing %q", spec, toks[i:])
	}
	if !add {
		e.Comment, e.VerdictData = "", nil
	}
	return e, nil
}

// keyPart encodes one field of an element key: an IPv4 address, a protocol name (one
// byte) or a port (two bytes, network order); in a concatenation each is padded to 4.
func keyPart(s string, pad bool) ([]byte, error) {
	var b []byte
	if p, ok := protocols[s]; ok {
		b = []byte{p}
	} else if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		v := a.As4()
		b = v[:]
	} else if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		b = binaryutil.BigEndian.PutUint16(uint16(n))
	} else {
		return nil, fmt.Errorf("unknown key %q", s)
	}
	if pad {
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b, nil
}

// Raw messages for the table and chains with comments.

const (
	nftaTableHandle   = 4  // NFTA_TABLE_HANDLE
	nftaTableUserdata = 6  // NFTA_TABLE_USERDATA
	nftaChainUserdata = 12 // NFTA_CHAIN_USERDATA
	udataComment      = 0  // NFTNL_UDATA_TABLE_COMMENT, NFTNL_UDATA_CHAIN_COMMENT
)

func nfgen(family byte) []byte { return []byte{family, unix.NFNETLINK_V0, 0, 0} }

func udataString(s string) []byte {
	return append([]byte{udataComment, byte(len(s) + 1)}, append([]byte(s), 0)...)
}

func rawMessage(typ int, attrs []netlink.Attribute) netlink.Message {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		panic(err) // only strings and fixed values
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create},
		Data: append(nfgen(unix.NFPROTO_IPV4), data...),
	}
}

func rawTable(comment string) netlink.Message {
	return rawMessage(unix.NFT_MSG_NEWTABLE, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: []byte(nftables.Table + "\x00")},
		{Type: unix.NFTA_TABLE_FLAGS, Data: []byte{0, 0, 0, 0}},
		{Type: nftaTableUserdata, Data: udataString(comment)},
	})
}

func rawChain(name, comment string) netlink.Message {
	return rawMessage(unix.NFT_MSG_NEWCHAIN, []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(nftables.Table + "\x00")},
		{Type: unix.NFTA_CHAIN_NAME, Data: []byte(name + "\x00")},
		{Type: nftaChainUserdata, Data: udataString(comment)},
	})
}

// anonymousByID drops the set's name from the elements of an anonymous set (created in
// the same transaction; the message also names it by its transaction ID). Given a name,
// the kernel looks the set up by walking the table's list of sets, where a new set is
// last (nft_set_lookup_global: a third of the set-name walks of a full sync, which grow
// with the number of Services times the number of sets); without one, it finds the set
// among the transaction's new sets by ID.
func anonymousByID(data []byte) []byte {
	const nftaSetElemListSet = 2 // NFTA_SET_ELEM_LIST_SET
	if len(data) < 4 {
		return data
	}
	for a, off := data[4:], 4; len(a) >= 4; {
		n := int(binaryutil.NativeEndian.Uint16(a[:2]))
		if n < 4 || n > len(a) {
			return data
		}
		step := min((n+3)&^3, len(a))
		if binaryutil.NativeEndian.Uint16(a[2:4])&0x3fff == nftaSetElemListSet {
			if !bytes.HasPrefix(a[4:n], []byte("__")) {
				return data
			}
			return append(data[:off:off], data[off+step:]...)
		}
		a, off = a[step:], off+step
	}
	return data
}

// markHostOrderKeys gives an anonymous set keyed by integers (numgen's verdict maps) the
// host byte order mark nft writes in its userdata (NFTNL_UDATA_SET_KEYBYTEORDER = 1).
func markHostOrderKeys(data []byte) {
	const (
		nftaSetKeyType  = 4  // NFTA_SET_KEY_TYPE
		nftaSetUserdata = 13 // NFTA_SET_USERDATA
		typeInteger     = 4
	)
	var udata []byte
	integer := false
	for a := data[4:]; len(a) >= 4; {
		n := int(binaryutil.NativeEndian.Uint16(a[:2]))
		if n < 4 || n > len(a) {
			return
		}
		switch binaryutil.NativeEndian.Uint16(a[2:4]) & 0x3fff {
		case nftaSetKeyType:
			integer = n == 8 && binaryutil.BigEndian.Uint32(a[4:8]) == typeInteger
		case nftaSetUserdata:
			udata = a[4:n]
		}
		a = a[min((n+3)&^3, len(a)):]
	}
	if integer && len(udata) >= 6 && udata[0] == 0 && udata[1] == 4 {
		udata[2] = 1
	}
}

// send sends msgs as one transaction and returns the first error the kernel reports
// (it then applies none of them). Only the last message asks for an acknowledgement:
// the kernel handles the whole batch within the send and reports errors whether asked
// or not, so once that acknowledgement is read, nothing else is coming.
//
// It also returns the generation the commit made: the batch's first message asks for an
// echo, and for that the kernel sends the sender, at the commit and before the
// acknowledgement, that message's object back and the new generation number
// (NFT_MSG_NEWGEN: the kernel looks for the flag on the batch's first message only);
// 0 when none came.
func (c *Conn) send(msgs []netlink.Message) (uint32, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	size := 0
	for i := range msgs {
		// No echo either: google/nftables asks the kernel to send each added rule back
		// (to learn its handle), which costs the kernel a notification message a rule
		// and this socket the reading of it — a tenth of a full sync. nft does not ask.
		msgs[i].Header.Flags &^= netlink.Acknowledge | unix.NLM_F_ECHO
		size += 16 + len(msgs[i].Data)
	}
	msgs[len(msgs)-1].Header.Flags |= netlink.Acknowledge
	msgs[0].Header.Flags |= netlink.Echo
	conn := c.c
	if err := bufferSizes(conn, size+1<<16, 1<<20+1024*len(msgs)); err != nil {
		return 0, err
	}
	// The batch is written into one buffer kept from send to send and written to the
	// socket as it is: the netlink package would copy each message into a buffer of its
	// own, then all of them into a growing one (three copies of a megabyte-sized stage,
	// on fresh memory).
	subsys := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	b, _ := c.appendMessage(c.buf[:0], unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, subsys)
	var last uint32
	for _, m := range msgs {
		b, last = c.appendMessage(b, uint16(m.Header.Type), uint16(m.Header.Flags), m.Data)
	}
	b, _ = c.appendMessage(b, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, subsys)
	c.buf = b
	if err := c.sendRaw(b); err != nil {
		return 0, err
	}
	// The kernel handles the batch within the send: every answer is queued by now, and
	// one that has not come soon never will (lost to an overrun).
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return 0, err
	}
	overrun := false
	var gen uint32
	for {
		got, err := conn.Receive()
		var oe *netlink.OpError
		switch {
		case errors.Is(err, unix.ENOBUFS) && !overrun:
			// Answers were lost (many failed messages); the first ones are still queued.
			overrun = true
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return 0, fmt.Errorf("no answer from the kernel to %d messages (overrun: %v)", len(msgs), overrun)
		case errors.As(err, &oe):
			what := ""
			if oe.Message != "" {
				what = " (" + oe.Message + ")"
			}
			return 0, fmt.Errorf("%w%s", err, what)
		case err != nil:
			return 0, err
		}
		for _, m := range got {
			if m.Header.Type == newGen {
				gen = genID(m.Data)
			}
			if m.Header.Type == netlink.Error && m.Header.Sequence == last {
				if overrun {
					return 0, fmt.Errorf("the kernel's answers overran the socket (%d messages)", len(msgs))
				}
				return gen, nil
			}
		}
	}
}

const newGen = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWGEN)

// genID reads NFTA_GEN_ID from an NFT_MSG_NEWGEN message's data (0 when absent).
func genID(data []byte) uint32 {
	if len(data) < 4 {
		return 0
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return 0
	}
	var id uint32
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID && len(ad.Bytes()) == 4 {
			id = binaryutil.BigEndian.Uint32(ad.Bytes())
		}
	}
	return id
}

// bufferSizes lets the socket take the whole batch in one sendmsg and hold the kernel's
// answers, as nft does (as root the limits of net.core.[wr]mem_max do not apply).
func bufferSizes(c *netlink.Conn, snd, rcv int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, snd); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv)
	}); err != nil {
		return err
	}
	return serr
}

// onThisThread runs fn with the goroutine locked to its thread: a netlink socket is
// opened in the network namespace of the thread that opens it, and the callers run in
// their node's namespace (the agent as a whole; tests on a thread kernel.Do moved).
func onThisThread(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn()
}

// Apply makes the changes in text (nft -f commands as nftables.Full and nftables.Diff
// write them) in the kernel of the calling thread's network namespace, in one netlink
// transaction: all of them or, on any error, none.
func Apply(text []byte) error { return ApplyAll([][]byte{text}) }

// Conn is a netlink connection to nftables in one network namespace (the calling
// thread's when it was opened), kept open from one transaction to the next. Closing the
// socket a transaction went through makes the kernel wait, there and then, for the end of
// that transaction's clean-up (an RCU grace period and the freeing of what it replaced:
// about 9 ms after a one-Service change, as long as the change itself); kept open, the
// clean-up runs in the background. After an error the socket is closed (answers of the
// failed transaction may still be queued) and the next transaction opens another. A Conn
// is used by one goroutine at a time.
type Conn struct {
	c *netlink.Conn
	// buf holds the last batch sent (see send); seq numbers the messages c sends itself
	// (from 1<<31, apart from the netlink package's own numbers for its requests).
	buf []byte
	seq uint32
	// rbuf receives the answers of dumps (see dump).
	rbuf []byte
	// gen is the generation the last transaction over c made (0: unknown, or the last
	// one failed).
	gen uint32
}

// Committed is nftables' generation number in the namespace right after the last
// transaction c applied (0 when unknown or when it failed). nftables raises the number
// by one at every commit in the namespace, whoever makes it (nft, iptables-nft, …):
// while State still reports it, nothing has changed any table since.
func (c *Conn) Committed() uint32 { return c.gen }

// State is what State reads.
type State struct {
	// Generation is nftables' generation number in the namespace.
	Generation uint32 `json:"generation"`
	// Table is the handle of table ip kube-proxy (0: no such table). A namespace's
	// handles only grow: a table deleted and made again has another.
	Table uint64 `json:"table"`
	// Netns is the namespace's cookie (SO_NETNS_COOKIE), never reused until the next
	// boot.
	Netns uint64 `json:"netns"`
}

// State reads, over c, the namespace's current generation number, the handle of table
// ip kube-proxy and the namespace's cookie.
func (c *Conn) State() (State, error) {
	var st State
	err := onThisThread(func() error {
		if err := c.open(); err != nil {
			return err
		}
		msgs, err := request(c.c, unix.NFT_MSG_GETGEN, nfgen(unix.AF_UNSPEC))
		if err != nil {
			c.Close()
			return fmt.Errorf("nftables generation: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type == newGen {
				st.Generation = genID(m.Data)
			}
		}
		if st.Generation == 0 {
			return fmt.Errorf("nftables generation: no answer")
		}
		// The namespace's ip tables, a few (a request for one missing table would answer
		// an error whose capped acknowledgement the netlink package cannot parse).
		msgs, err = request(c.c, unix.NFT_MSG_GETTABLE, nfgen(unix.NFPROTO_IPV4))
		if err != nil {
			c.Close()
			return fmt.Errorf("nftables tables: %w", err)
		}
		for _, m := range msgs {
			if len(m.Data) < 4 || m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE) {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				return err
			}
			var name string
			var h uint64
			for ad.Next() {
				switch {
				case ad.Type() == unix.NFTA_TABLE_NAME:
					name = ad.String()
				case ad.Type() == nftaTableHandle && len(ad.Bytes()) == 8:
					h = binaryutil.BigEndian.Uint64(ad.Bytes())
				}
			}
			if name == nftables.Table {
				st.Table = h
			}
		}
		raw, err := c.c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			var v uint64
			v, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
			st.Netns = v
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("netns cookie: %w", serr)
		}
		return nil
	})
	return st, err
}

// request sends one get request of type typ and returns its answer: one message (for
// NFT_MSG_GETGEN) or a dump's messages, or the kernel's error.
func request(conn *netlink.Conn, typ int, data []byte) ([]netlink.Message, error) {
	dump := typ != unix.NFT_MSG_GETGEN
	flags := netlink.Request
	if dump {
		flags |= netlink.Dump
	}
	req, err := conn.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: flags},
		Data:   data,
	})
	if err != nil {
		return nil, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	for {
		got, err := conn.Receive()
		if err != nil {
			return nil, err
		}
		// The netlink package reads a dump to its end (and drops its Done message).
		var out []netlink.Message
		for _, m := range got {
			if m.Header.Sequence == req.Header.Sequence && m.Header.Type != netlink.Done {
				out = append(out, m)
			}
		}
		if len(out) > 0 || dump {
			return out, nil
		}
	}
}

// Dial opens a Conn in the calling thread's network namespace.
func Dial() (*Conn, error) {
	var c *Conn
	err := onThisThread(func() error {
		nc, err := dial()
		c = &Conn{c: nc}
		return err
	})
	return c, err
}

// open opens c's socket, in the calling thread's network namespace, when it is closed.
func (c *Conn) open() error {
	if c.c != nil {
		return nil
	}
	nc, err := dial()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.c = nc
	return nil
}

// appendMessage appends one netlink message to b, numbered by c (see nextSeq), and
// returns its number.
func (c *Conn) appendMessage(b []byte, typ, flags uint16, data []byte) ([]byte, uint32) {
	seq := c.nextSeq()
	n := 16 + len(data)
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // the port: the kernel's own
	b = append(b, data...)
	for ; n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b, seq
}

// nextSeq numbers a message c writes itself (a transaction's, a dump request): from
// 1<<31 up, apart from the netlink package's own numbers for the requests it sends.
func (c *Conn) nextSeq() uint32 {
	if c.seq < 1<<31 {
		c.seq = 1 << 31
	}
	c.seq++
	return c.seq
}

// sendRaw writes b, whole netlink messages, to the kernel over c's socket in one
// sendto (waiting while the socket is not writable).
func (c *Conn) sendRaw(b []byte) error {
	raw, err := c.c.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	kernel := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if err := raw.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), b, 0, kernel)
		return werr != unix.EAGAIN && werr != unix.EINTR // else wait until writable
	}); err != nil {
		return err
	}
	return werr
}

func dial() (*netlink.Conn, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, err
	}
	// The kernel then says which check failed ("Could not process rule" and the like),
	// and does not copy each failed message back into its error.
	_ = conn.SetOption(netlink.ExtendedAcknowledge, true)
	_ = conn.SetOption(netlink.CapAcknowledge, true)
	return conn, nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	if c == nil || c.c == nil {
		return nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}

// Apply is the package's Apply over c.
func (c *Conn) Apply(text []byte) error { return c.ApplyAll([][]byte{text}) }

// ApplyAll applies texts in order, each as Apply does (one transaction, all or nothing),
// and stops at the first error, on a connection of its own.
func ApplyAll(texts [][]byte) error {
	c := &Conn{}
	defer c.Close()
	return c.ApplyAll(texts)
}

// ApplyAll applies texts in order over c, each in one transaction (all or nothing), and
// stops at the first error (see ApplySeq).
func (c *Conn) ApplyAll(texts [][]byte) error {
	switch len(texts) {
	case 0:
		return nil
	case 1:
		b, err := build(texts[0])
		if err != nil {
			return err
		}
		return onThisThread(func() error { return c.sendBatch(b, "") })
	}
	return c.applySeq(slices.Values(texts), len(texts))
}

// ApplySeq applies the texts of seq in order over c, each in one transaction (all or
// nothing), and stops at the first error. seq is pulled on another goroutine: each text
// is written and compiled while the kernel applies the one before it (on another core
// when there is one), so a staged full sync pays for netlab's writing and compiling
// only once, for the first stage.
func (c *Conn) ApplySeq(seq iter.Seq[[]byte]) error { return c.applySeq(seq, 0) }

// applySeq is ApplySeq; n is how many texts seq holds (0: not known), for errors.
func (c *Conn) applySeq(seq iter.Seq[[]byte], n int) error {
	which := func(i int) string {
		if n > 0 {
			return fmt.Sprintf("transaction %d of %d", i, n)
		}
		return fmt.Sprintf("transaction %d", i)
	}
	type compiled struct {
		b   *batch
		err error
	}
	ch := make(chan compiled, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait() // seq may read what the caller changes once this returns
	defer close(done)
	wg.Go(func() {
		defer close(ch)
		i := 0
		for text := range seq {
			i++
			b, err := build(text)
			if err != nil {
				err = fmt.Errorf("%s: %w", which(i), err)
			}
			select {
			case ch <- compiled{b, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	})
	return onThisThread(func() error {
		i := 0
		for cb := range ch {
			i++
			if cb.err != nil {
				return cb.err
			}
			if err := c.sendBatch(cb.b, which(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

// sendBatch sends b as one transaction over c (opened in the calling thread's namespace
// when closed); which names it in errors ("": the only one).
func (c *Conn) sendBatch(b *batch, which string) error {
	if err := c.open(); err != nil {
		return err
	}
	c.gen = 0
	gen, err := c.send(b.out)
	if err != nil {
		c.Close()
		if which != "" {
			return fmt.Errorf("nftables: %s: %w", which, err)
		}
		return fmt.Errorf("nftables: %w", err)
	}
	c.gen = gen
	return nil
}

// hookName is the name nft gives an ip family hook.
func hookName(h gnft.ChainHook) string {
	for name, v := range hooks {
		if *v == h {
			return name
		}
	}
	return strconv.Itoa(int(h))
}

// ListExisting returns the chains and sets table ip kube-proxy holds in the calling
// thread's network namespace (none when there is no such table), on a connection of its
// own (see Conn.Existing).
func ListExisting() (nftables.Existing, error) {
	c := &Conn{}
	defer c.Close()
	return c.Existing()
}
