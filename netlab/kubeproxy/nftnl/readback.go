package nftnl

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// image is what a table holds, written so that the kernel's dump of a table and the
// messages netlab sends to build it compare equal when they make the same table: the
// attributes the kernel adds (handles, use counts, flags it derives) are left out, the
// attributes of each object are in a fixed order, and an anonymous set is named by its
// contents (its name and transaction ID are the sender's choice).
type image struct {
	table  string
	chains map[string]string
	sets   map[string]string // named sets and maps, their elements included
	rules  map[string][]string
}

// Attribute numbers x/sys/unix does not name (linux/netfilter/nf_tables.h).
const (
	nlaTypeMask    = 0x3fff // NLA_TYPE_MASK
	nftaSetHandle  = 16     // NFTA_SET_HANDLE
	nftaSetType    = 19     // NFTA_SET_TYPE: the kernel's implementation of the set
	nftaSetCount   = 20     // NFTA_SET_COUNT: its number of elements
	nftaChainFlags = 10     // NFTA_CHAIN_FLAGS
	nftaChainID    = 11     // NFTA_CHAIN_ID
	nftChainBase   = 1      // NFT_CHAIN_BASE
	nfAccept       = 1      // NF_ACCEPT
	nftaBitwiseOp  = 6      // NFTA_BITWISE_OP
)

// nlattr is one netlink attribute: its type without the nested and byte-order flags.
type nlattr struct {
	typ  uint16
	data []byte
}

func parseAttrs(b []byte) ([]nlattr, error) {
	if len(b) > 0 && !wellFormed(b) {
		return nil, fmt.Errorf("malformed attributes in % x", b)
	}
	return appendAttrs(nil, b), nil
}

// canon writes attrs in a fixed, binary form: sorted by type (a type's repeats in their
// order), nested ones recursively, each value with its length. Whether an attribute
// nests is not read from its flag: the kernel writes some nests without it (a chain's
// hook) and google/nftables marks some plain values with it (an element's flags), so a
// value that reads as attributes is taken for a nest, on both sides alike.
func canon(attrs []nlattr) string { return string(appendCanon(nil, attrs)) }

func byType(a, b nlattr) int { return int(a.typ) - int(b.typ) }

func appendCanon(dst []byte, attrs []nlattr) []byte {
	if !slices.IsSortedFunc(attrs, byType) {
		attrs = slices.Clone(attrs)
		slices.SortStableFunc(attrs, byType)
	}
	for _, a := range attrs {
		dst = binary.BigEndian.AppendUint16(dst, a.typ)
		if wellFormed(a.data) {
			var buf [8]nlattr
			dst = append(dst, '{')
			dst = appendCanon(dst, appendAttrs(buf[:0], a.data))
			dst = append(dst, '}')
		} else {
			dst = append(dst, '=')
			dst = binary.AppendUvarint(dst, uint64(len(a.data)))
			dst = append(dst, a.data...)
		}
	}
	return dst
}

// wellFormed reports whether b reads as one or more attributes, to its end.
func wellFormed(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		n := int(binaryutil.NativeEndian.Uint16(b[:2]))
		if n < 4 || n > len(b) {
			return false
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return true
}

// appendAttrs is parseAttrs for b known well formed.
func appendAttrs(dst []nlattr, b []byte) []nlattr {
	for len(b) >= 4 {
		n := int(binaryutil.NativeEndian.Uint16(b[:2]))
		t := binaryutil.NativeEndian.Uint16(b[2:4])
		dst = append(dst, nlattr{typ: t & nlaTypeMask, data: b[4:n]})
		b = b[min((n+3)&^3, len(b)):]
	}
	return dst
}

func attrString(a nlattr) string { return strings.TrimRight(string(a.data), "\x00") }

func find(attrs []nlattr, typ uint16) (nlattr, bool) {
	for _, a := range attrs {
		if a.typ == typ {
			return a, true
		}
	}
	return nlattr{}, false
}

// first is the first attribute of type typ (empty when none).
func first(attrs []nlattr, typ uint16) nlattr {
	a, _ := find(attrs, typ)
	return a
}

func without(attrs []nlattr, types ...uint16) []nlattr {
	return slices.DeleteFunc(slices.Clone(attrs), func(a nlattr) bool { return slices.Contains(types, a.typ) })
}

// setCanon is a set's canonical attributes (not its name, handle, ID, its element count,
// or the size hint, policy and implementation the kernel chose from them) and elements.
func setCanon(attrs []nlattr, elems []string) (string, error) {
	if f, ok := find(attrs, unix.NFTA_SET_FLAGS); ok && string(f.data) == "\x00\x00\x00\x00" {
		attrs = without(attrs, unix.NFTA_SET_FLAGS) // the kernel writes no flags that are 0
	}
	if t, ok := find(attrs, unix.NFTA_SET_DATA_TYPE); ok && string(t.data) == "\xff\xff\xff\x00" {
		attrs = without(attrs, unix.NFTA_SET_DATA_LEN) // a verdict's: the kernel's size of it
	}
	s := canon(without(attrs, unix.NFTA_SET_TABLE, unix.NFTA_SET_NAME, nftaSetHandle, unix.NFTA_SET_ID,
		unix.NFTA_SET_DESC, unix.NFTA_SET_POLICY, unix.NFTA_SET_GC_INTERVAL, nftaSetType, nftaSetCount))
	slices.Sort(elems)
	b := []byte(s)
	for _, e := range elems {
		b = binary.AppendUvarint(append(b, 'E'), uint64(len(e)))
		b = append(b, e...)
	}
	return string(b), nil
}

// elemsCanon is the canonical text of each element of an element list message.
func elemsCanon(attrs []nlattr) ([]string, error) {
	var out []string
	for _, a := range attrs {
		if a.typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		if len(a.data) == 0 {
			continue
		}
		if !wellFormed(a.data) {
			return nil, fmt.Errorf("malformed elements: % x", a.data)
		}
		for _, it := range appendAttrs(nil, a.data) {
			if !wellFormed(it.data) {
				return nil, fmt.Errorf("malformed element")
			}
			var buf [8]nlattr
			out = append(out, canon(appendAttrs(buf[:0], it.data)))
		}
	}
	return out, nil
}

// ruleCanon is a rule's expressions and userdata; anon names an anonymous set by its
// contents.
func ruleCanon(attrs []nlattr, anon func(name string, id []byte) (string, bool)) (string, error) {
	var out []byte
	var ebuf [16]nlattr
	for _, a := range attrs {
		switch a.typ {
		case unix.NFTA_RULE_EXPRESSIONS:
			if !wellFormed(a.data) {
				return "", fmt.Errorf("malformed expressions")
			}
			for _, it := range appendAttrs(ebuf[:0], a.data) {
				if !wellFormed(it.data) {
					return "", fmt.Errorf("malformed expression")
				}
				var kbuf [4]nlattr
				kids := appendAttrs(kbuf[:0], it.data)
				name, _ := find(kids, unix.NFTA_EXPR_NAME)
				data, _ := find(kids, unix.NFTA_EXPR_DATA)
				var dbuf [12]nlattr
				var ea []nlattr
				if wellFormed(data.data) {
					ea = appendAttrs(dbuf[:0], data.data)
				}
				out = append(out, 'e')
				out = append(out, name.data...)
				out = append(out, '(')
				var err error
				if out, err = appendExpr(out, attrString(name), ea, anon); err != nil {
					return "", err
				}
				out = append(out, ')')
			}
		case unix.NFTA_RULE_USERDATA:
			out = append(out, 'u')
			out = binary.AppendUvarint(out, uint64(len(a.data)))
			out = append(out, a.data...)
		}
	}
	return string(out), nil
}

// zeroDefaults are, per expression, the attributes the kernel writes back as 0 when they
// were not given (or given as 0): they count only when not 0.
var zeroDefaults = map[string][]uint16{
	"lookup":  {unix.NFTA_LOOKUP_FLAGS},
	"bitwise": {nftaBitwiseOp},
	"dynset":  {unix.NFTA_DYNSET_TIMEOUT},
}

func allZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// appendExpr appends an expression's canonical attributes. A lookup or dynset names its set:
// an anonymous one by its contents. What the kernel fills in itself is written as it
// does: a nat expression's maximum registers (given only the minimum ones, the kernel
// sets the maximum to the minimum).
func appendExpr(dst []byte, name string, attrs []nlattr, anon func(name string, id []byte) (string, bool)) ([]byte, error) {
	for _, typ := range zeroDefaults[name] {
		if a, ok := find(attrs, typ); ok && allZero(a.data) {
			attrs = without(attrs, typ)
		}
	}
	switch name {
	case "lookup":
		set, _ := find(attrs, unix.NFTA_LOOKUP_SET)
		id, _ := find(attrs, unix.NFTA_LOOKUP_SET_ID)
		if strings.HasPrefix(attrString(set), "__") {
			c, ok := anon(attrString(set), id.data)
			if !ok {
				return nil, fmt.Errorf("lookup of an unknown anonymous set %q", attrString(set))
			}
			attrs = append(without(attrs, unix.NFTA_LOOKUP_SET, unix.NFTA_LOOKUP_SET_ID),
				nlattr{typ: unix.NFTA_LOOKUP_SET, data: []byte(c)})
		} else {
			attrs = without(attrs, unix.NFTA_LOOKUP_SET_ID)
		}
	case "dynset":
		attrs = without(attrs, unix.NFTA_DYNSET_SET_ID)
	case "nat":
		for _, p := range [][2]uint16{{unix.NFTA_NAT_REG_ADDR_MIN, unix.NFTA_NAT_REG_ADDR_MAX},
			{unix.NFTA_NAT_REG_PROTO_MIN, unix.NFTA_NAT_REG_PROTO_MAX}} {
			lo, okLo := find(attrs, p[0])
			if _, okHi := find(attrs, p[1]); okLo && !okHi {
				attrs = append(slices.Clone(attrs), nlattr{typ: p[1], data: lo.data})
			}
		}
		// The kernel adds the range flags its registers imply (NF_NAT_RANGE_MAP_IPS,
		// NF_NAT_RANGE_PROTO_SPECIFIED) to the flags given.
		var flags uint32
		if f, ok := find(attrs, unix.NFTA_NAT_FLAGS); ok && len(f.data) == 4 {
			flags = binaryutil.BigEndian.Uint32(f.data)
		}
		if _, ok := find(attrs, unix.NFTA_NAT_REG_ADDR_MIN); ok {
			flags |= 1
		}
		if _, ok := find(attrs, unix.NFTA_NAT_REG_PROTO_MIN); ok {
			flags |= 2
		}
		attrs = without(attrs, unix.NFTA_NAT_FLAGS)
		if flags != 0 {
			attrs = append(attrs, nlattr{typ: unix.NFTA_NAT_FLAGS, data: binaryutil.BigEndian.PutUint32(flags)})
		}
	}
	return appendCanon(dst, attrs), nil
}

// parsed is a table as read back or as compiled, its rules not yet canonical: they
// name anonymous sets, whose elements are read back only when everything else compares
// equal (one dump a set: most of a read-back's cost).
type parsed struct {
	table  string
	chains map[string]string
	sets   map[string]string // named sets and maps, their elements included
	anon   map[string]*readSet
	// anonKey is the key of anon an anonymous set is found by from a rule's lookup: its
	// name in the kernel, its transaction ID in compiled messages.
	anonKey func(name string, id []byte) string
	rules   []parsedRule
	// anonOrder is the anonymous sets' names in the kernel's order (read back only).
	anonOrder []string
}

type readSet struct {
	attrs []nlattr
	elems []string
}

type parsedRule struct {
	chain string
	attrs []nlattr
}

func newParsed(key func(name string, id []byte) string) *parsed {
	return &parsed{chains: map[string]string{}, sets: map[string]string{}, anon: map[string]*readSet{}, anonKey: key}
}

// image is p with its rules canonical; with elems, an anonymous set is named by its
// attributes and elements, else by its attributes only.
func (p *parsed) image(elems bool) (*image, error) {
	im := &image{table: p.table, chains: p.chains, sets: p.sets, rules: map[string][]string{}}
	anon := func(name string, id []byte) (string, bool) {
		s := p.anon[p.anonKey(name, id)]
		if s == nil {
			return "", false
		}
		var e []string
		if elems {
			e = s.elems
		}
		c, err := setCanon(s.attrs, e)
		return c, err == nil
	}
	for _, r := range p.rules {
		c, err := ruleCanon(r.attrs, anon)
		if err != nil {
			return nil, err
		}
		im.rules[r.chain] = append(im.rules[r.chain], c)
	}
	return im, nil
}

// desired parses what msgs (NEWTABLE, NEWCHAIN, NEWSET, NEWSETELEM and NEWRULE messages,
// as build writes them from Staged's texts) make from nothing.
func desired(msgs []netlink.Message) (*parsed, error) {
	p := newParsed(func(_ string, id []byte) string { return string(id) })
	type set struct {
		attrs []nlattr
		elems []string
	}
	named := map[string]*set{}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			return nil, fmt.Errorf("short message")
		}
		attrs, err := parseAttrs(m.Data[4:])
		if err != nil {
			return nil, err
		}
		switch int(m.Header.Type) & 0xff {
		case unix.NFT_MSG_NEWTABLE:
			if p.table, err = tableCanon(attrs); err != nil {
				return nil, err
			}
		case unix.NFT_MSG_NEWCHAIN:
			name, _ := find(attrs, unix.NFTA_CHAIN_NAME)
			if p.chains[attrString(name)], err = chainCanon(attrs); err != nil {
				return nil, err
			}
		case unix.NFT_MSG_NEWSET:
			name, _ := find(attrs, unix.NFTA_SET_NAME)
			id, _ := find(attrs, unix.NFTA_SET_ID)
			if strings.HasPrefix(attrString(name), "__") {
				p.anon[string(id.data)] = &readSet{attrs: attrs}
			} else {
				named[attrString(name)] = &set{attrs: attrs}
			}
		case unix.NFT_MSG_NEWSETELEM:
			e, err := elemsCanon(attrs)
			if err != nil {
				return nil, err
			}
			if name, ok := find(attrs, unix.NFTA_SET_ELEM_LIST_SET); ok && named[attrString(name)] != nil {
				named[attrString(name)].elems = append(named[attrString(name)].elems, e...)
			} else if id, ok := find(attrs, unix.NFTA_SET_ELEM_LIST_SET_ID); ok && p.anon[string(id.data)] != nil {
				p.anon[string(id.data)].elems = append(p.anon[string(id.data)].elems, e...)
			} else {
				return nil, fmt.Errorf("elements of an unknown set")
			}
		case unix.NFT_MSG_NEWRULE:
			chain, _ := find(attrs, unix.NFTA_RULE_CHAIN)
			p.rules = append(p.rules, parsedRule{attrString(chain), attrs})
		default:
			return nil, fmt.Errorf("unexpected message %d", m.Header.Type)
		}
	}
	for n, s := range named {
		c, err := setCanon(s.attrs, s.elems)
		if err != nil {
			return nil, err
		}
		p.sets[n] = c
	}
	return p, nil
}

func tableCanon(attrs []nlattr) (string, error) {
	return canon(without(attrs, unix.NFTA_TABLE_NAME, nftaTableHandle, unix.NFTA_TABLE_USE)), nil
}

// chainCanon is a chain's canonical attributes: the kernel's handle, use count and the
// flags it derives (a base chain's) left out, and a base chain's policy accept when
// none was given (the kernel's default).
func chainCanon(attrs []nlattr) (string, error) {
	attrs = without(attrs, unix.NFTA_CHAIN_TABLE, unix.NFTA_CHAIN_NAME, unix.NFTA_CHAIN_HANDLE, unix.NFTA_CHAIN_USE,
		nftaChainID)
	if f, ok := find(attrs, nftaChainFlags); ok && len(f.data) == 4 {
		v := binaryutil.BigEndian.Uint32(f.data) &^ nftChainBase
		attrs = without(attrs, nftaChainFlags)
		if v != 0 {
			attrs = append(attrs, nlattr{typ: nftaChainFlags, data: binaryutil.BigEndian.PutUint32(v)})
		}
	}
	if _, hook := find(attrs, unix.NFTA_CHAIN_HOOK); hook {
		if _, ok := find(attrs, unix.NFTA_CHAIN_POLICY); !ok {
			attrs = append(attrs, nlattr{typ: unix.NFTA_CHAIN_POLICY, data: binaryutil.BigEndian.PutUint32(nfAccept)})
		}
	}
	return canon(attrs), nil
}

// diffObjects is the first difference between two images' objects of one kind, by name
// ("" when none).
func diffObjects(kind string, a, b map[string]string) string {
	for _, n := range slices.Sorted(maps.Keys(a)) {
		if c, ok := b[n]; !ok || c != a[n] {
			return fmt.Sprintf("%s %s: %x | %x", kind, n, a[n], c)
		}
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			return kind + " " + n + ": only in the second"
		}
	}
	return ""
}

// diff is the first difference between two images ("" when none).
func (im *image) diff(o *image) string {
	if im.table != o.table {
		return fmt.Sprintf("table: %x | %x", im.table, o.table)
	}
	if d := diffObjects("chain", im.chains, o.chains); d != "" {
		return d
	}
	if d := diffObjects("set", im.sets, o.sets); d != "" {
		return d
	}
	for _, n := range slices.Sorted(maps.Keys(im.chains)) {
		a, b := im.rules[n], o.rules[n]
		for i := range max(len(a), len(b)) {
			if i >= len(a) || i >= len(b) || a[i] != b[i] {
				x, y := "", ""
				if i < len(a) {
					x = a[i]
				}
				if i < len(b) {
					y = b[i]
				}
				return fmt.Sprintf("chain %s rule %d: %x | %x", n, i, x, y)
			}
		}
	}
	return ""
}

// dumpTable reads table ip kube-proxy back from the kernel over c: the table, its
// chains, rules, sets and the elements of its named sets (not of affinity sets, which
// packets fill, with timeouts); nil when there is no such table. The elements of its
// anonymous sets are read by readAnonElements.
func dumpTable(c *Conn) (*parsed, error) {
	p := newParsed(func(name string, _ []byte) string { return name })
	each := func(typ int, data []byte, fn func([]nlattr) error) error { return eachOf(c, typ, data, fn) }
	found := false
	if err := each(unix.NFT_MSG_GETTABLE, nfgen(unix.NFPROTO_IPV4), func(a []nlattr) error {
		if n, _ := find(a, unix.NFTA_TABLE_NAME); attrString(n) == nftables.Table {
			found = true
			var err error
			p.table, err = tableCanon(a)
			return err
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	if err := each(unix.NFT_MSG_GETCHAIN, tableAttr(unix.NFTA_CHAIN_TABLE), func(a []nlattr) error {
		if !ours(a, unix.NFTA_CHAIN_TABLE) {
			return nil
		}
		name, _ := find(a, unix.NFTA_CHAIN_NAME)
		c, err := chainCanon(a)
		p.chains[attrString(name)] = c
		return err
	}); err != nil {
		return nil, err
	}
	named := map[string][]nlattr{}
	if err := each(unix.NFT_MSG_GETSET, tableAttr(unix.NFTA_SET_TABLE), func(a []nlattr) error {
		if !ours(a, unix.NFTA_SET_TABLE) {
			return nil
		}
		name, _ := find(a, unix.NFTA_SET_NAME)
		flags, _ := find(a, unix.NFTA_SET_FLAGS)
		if len(flags.data) == 4 && binaryutil.BigEndian.Uint32(flags.data)&unix.NFT_SET_ANONYMOUS != 0 {
			p.anon[attrString(name)] = &readSet{attrs: a}
			p.anonOrder = append(p.anonOrder, attrString(name))
		} else {
			named[attrString(name)] = a
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for n, a := range named {
		var elems []string
		if !strings.HasPrefix(n, "affinity-") {
			var err error
			if elems, err = c.setElements(n); err != nil {
				return nil, err
			}
		}
		cn, err := setCanon(a, elems)
		if err != nil {
			return nil, err
		}
		p.sets[n] = cn
	}
	if err := each(unix.NFT_MSG_GETRULE, tableAttr(unix.NFTA_RULE_TABLE), func(a []nlattr) error {
		if !ours(a, unix.NFTA_RULE_TABLE) {
			return nil
		}
		chain, _ := find(a, unix.NFTA_RULE_CHAIN)
		p.rules = append(p.rules, parsedRule{attrString(chain), a})
		return nil
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// ours reports whether attrs' table attribute typ names table ip kube-proxy.
func ours(attrs []nlattr, typ uint16) bool {
	t, ok := find(attrs, typ)
	return ok && attrString(t) == nftables.Table
}

// tableAttr is a dump request's data that selects table ip kube-proxy by its attribute
// typ.
func tableAttr(typ uint16) []byte {
	b := nfgen(unix.NFPROTO_IPV4)
	a, _ := netlink.MarshalAttributes([]netlink.Attribute{{Type: typ, Data: []byte(nftables.Table + "\x00")}})
	return append(b, a...)
}

// eachOf dumps over c (see Conn.dump) and calls fn with each answer's attributes.
func eachOf(c *Conn, typ int, data []byte, fn func([]nlattr) error) error {
	return c.dump(typ, data, func(m []byte) error {
		if len(m) < 4 {
			return nil
		}
		attrs, err := parseAttrs(m[4:])
		if err != nil {
			return err
		}
		return fn(attrs)
	})
}

// Existing lists, over c, the chains and sets table ip kube-proxy holds in c's namespace
// (none when there is no such table) and each base chain's hook: one dump each of the
// namespace's ip tables, the table's chains and its sets, over c's lasting socket
// (google/nftables' listing, on a socket of its own and parsing every attribute into its
// types, took about twice as long at 10 000 Services).
func (c *Conn) Existing() (nftables.Existing, error) {
	var ex nftables.Existing
	err := onThisThread(func() error {
		if err := c.open(); err != nil {
			return err
		}
		err := listExisting(c, &ex)
		if err != nil {
			c.Close()
			return fmt.Errorf("nftables: listing the table: %w", err)
		}
		return nil
	})
	return ex, err
}

func listExisting(c *Conn, ex *nftables.Existing) error {
	if err := eachOf(c, unix.NFT_MSG_GETTABLE, nfgen(unix.NFPROTO_IPV4), func(a []nlattr) error {
		if n, _ := find(a, unix.NFTA_TABLE_NAME); attrString(n) == nftables.Table {
			ex.Table = true
		}
		return nil
	}); err != nil || !ex.Table {
		return err
	}
	if err := eachOf(c, unix.NFT_MSG_GETCHAIN, tableAttr(unix.NFTA_CHAIN_TABLE), func(a []nlattr) error {
		if !ours(a, unix.NFTA_CHAIN_TABLE) {
			return nil
		}
		name := attrString(first(a, unix.NFTA_CHAIN_NAME))
		ex.Chains = append(ex.Chains, name)
		hook, ok := find(a, unix.NFTA_CHAIN_HOOK)
		if !ok || !wellFormed(hook.data) {
			return nil
		}
		h := appendAttrs(nil, hook.data)
		num, okNum := find(h, unix.NFTA_HOOK_HOOKNUM)
		prio, okPrio := find(h, unix.NFTA_HOOK_PRIORITY)
		if !okNum || !okPrio || len(num.data) != 4 || len(prio.data) != 4 {
			return nil
		}
		if ex.Base == nil {
			ex.Base = map[string]string{}
		}
		ex.Base[name] = attrString(first(a, unix.NFTA_CHAIN_TYPE)) + " " +
			hookName(gnft.ChainHook(binaryutil.BigEndian.Uint32(num.data))) + " " +
			strconv.Itoa(int(int32(binaryutil.BigEndian.Uint32(prio.data))))
		return nil
	}); err != nil {
		return err
	}
	return eachOf(c, unix.NFT_MSG_GETSET, tableAttr(unix.NFTA_SET_TABLE), func(a []nlattr) error {
		if ours(a, unix.NFTA_SET_TABLE) {
			ex.Sets = append(ex.Sets, attrString(first(a, unix.NFTA_SET_NAME)))
		}
		return nil
	})
}

// readAnonElements reads the elements of p's anonymous sets, in the kernel's order of
// sets (it finds each by name walking that list).
func readAnonElements(c *Conn, p *parsed) error {
	for _, n := range p.anonOrder {
		e, err := c.setElements(n)
		if err != nil {
			return err
		}
		p.anon[n].elems = e
	}
	return nil
}

// setElements reads the elements of set name of the table, canonical.
func (c *Conn) setElements(name string) ([]string, error) {
	b := nfgen(unix.NFPROTO_IPV4)
	a, _ := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(nftables.Table + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(name + "\x00")},
	})
	var elems []string
	err := c.dump(unix.NFT_MSG_GETSETELEM, append(b, a...), func(m []byte) error {
		if len(m) < 4 {
			return nil
		}
		attrs, err := parseAttrs(m[4:])
		if err != nil {
			return err
		}
		e, err := elemsCanon(attrs)
		elems = append(elems, e...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("elements of %s: %w", name, err)
	}
	return elems, nil
}

// Holds reports whether table ip kube-proxy in c's namespace holds exactly rs: the same
// table, chains, sets and maps with the same elements, and in each chain the same rules
// in the same order, nothing more (affinity sets' elements, which packets add, aside),
// however it was built (one transaction, stages, changes). It reads the table back (one
// dump each of chains, sets and rules, one of each set's elements) and compares it,
// attribute by attribute, with the messages that build rs from nothing (nftables.Full's
// commands, compiled as Apply compiles them); why they differ, when they do, is
// returned too.
func (c *Conn) Holds(rs *nftables.Ruleset) (same bool, why string, err error) {
	// rs is compiled while the kernel answers the dumps: the commands of a table built
	// from nothing (StagedSeq's, in one stage for the rules: each stage is compiled on
	// its own and only the messages count, not how they would be cut).
	type compiled struct {
		p   *parsed
		err error
	}
	wantCh := make(chan compiled, 1)
	go func() {
		var msgs []netlink.Message
		for text := range nftables.StagedSeq(rs, math.MaxInt) {
			b, err := build(text)
			if err != nil {
				wantCh <- compiled{nil, err}
				return
			}
			msgs = append(msgs, b.out...)
		}
		p, err := desired(msgs)
		wantCh <- compiled{p, err}
	}()
	var got *parsed
	err = onThisThread(func() error {
		if err := c.open(); err != nil {
			return err
		}
		var err error
		if got, err = dumpTable(c); err != nil {
			c.Close()
			return fmt.Errorf("nftables: reading the table back: %w", err)
		}
		return nil
	})
	want := <-wantCh
	switch {
	case err != nil:
		return false, "", err
	case want.err != nil:
		return false, "", want.err
	case got == nil:
		return false, "no table", nil
	}
	// First everything but the anonymous sets' elements: a table that differs usually
	// differs there already (a Service's endpoints: its numgen modulus, its chains).
	for _, elems := range []bool{false, true} {
		if elems {
			if err := onThisThread(func() error {
				if err := readAnonElements(c, got); err != nil {
					c.Close()
					return fmt.Errorf("nftables: reading the table back: %w", err)
				}
				return nil
			}); err != nil {
				return false, "", err
			}
		}
		w, err := want.p.image(elems)
		if err != nil {
			return false, "", err
		}
		g, err := got.image(elems)
		if err != nil {
			return false, fmt.Sprintf("read back: %v", err), nil
		}
		if d := w.diff(g); d != "" {
			return false, d, nil
		}
	}
	return true, "", nil
}

// dump sends one dump request of type typ over c and calls fn with each answer's data
// (fn's to keep), in order. It talks to the socket directly, one send and as few reads as the answers
// take (the kernel makes a dump's first part within the send): a read-back asks for
// each set's elements, a thousand dumps at 1000 Services, and the netlink package's
// several system calls and wake-ups for each were most of the read-back's time.
func (c *Conn) dump(typ int, data []byte, fn func([]byte) error) error {
	req, seq := c.appendMessage(nil, unix.NFNL_SUBSYS_NFTABLES<<8|uint16(typ), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, data)
	if err := c.sendRaw(req); err != nil {
		return err
	}
	raw, err := c.c.SyscallConn()
	if err != nil {
		return err
	}
	if len(c.rbuf) == 0 {
		c.rbuf = make([]byte, 64<<10) // a dump's part is at most 32 KiB
	}
	for {
		var n int
		var rerr error
		// Each part in 5 s at most (the kernel makes the next one when this one is read:
		// a big table's dump of rules takes hundreds of parts, each resumed by skipping
		// the rules already sent).
		if err := c.c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), c.rbuf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		}); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		for b := c.rbuf[:n]; len(b) >= 16; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < 16 || l > len(b) {
				return fmt.Errorf("malformed answer")
			}
			mtype := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			m := b[16:l]
			b = b[min((l+3)&^3, len(b)):]
			if mseq != seq {
				continue // an answer to an earlier request
			}
			switch mtype {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m)); code != 0 {
						return syscall.Errno(-code)
					}
				}
				return nil
			}
			if err := fn(slices.Clone(m)); err != nil { // the buffer is read into again
				return err
			}
		}
	}
}
