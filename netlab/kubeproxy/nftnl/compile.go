package nftnl

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Registers as nft allocates them: the first value of a match goes to the 128-bit
// register 1, the further fields of a concatenation to the 32-bit registers after it.
const (
	regVerdict = 0
	reg1       = 1
	reg2       = 2

	// icmpPortUnreachable is the code of nft's plain "reject" in the ip family.
	icmpPortUnreachable = 3
)

// concatReg is the register of the field starting at 32-bit word idx of a concatenation.
func concatReg(idx uint32) uint32 {
	if idx == 0 {
		return reg1
	}
	return 8 + idx
}

// tokens splits one nft statement into words; a quoted string ("a b") is one word, its
// quotes kept.
func tokens(s string) ([]string, error) {
	out := make([]string, 0, 16)
	for i := 0; i < len(s); {
		switch s[i] {
		case ' ', '\t':
			i++
		case '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in %q", s[i:])
			}
			out = append(out, s[i:i+end+2])
			i += end + 2
		default:
			j := i + 1
			for j < len(s) && s[j] != ' ' && s[j] != '\t' {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out, nil
}

func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", fmt.Errorf("want a quoted string, got %q", s)
	}
	return s[1 : len(s)-1], nil
}

// ruleCompiler turns the text of one kube-proxy rule (what follows "add rule ip
// kube-proxy CHAIN ") into the expressions nft would send for it, plus the anonymous sets
// and maps the rule's lookups need.
type ruleCompiler struct {
	table *gnft.Table
	toks  []string
	i     int
	exprs []expr.Any
	anon  []anonSet
	udata []byte
}

type anonSet struct {
	set   *gnft.Set
	elems []gnft.SetElement
}

func (c *ruleCompiler) peek(n int) string {
	if c.i+n < len(c.toks) {
		return c.toks[c.i+n]
	}
	return ""
}

func (c *ruleCompiler) next() (string, error) {
	if c.i >= len(c.toks) {
		return "", fmt.Errorf("rule ends early")
	}
	t := c.toks[c.i]
	c.i++
	return t, nil
}

func (c *ruleCompiler) expect(words ...string) error {
	for _, w := range words {
		t, err := c.next()
		if err != nil {
			return fmt.Errorf("want %q: %w", w, err)
		}
		if t != w {
			return fmt.Errorf("want %q, got %q", w, t)
		}
	}
	return nil
}

func (c *ruleCompiler) add(e ...expr.Any) { c.exprs = append(c.exprs, e...) }

// compileRule compiles one rule's text.
func compileRule(table *gnft.Table, text string) ([]expr.Any, []anonSet, []byte, error) {
	toks, err := tokens(text)
	if err != nil {
		return nil, nil, nil, err
	}
	c := &ruleCompiler{table: table, toks: toks}
	for c.i < len(c.toks) {
		if err := c.statement(); err != nil {
			return nil, nil, nil, fmt.Errorf("rule %q: %w", text, err)
		}
	}
	return c.exprs, c.anon, c.udata, nil
}

var protocols = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}

func (c *ruleCompiler) statement() error {
	t, _ := c.next()
	switch t {
	case "ct":
		if err := c.expect("state", "new"); err != nil {
			return err
		}
		c.add(&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)})
	case "ip":
		c.i--
		if c.peek(2) == "." {
			return c.concatVmap()
		}
		off, err := c.ipField()
		if err != nil {
			return err
		}
		return c.ipMatch(off)
	case "meta":
		if c.peek(1) == "." {
			c.i--
			return c.concatVmap()
		}
		if err := c.expect("l4proto"); err != nil {
			return err
		}
		p, err := c.next()
		if err != nil {
			return err
		}
		n, ok := protocols[p]
		if !ok {
			return fmt.Errorf("unknown protocol %q", p)
		}
		c.add(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{n}})
	case "fib":
		if err := c.expect("saddr", "type", "local"); err != nil {
			return err
		}
		c.add(&expr.Fib{Register: reg1, FlagSADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	case "mark":
		return c.mark()
	case "numgen":
		return c.numgen()
	case "update":
		set, err := c.next()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(set, "@") {
			return fmt.Errorf("update wants @set, got %q", set)
		}
		if err := c.expect("{", "ip", "saddr", "}"); err != nil {
			return err
		}
		c.add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Dynset{SrcRegKey: reg1, SetName: set[1:], Operation: unix.NFT_DYNSET_OP_UPDATE})
	case "dnat":
		if err := c.expect("to"); err != nil {
			return err
		}
		to, err := c.next()
		if err != nil {
			return err
		}
		ap, err := netip.ParseAddrPort(to)
		if err != nil || !ap.Addr().Is4() {
			return fmt.Errorf("dnat to %q: want ipv4:port", to)
		}
		ip := ap.Addr().As4()
		c.add(&expr.Immediate{Register: reg1, Data: ip[:]},
			&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(ap.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true})
	case "masquerade":
		m := &expr.Masq{}
		if c.peek(0) == "fully-random" {
			c.i++
			m.FullyRandom = true
		}
		c.add(m)
	case "reject":
		c.add(&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable})
	case "jump", "goto", "drop", "accept", "return":
		v, err := parseVerdict(t, c.next)
		if err != nil {
			return err
		}
		c.add(v)
	case "comment":
		q, err := c.next()
		if err != nil {
			return err
		}
		s, err := unquote(q)
		if err != nil {
			return err
		}
		c.udata = userdata.AppendString(nil, userdata.TypeComment, s)
	default:
		return fmt.Errorf("unknown statement %q", t)
	}
	return nil
}

// ipField reads "ip saddr" or "ip daddr" and returns the field's offset in the header.
func (c *ruleCompiler) ipField() (uint32, error) {
	if err := c.expect("ip"); err != nil {
		return 0, err
	}
	f, err := c.next()
	if err != nil {
		return 0, err
	}
	switch f {
	case "saddr":
		return 12, nil
	case "daddr":
		return 16, nil
	}
	return 0, fmt.Errorf("unknown ip field %q", f)
}

// ipMatch compiles what follows "ip saddr|daddr": [!=] @set, { a , b }, an address or a
// prefix.
func (c *ruleCompiler) ipMatch(off uint32) error {
	op := expr.CmpOpEq
	if c.peek(0) == "!=" {
		op = expr.CmpOpNeq
		c.i++
	}
	t, err := c.next()
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(t, "@"):
		c.add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
			&expr.Lookup{SourceRegister: reg1, SetName: t[1:], Invert: op == expr.CmpOpNeq})
		return nil
	case t == "{":
		var items []string
		for {
			v, err := c.next()
			if err != nil {
				return err
			}
			if v == "}" {
				break
			}
			if v != "," {
				items = append(items, strings.TrimSuffix(v, ","))
			}
		}
		prefixes := make([]netip.Prefix, 0, len(items))
		for _, s := range items {
			p, err := parsePrefix(s)
			if err != nil {
				return err
			}
			prefixes = append(prefixes, p)
		}
		if len(prefixes) == 1 && prefixes[0].Bits() > 0 {
			// nft turns a set of one element into a plain comparison.
			c.prefixMatch(off, op, prefixes[0])
			return nil
		}
		id := newSetID()
		set := &gnft.Set{Table: c.table, ID: id, Name: anonName(id), Anonymous: true, Constant: true,
			Interval: true, KeyType: gnft.TypeIPAddr}
		c.anon = append(c.anon, anonSet{set, intervalElements(prefixes)})
		c.add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
			&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: op == expr.CmpOpNeq})
		return nil
	}
	p, err := parsePrefix(t)
	if err != nil {
		return err
	}
	c.prefixMatch(off, op, p)
	return nil
}

// setIDs numbers the anonymous sets of a batch: the kernel binds a rule's lookup to the
// set added earlier in the same transaction by this ID.
var setIDs atomic.Uint32

func newSetID() uint32 { return setIDs.Add(1) }

// anonNames makes this process's anonymous set names differ from any other's.
var anonNames = strconv.FormatUint(uint64(rand.Uint32()), 36)

// anonName names an anonymous set concretely ("__h.1a2b3c", the set's number first), not
// "__map%d" as nft does: for a "%d" name the kernel picks a free number by reading every
// set name of the table with sscanf, once per anonymous set — tens of milliseconds in a
// 1000-Service full sync. A short name that differs early also shortens the kernel's
// walks over the table's set names (by name, for each rule and element list that refers
// to the set). The name never shows (nft lists anonymous sets inline), and nft's "%d"
// patterns never read a number out of it.
func anonName(id uint32) string {
	return "__" + strconv.FormatUint(uint64(id), 36) + "." + anonNames
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("bad IPv4 prefix %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad IPv4 address %q", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

// prefixMatch compares a header address with a prefix as nft does: a prefix that ends
// on a byte boundary loads only its bytes; any other loads the address and masks it.
func (c *ruleCompiler) prefixMatch(off uint32, op expr.CmpOp, p netip.Prefix) {
	a := p.Addr().As4()
	if p.Bits()%8 == 0 {
		n := uint32(p.Bits() / 8)
		c.add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Cmp{Op: op, Register: reg1, Data: slices.Clone(a[:n])})
		return
	}
	mask := binaryutil.BigEndian.PutUint32(^uint32(0) << (32 - p.Bits()))
	c.add(&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: reg1, Data: a[:]})
}

// intervalElements are the elements of an anonymous interval set holding prefixes:
// overlapping and adjacent ranges merged, each a start and an end marker one past its
// last address, preceded by the end marker at 0.0.0.0 nft writes when the first range
// does not start there.
func intervalElements(prefixes []netip.Prefix) []gnft.SetElement {
	type span struct{ lo, hi uint64 } // hi is one past the last address
	spans := make([]span, 0, len(prefixes))
	for _, p := range prefixes {
		a := p.Addr().As4()
		lo := uint64(binaryutil.BigEndian.Uint32(a[:]))
		spans = append(spans, span{lo, lo + 1<<(32-p.Bits())})
	}
	slices.SortFunc(spans, func(x, y span) int { return int(x.lo) - int(y.lo) })
	var merged []span
	for _, s := range spans {
		if k := len(merged); k > 0 && s.lo <= merged[k-1].hi {
			merged[k-1].hi = max(merged[k-1].hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	key := func(v uint64) []byte { return binaryutil.BigEndian.PutUint32(uint32(v)) }
	var out []gnft.SetElement
	if merged[0].lo != 0 {
		out = append(out, gnft.SetElement{Key: key(0), IntervalEnd: true})
	}
	for _, s := range merged {
		out = append(out, gnft.SetElement{Key: key(s.lo)})
		if s.hi < 1<<32 {
			out = append(out, gnft.SetElement{Key: key(s.hi), IntervalEnd: true})
		}
	}
	return out
}

// selector reads one field of a concatenation; it returns the field's load into a
// register and its length.
func (c *ruleCompiler) selector() (func(reg uint32) expr.Any, uint32, error) {
	t, err := c.next()
	if err != nil {
		return nil, 0, err
	}
	f, err := c.next()
	if err != nil {
		return nil, 0, err
	}
	switch t + " " + f {
	case "ip saddr", "ip daddr":
		off := uint32(12)
		if f == "daddr" {
			off = 16
		}
		return func(r uint32) expr.Any {
			return &expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}
		}, 4, nil
	case "meta l4proto":
		return func(r uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r} }, 1, nil
	case "th dport":
		return func(r uint32) expr.Any {
			return &expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
		}, 2, nil
	}
	return nil, 0, fmt.Errorf("unknown selector %q", t+" "+f)
}

// concatVmap compiles "SEL . SEL [. SEL] vmap @map".
func (c *ruleCompiler) concatVmap() error {
	var word uint32
	for {
		load, n, err := c.selector()
		if err != nil {
			return err
		}
		c.add(load(concatReg(word)))
		word += (n + 3) / 4
		if c.peek(0) != "." {
			break
		}
		c.i++
	}
	if err := c.expect("vmap"); err != nil {
		return err
	}
	m, err := c.next()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(m, "@") {
		return fmt.Errorf("vmap wants @map, got %q", m)
	}
	c.add(&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: m[1:]})
	return nil
}

// mark compiles "mark set mark or|xor V" and "mark and V == 0".
func (c *ruleCompiler) mark() error {
	op, err := c.next()
	if err != nil {
		return err
	}
	load := &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1}
	switch op {
	case "set":
		if err := c.expect("mark"); err != nil {
			return err
		}
		how, err := c.next()
		if err != nil {
			return err
		}
		v, err := c.number()
		if err != nil {
			return err
		}
		mask, xor := ^v, v
		switch how {
		case "or":
		case "xor":
			mask = 0xffffffff
		default:
			return fmt.Errorf("mark set mark %q", how)
		}
		c.add(load, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(xor)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
	case "and":
		v, err := c.number()
		if err != nil {
			return err
		}
		if err := c.expect("=="); err != nil {
			return err
		}
		want, err := c.number()
		if err != nil {
			return err
		}
		c.add(load, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(v), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(want)})
	default:
		return fmt.Errorf("mark %q", op)
	}
	return nil
}

func (c *ruleCompiler) number() (uint32, error) {
	t, err := c.next()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(t, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", t)
	}
	return uint32(v), nil
}

// numgen compiles "numgen random mod N vmap { 0 : goto C , 1 : goto D }": an anonymous
// verdict map keyed by the random number.
func (c *ruleCompiler) numgen() error {
	if err := c.expect("random", "mod"); err != nil {
		return err
	}
	mod, err := c.number()
	if err != nil {
		return err
	}
	if err := c.expect("vmap", "{"); err != nil {
		return err
	}
	id := newSetID()
	set := &gnft.Set{Table: c.table, ID: id, Name: anonName(id), Anonymous: true, Constant: true, IsMap: true,
		KeyType: gnft.TypeInteger, DataType: gnft.TypeVerdict, KeyByteOrder: binaryutil.NativeEndian}
	var elems []gnft.SetElement
	for {
		k, err := c.next()
		if err != nil {
			return err
		}
		if k == "}" {
			break
		}
		if k == "," {
			continue
		}
		n, err := strconv.ParseUint(k, 10, 32)
		if err != nil {
			return fmt.Errorf("bad vmap key %q", k)
		}
		if err := c.expect(":"); err != nil {
			return err
		}
		v, err := c.verdict()
		if err != nil {
			return err
		}
		elems = append(elems, gnft.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(n)), VerdictData: v})
	}
	c.anon = append(c.anon, anonSet{set, elems})
	c.add(&expr.Numgen{Register: reg1, Modulus: mod, Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: set.Name, SetID: set.ID})
	return nil
}

// verdict reads "goto C", "jump C", "drop", "accept" or "return".
func (c *ruleCompiler) verdict() (*expr.Verdict, error) {
	t, err := c.next()
	if err != nil {
		return nil, err
	}
	return parseVerdict(t, c.next)
}

func parseVerdict(t string, next func() (string, error)) (*expr.Verdict, error) {
	switch t {
	case "goto", "jump":
		chain, err := next()
		if err != nil {
			return nil, err
		}
		if t == "goto" {
			return &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}, nil
		}
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain}, nil
	case "drop":
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	case "accept":
		return &expr.Verdict{Kind: expr.VerdictAccept}, nil
	case "return":
		return &expr.Verdict{Kind: expr.VerdictReturn}, nil
	}
	return nil, fmt.Errorf("unknown verdict %q", t)
}
