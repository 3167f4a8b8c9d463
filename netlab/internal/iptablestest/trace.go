package iptablestest

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Packet is the first packet of a new connection as the namespace sees it.
type Packet struct {
	Src, Dst     string
	SPort, DPort int
	// Proto is tcp, udp or sctp.
	Proto string
	// FromLocalProcess: sent by a process in the namespace itself (the OUTPUT path);
	// otherwise it arrived on an interface (the PREROUTING path).
	FromLocalProcess bool
}

// Outcome is one possible fate of the packet.
type Outcome struct {
	// Verdict is ACCEPT (delivered or forwarded), DROP or REJECT.
	Verdict string
	// RejectWith is the REJECT's --reject-with.
	RejectWith string
	// DNAT is the "ip:port" the connection was rewritten to, or ""; DNATChain is the
	// chain of the rule that did it.
	DNAT      string
	DNATChain string
	// Masquerade: a MASQUERADE in nat POSTROUTING rewrites the source.
	Masquerade bool
	// Probability of this outcome among the random branches explored (1 with a Rand).
	Probability float64
	// RecentSet are the xt_recent lists the source was added to.
	RecentSet []string
	// Affinity is the recent list whose --rcheck matched ("" when none did), with its
	// --seconds.
	Affinity        string
	AffinitySeconds int
	// Mark is the packet mark at the end.
	Mark uint32
	// Path lists the chains traversed, "table/chain".
	Path []string
}

// Tracer walks packets through a Kernel's rules.
type Tracer struct {
	Kernel *Kernel
	// Local are the namespace's own addresses (addrtype LOCAL, and what decides INPUT
	// against FORWARD); loopback addresses always are.
	Local []netip.Prefix
	// Rand, when set, decides random statistic matches the way xt_statistic does
	// (rand & 0x7fffffff < probability × 2^31); when nil both branches are explored.
	Rand func() uint32
	// Now is the clock of the xt_recent lists.
	Now time.Time
	// Recent is the xt_recent state: list name → source → last seen. --set adds to it.
	Recent map[string]map[netip.Addr]time.Time
	// HMark is the HMARK target's hash of a source address (the caller's model of the
	// kernel's); a rule with -j HMARK needs it.
	HMark func(src netip.Addr, rnd, mod, offset uint32) uint32

	nth map[*Rule]uint32
}

// NewTracer is a tracer over k with the given local addresses ("ip" or "ip/len").
func NewTracer(k *Kernel, local ...string) (*Tracer, error) {
	t := &Tracer{Kernel: k, Now: time.Unix(1_700_000_000, 0), Recent: map[string]map[netip.Addr]time.Time{}}
	for _, s := range local {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("local address: %w", err)
		}
		t.Local = append(t.Local, p)
	}
	return t, nil
}

// AddRecent puts src in the xt_recent list name, seen now.
func (t *Tracer) AddRecent(name, src string) error {
	a, err := netip.ParseAddr(src)
	if err != nil {
		return err
	}
	if t.Recent[name] == nil {
		t.Recent[name] = map[netip.Addr]time.Time{}
	}
	t.Recent[name][a] = t.Now
	return nil
}

type state struct {
	src, dst     netip.Addr
	sport, dport int
	proto        string
	origDst      netip.Addr
	origDPort    int
	ctDNAT       bool
	out          Outcome
}

type branch struct {
	st      state
	verdict string // "" = fell off the chain or returned
}

func (t *Tracer) isLocal(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, p := range t.Local {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Trace walks p through the tables and returns every possible outcome. Arriving on an
// interface: mangle and nat PREROUTING, then filter INPUT for a local destination, else
// filter FORWARD and nat POSTROUTING. From a local process: mangle, nat and filter
// OUTPUT, then filter INPUT for a local destination, else nat POSTROUTING.
func (t *Tracer) Trace(p Packet) ([]Outcome, error) {
	src, err := netip.ParseAddr(p.Src)
	if err != nil {
		return nil, fmt.Errorf("packet source: %w", err)
	}
	dst, err := netip.ParseAddr(p.Dst)
	if err != nil {
		return nil, fmt.Errorf("packet destination: %w", err)
	}
	if t.nth == nil {
		t.nth = map[*Rule]uint32{}
	}
	if t.Recent == nil {
		t.Recent = map[string]map[netip.Addr]time.Time{}
	}
	start := state{src: src, dst: dst, sport: p.SPort, dport: p.DPort, proto: strings.ToLower(p.Proto),
		origDst: dst, origDPort: p.DPort, out: Outcome{Probability: 1}}
	var outs []Outcome
	live := []state{start}
	// hook runs the chains in order over every live state; DROP and REJECT end a state.
	hook := func(chains ...string) error {
		for _, tc := range chains {
			table, chain, _ := strings.Cut(tc, "/")
			var next []state
			for _, st := range live {
				res, err := t.run(table, chain, st, 0)
				if err != nil {
					return err
				}
				for _, b := range res {
					switch b.verdict {
					case "DROP", "REJECT":
						b.st.out.Verdict = b.verdict
						outs = append(outs, b.st.out)
					case "MASQUERADE":
						b.st.out.Masquerade = true
						next = append(next, b.st)
					default:
						next = append(next, b.st)
					}
				}
			}
			live = next
		}
		return nil
	}
	first := []string{"mangle/PREROUTING", "nat/PREROUTING"}
	if p.FromLocalProcess {
		first = []string{"mangle/OUTPUT", "nat/OUTPUT", "filter/OUTPUT"}
	}
	if err := hook(first...); err != nil {
		return nil, err
	}
	// Routing: each state by its (possibly rewritten) destination.
	var local, remote []state
	for _, st := range live {
		if t.isLocal(st.dst) {
			local = append(local, st)
		} else {
			remote = append(remote, st)
		}
	}
	live = local
	if err := hook("filter/INPUT"); err != nil {
		return nil, err
	}
	delivered := live
	live = remote
	if p.FromLocalProcess {
		err = hook("nat/POSTROUTING")
	} else {
		err = hook("filter/FORWARD", "nat/POSTROUTING")
	}
	if err != nil {
		return nil, err
	}
	for _, st := range append(delivered, live...) {
		st.out.Verdict = "ACCEPT"
		outs = append(outs, st.out)
	}
	return outs, nil
}

// run traverses one chain; each returned branch fell off or returned (verdict "") or
// ended in a terminal verdict.
func (t *Tracer) run(table, chain string, st state, depth int) ([]branch, error) {
	if depth > 32 {
		return nil, fmt.Errorf("chain nesting too deep at %s/%s", table, chain)
	}
	rules, ok := t.Kernel.Tables[table][chain]
	if !ok {
		return nil, fmt.Errorf("no chain %s/%s", table, chain)
	}
	st.out.Path = append(slices.Clip(st.out.Path), table+"/"+chain)
	live := []state{st}
	var done []branch
	for _, r := range rules {
		var next []state
		for _, s := range live {
			matched, unmatched, err := t.match(r, s)
			if err != nil {
				return nil, fmt.Errorf("%s/%s rule %q: %w", table, chain, strings.Join(r.Args, " "), err)
			}
			next = append(next, unmatched...)
			for _, ms := range matched {
				res, err := t.apply(r, ms, depth)
				if err != nil {
					return nil, err
				}
				for _, b := range res {
					if b.verdict == "" {
						next = append(next, b.st)
					} else {
						done = append(done, b)
					}
				}
			}
		}
		live = next
		if len(live) == 0 {
			break
		}
	}
	for _, s := range live {
		done = append(done, branch{st: s})
	}
	return done, nil
}

// apply runs a matched rule's target. A "" verdict means: go on with the next rule.
func (t *Tracer) apply(r *Rule, s state, depth int) ([]branch, error) {
	switch r.target {
	case "":
		return []branch{{st: s}}, nil
	case "RETURN", "ACCEPT", "DROP", "MASQUERADE":
		return []branch{{st: s, verdict: r.target}}, nil
	case "REJECT":
		s.out.RejectWith = r.targetOpts["--reject-with"]
		return []branch{{st: s, verdict: "REJECT"}}, nil
	case "MARK":
		for o, v := range r.targetOpts {
			val, mask, _ := parseMark(v) // checked at parse
			switch o {
			case "--or-mark":
				mask = val
			case "--xor-mark":
				mask = 0
			}
			s.out.Mark = (s.out.Mark &^ mask) ^ val
		}
		return []branch{{st: s}}, nil
	case "HMARK":
		for o, want := range map[string]string{"--hmark-src-prefix": "32", "--hmark-dst-prefix": "0",
			"--hmark-sport-mask": "0", "--hmark-dport-mask": "0", "--hmark-proto-mask": "0"} {
			if got := r.targetOpts[o]; got != want {
				return nil, fmt.Errorf("HMARK %s %q: only %s is modelled", o, got, want)
			}
		}
		if t.HMark == nil {
			return nil, fmt.Errorf("HMARK rule in %s but the tracer has no HMark hash", r.Chain)
		}
		num := func(o string) uint32 { v, _ := strconv.ParseUint(r.targetOpts[o], 0, 32); return uint32(v) }
		s.out.Mark = t.HMark(s.src, num("--hmark-rnd"), num("--hmark-mod"), num("--hmark-offset"))
		return []branch{{st: s}}, nil
	case "DNAT":
		ap := netip.MustParseAddrPort(r.targetOpts["--to-destination"]) // checked at parse
		s.dst, s.dport = ap.Addr(), int(ap.Port())
		s.out.DNAT, s.out.DNATChain = ap.String(), r.Chain
		s.ctDNAT = true
		return []branch{{st: s, verdict: "DNAT"}}, nil
	}
	res, err := t.run(r.Table, r.target, s, depth+1)
	if err != nil {
		return nil, err
	}
	for i := range res {
		if res[i].verdict == "RETURN" {
			res[i].verdict = ""
		}
	}
	return res, nil
}

// match splits s into the states that match r and those that do not. The IP header
// (-p, -s, -d) is checked first, then each -m in order, stopping at the first that fails
// (a later statistic or recent match is then not evaluated and keeps its state); a
// random statistic match without Rand yields both, weighted.
func (t *Tracer) match(r *Rule, s state) (matched, unmatched []state, err error) {
	no := []state{s}
	if r.proto != "" && (r.proto == s.proto) == r.protoNeg {
		return nil, no, nil
	}
	if r.src.IsValid() && r.src.Contains(s.src) == r.srcNeg {
		return nil, no, nil
	}
	if r.dst.IsValid() && r.dst.Contains(s.dst) == r.dstNeg {
		return nil, no, nil
	}
	live := []state{s}
	for i := range r.matches {
		m := &r.matches[i]
		var next []state
		for _, st := range live {
			yes, not, err := t.module(r, m, st)
			if err != nil {
				return nil, nil, err
			}
			next = append(next, yes...)
			unmatched = append(unmatched, not...)
		}
		live = next
		if len(live) == 0 {
			break
		}
	}
	return live, unmatched, nil
}

// module evaluates one match module.
func (t *Tracer) module(r *Rule, m *match, s state) (yes, not []state, err error) {
	ok := func(b bool) ([]state, []state, error) {
		if b {
			return []state{s}, nil, nil
		}
		return nil, []state{s}, nil
	}
	opt := func(name string) (int, bool) {
		v, has := m.opts[name]
		n, _ := strconv.Atoi(v.val) // checked at parse
		return n, has
	}
	switch m.mod {
	case "comment", "nfacct": // nfacct counts what passes, matching everything
		return ok(true)
	case "tcp", "udp", "sctp":
		if s.proto != m.mod {
			return nil, nil, fmt.Errorf("-m %s on a %s packet (the rule needs -p %s)", m.mod, s.proto, m.mod)
		}
		hit := true
		if p, has := opt("--dport"); has {
			hit = hit && (p == s.dport) != m.opts["--dport"].neg
		}
		if p, has := opt("--sport"); has {
			hit = hit && (p == s.sport) != m.opts["--sport"].neg
		}
		return ok(hit)
	case "addrtype":
		hit := true
		for o, a := range map[string]netip.Addr{"--dst-type": s.dst, "--src-type": s.src} {
			v, has := m.opts[o]
			if !has {
				continue
			}
			if v.val != "LOCAL" {
				return nil, nil, fmt.Errorf("addrtype %s %s: only LOCAL is modelled", o, v.val)
			}
			hit = hit && t.isLocal(a) != v.neg
		}
		return ok(hit)
	case "mark":
		v := m.opts["--mark"]
		val, mask, _ := parseMark(v.val)
		return ok(((s.out.Mark & mask) == val) != v.neg)
	case "conntrack":
		hit := true
		if v, has := m.opts["--ctstate"]; has {
			states := []string{"NEW"} // every traced packet starts a connection
			if s.ctDNAT {
				states = append(states, "DNAT")
			}
			any := false
			for _, c := range strings.Split(v.val, ",") {
				any = any || slices.Contains(states, c)
			}
			hit = hit && any != v.neg
		}
		if v, has := m.opts["--ctorigdst"]; has {
			p, _ := parsePrefix(v.val)
			hit = hit && p.Contains(s.origDst) != v.neg
		}
		if p, has := opt("--ctorigdstport"); has {
			hit = hit && (p == s.origDPort) != m.opts["--ctorigdstport"].neg
		}
		return ok(hit)
	case "statistic":
		if mode, _ := m.opt("--mode"); mode == "nth" {
			every, _ := opt("--every")
			packet, _ := opt("--packet")
			e := uint32(every - 1)
			count, seen := t.nth[r]
			if !seen {
				count = e - uint32(packet) // libxt_statistic: count = every-1 - packet
			}
			// xt_statistic: nval = (oval == every-1) ? 0 : oval+1; match when nval == 0.
			if count == e {
				count = 0
			} else {
				count++
			}
			t.nth[r] = count
			return ok(count == 0)
		}
		p, _ := strconv.ParseFloat(m.opts["--probability"].val, 64)
		if t.Rand != nil {
			return ok(t.Rand()&0x7fffffff < uint32(p*0x80000000))
		}
		y, n := s, s
		y.out.Probability *= p
		n.out.Probability *= 1 - p
		return []state{y}, []state{n}, nil
	case "recent":
		name, _ := m.opt("--name")
		list := t.Recent[name]
		if list == nil {
			list = map[netip.Addr]time.Time{}
			t.Recent[name] = list
		}
		if m.flags["--set"] {
			list[s.src] = t.Now
			s.out.RecentSet = append(slices.Clip(s.out.RecentSet), name)
			return ok(true)
		}
		secs, _ := opt("--seconds")
		last, listed := list[s.src]
		fresh := secs == 0 || t.Now.Sub(last) <= time.Duration(secs)*time.Second
		if listed && !fresh && m.flags["--reap"] {
			delete(list, s.src)
		}
		if listed && fresh {
			s.out.Affinity, s.out.AffinitySeconds = name, secs
			return ok(true)
		}
		return ok(false)
	}
	return nil, nil, fmt.Errorf("unmodelled match module %q", m.mod)
}

// Targets returns the distinct DNAT targets of the accepted outcomes, sorted.
func Targets(outs []Outcome) []string {
	var ts []string
	for _, o := range outs {
		if o.Verdict == "ACCEPT" && o.DNAT != "" {
			ts = append(ts, o.DNAT)
		}
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}
