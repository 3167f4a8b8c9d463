package nftables

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// This file is a pure packet tracer over a rendered table: it walks a new connection's
// first packet through the base chains in hook and priority order, follows every jump,
// goto and verdict map, explores every numgen branch, and records the chains and map
// elements it met, so the nftables mode is tested (and explained by `netlab trace`)
// without a kernel.

// Packet is the first packet of a new connection.
type Packet struct {
	Src, Dst string
	DPort    int
	// Proto is tcp, udp or sctp.
	Proto string
	// FromLocalProcess: sent by a process in the node's own namespace (output hooks);
	// otherwise it arrived on an interface (prerouting).
	FromLocalProcess bool
}

// Env is what the tracer needs to know about the node.
type Env struct {
	// LocalIPs are the node's own addresses (fib type local); 127.0.0.0/8 always is.
	LocalIPs []string
	// Affinity holds the affinity sets' current members: set name → source addresses.
	Affinity map[string][]string
}

// Outcome is one possible fate of the packet.
type Outcome struct {
	// Verdict is ACCEPT (delivered or forwarded), DROP or REJECT.
	Verdict string
	// DNAT is the "ip:port" the connection was rewritten to, or "".
	DNAT string
	// Masquerade: the source is rewritten by the masquerading chain.
	Masquerade bool
	// Probability of this outcome among the numgen branches.
	Probability float64
	// Affinity is the affinity set whose lookup chose the endpoint, "" when none did;
	// Updated are the affinity sets the source was added to.
	Affinity string
	Updated  []string
	// Path lists, in order, the chains entered and the verdict-map elements matched
	// ("service-ips: 10.96.0.10 . udp . 53 : goto service-...").
	Path []string
	// Rule is the rule that dropped or rejected the packet ("chain: rule"), or "".
	Rule string
}

type state struct {
	src, dst string
	dport    int
	proto    string
	mark     uint64
	dnatted  bool
	out      Outcome
}

type branch struct {
	st      state
	verdict string // "" fell off or returned; accept, drop, reject, dnat, masquerade
}

type tracer struct {
	rs    *Ruleset
	local []netip.Addr
	aff   map[string][]string
}

func (t *tracer) isLocal(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	return a.IsLoopback() || slices.Contains(t.local, a)
}

// Trace walks pkt through the table and returns every possible outcome.
func Trace(rs *Ruleset, pkt Packet, env Env) ([]Outcome, error) {
	t := &tracer{rs: rs, aff: env.Affinity}
	for _, s := range env.LocalIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("local ip %q: %w", s, err)
		}
		t.local = append(t.local, a)
	}
	st := state{src: pkt.Src, dst: pkt.Dst, dport: pkt.DPort, proto: strings.ToLower(pkt.Proto), out: Outcome{Probability: 1}}
	var pre []string
	if pkt.FromLocalProcess {
		pre = []string{ChainFilterOutputPreDNAT, ChainNATOutput, ChainFilterOutput}
	} else {
		pre = []string{ChainFilterPreroutingPreDNAT, ChainNATPrerouting}
	}
	live := []state{st}
	var outs []Outcome
	hook := func(chain string) error {
		var next []state
		for _, s := range live {
			res, err := t.run(chain, s, 0)
			if err != nil {
				return err
			}
			for _, b := range res {
				switch b.verdict {
				case "drop", "reject":
					b.st.out.Verdict = strings.ToUpper(b.verdict)
					outs = append(outs, b.st.out)
				default:
					if b.verdict == "masquerade" {
						b.st.out.Masquerade = true
					}
					next = append(next, b.st)
				}
			}
		}
		live = next
		return nil
	}
	for _, c := range pre {
		if err := hook(c); err != nil {
			return nil, err
		}
	}
	// Routing: after DNAT each branch may go to a different place.
	var toLocal, toForward []state
	for _, s := range live {
		if t.isLocal(s.dst) {
			toLocal = append(toLocal, s)
		} else {
			toForward = append(toForward, s)
		}
	}
	live = toLocal
	if err := hook(ChainFilterInput); err != nil {
		return nil, err
	}
	done := live
	live = toForward
	if !pkt.FromLocalProcess {
		if err := hook(ChainFilterForward); err != nil {
			return nil, err
		}
	}
	if err := hook(ChainNATPostrouting); err != nil {
		return nil, err
	}
	for _, s := range append(done, live...) {
		s.out.Verdict = "ACCEPT"
		outs = append(outs, s.out)
	}
	return outs, nil
}

const maxDepth = 32

// run traverses one chain.
func (t *tracer) run(chain string, st state, depth int) ([]branch, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("chain %s: too deep", chain)
	}
	c := t.rs.Chains[chain]
	if c == nil {
		return nil, fmt.Errorf("no chain %s", chain)
	}
	st.out.Path = append(slices.Clone(st.out.Path), chain)
	return t.from(c, 0, st, depth)
}

// from runs the rules of c from index i.
func (t *tracer) from(c *Chain, i int, st state, depth int) ([]branch, error) {
	if i >= len(c.Rules) {
		return []branch{{st: st}}, nil
	}
	res, err := t.rule(c.Name, c.Rules[i], st, depth)
	if err != nil {
		return nil, fmt.Errorf("chain %s rule %d: %w", c.Name, i+1, err)
	}
	var out []branch
	for _, r := range res {
		switch r.action {
		case "continue":
			more, err := t.from(c, i+1, r.st, depth)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		case "jump":
			sub, err := t.run(r.target, r.st, depth+1)
			if err != nil {
				return nil, err
			}
			for _, b := range sub {
				if b.verdict != "" {
					out = append(out, b)
					continue
				}
				more, err := t.from(c, i+1, b.st, depth)
				if err != nil {
					return nil, err
				}
				out = append(out, more...)
			}
		case "goto":
			sub, err := t.run(r.target, r.st, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case "return":
			out = append(out, branch{st: r.st})
		default:
			if r.action == "drop" || r.action == "reject" {
				r.st.out.Rule = c.Name + ": " + c.Rules[i]
			}
			out = append(out, branch{st: r.st, verdict: r.action})
		}
	}
	return out, nil
}

type result struct {
	st     state
	action string // continue, jump, goto, return, accept, drop, reject, dnat, masquerade
	target string
}

// rule evaluates one rule: its matches, then its statements or verdict.
func (t *tracer) rule(chain, text string, st state, depth int) ([]result, error) {
	w := words(text)
	if i := slices.Index(w, "comment"); i >= 0 {
		w = w[:i]
	}
	for len(w) > 0 {
		switch {
		case len(w) >= 3 && w[0] == "ct" && w[1] == "state":
			if w[2] != "new" {
				return []result{{st: st, action: "continue"}}, nil
			}
			w = w[3:]
		case len(w) >= 4 && w[0] == "fib" && w[2] == "type" && w[3] == "local":
			addr := st.src
			if w[1] == "daddr" {
				addr = st.dst
			}
			if !t.isLocal(addr) {
				return []result{{st: st, action: "continue"}}, nil
			}
			w = w[4:]
		case len(w) >= 3 && w[0] == "meta" && w[1] == "l4proto" && w[2] != ".":
			if w[2] != st.proto {
				return []result{{st: st, action: "continue"}}, nil
			}
			w = w[3:]
		case len(w) >= 5 && w[0] == "mark" && w[1] == "and":
			m, _ := strconv.ParseUint(w[2], 0, 32)
			v, _ := strconv.ParseUint(w[4], 0, 32)
			if (st.mark&m == v) != (w[3] == "==") {
				return []result{{st: st, action: "continue"}}, nil
			}
			w = w[5:]
		case len(w) >= 5 && w[0] == "mark" && w[1] == "set" && w[2] == "mark":
			v, _ := strconv.ParseUint(w[4], 0, 32)
			if w[3] == "or" {
				st.mark |= v
			} else {
				st.mark ^= v
			}
			w = w[5:]
		case len(w) >= 3 && w[0] == "ip" && (w[1] == "saddr" || w[1] == "daddr") && slices.Contains(w, "vmap") && w[2] == ".":
			// ip daddr . meta l4proto . th dport vmap @map
			return t.vmap(st, w[slices.Index(w, "vmap")+1], st.dst+" . "+st.proto+" . "+strconv.Itoa(st.dport))
		case len(w) >= 6 && w[0] == "meta" && w[1] == "l4proto" && w[2] == ".":
			return t.vmap(st, w[slices.Index(w, "vmap")+1], st.proto+" . "+strconv.Itoa(st.dport))
		case len(w) >= 3 && w[0] == "ip" && (w[1] == "saddr" || w[1] == "daddr"):
			addr := st.src
			if w[1] == "daddr" {
				addr = st.dst
			}
			neg := w[2] == "!="
			rest := w[2:]
			if neg {
				rest = w[3:]
			}
			var ok bool
			switch {
			case strings.HasPrefix(rest[0], "@"):
				ok = t.inSet(rest[0][1:], addr)
				if ok && IsAffinitySet(rest[0][1:]) {
					st.out.Affinity = rest[0][1:]
				}
				rest = rest[1:]
			case rest[0] == "{":
				end := slices.Index(rest, "}")
				for _, e := range rest[1:end] {
					if e != "," && inPrefix(e, addr) {
						ok = true
					}
				}
				rest = rest[end+1:]
			default:
				ok = inPrefix(rest[0], addr)
				rest = rest[1:]
			}
			if ok == neg {
				st.out.Affinity = ""
				return []result{{st: st, action: "continue"}}, nil
			}
			w = rest
		case w[0] == "numgen":
			// numgen random mod N vmap { 0 : goto A , 1 : goto B }
			n, err := strconv.Atoi(w[3])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("numgen: %q", text)
			}
			body := w[slices.Index(w, "{")+1 : slices.Index(w, "}")]
			var out []result
			for _, el := range splitOn(body, ",") {
				if len(el) < 4 {
					return nil, fmt.Errorf("numgen element %q", el)
				}
				b := st
				b.out.Probability /= float64(n)
				b.out.Path = append(slices.Clone(st.out.Path), "numgen random mod "+w[3]+": "+strings.Join(el, " "))
				out = append(out, result{st: b, action: el[2], target: el[3]})
			}
			return out, nil
		case w[0] == "update":
			st.out.Updated = append(slices.Clone(st.out.Updated), strings.TrimPrefix(w[1], "@"))
			w = w[slices.Index(w, "}")+1:]
		case w[0] == "dnat" && len(w) >= 3:
			st.out.DNAT = w[2]
			host, port, _ := strings.Cut(w[2], ":")
			st.dst = host
			if p, err := strconv.Atoi(port); err == nil {
				st.dport = p
			}
			st.dnatted = true
			return []result{{st: st, action: "dnat"}}, nil
		case w[0] == "masquerade":
			return []result{{st: st, action: "masquerade"}}, nil
		case w[0] == "jump" || w[0] == "goto":
			return []result{{st: st, action: w[0], target: w[1]}}, nil
		case w[0] == "return" || w[0] == "accept" || w[0] == "drop" || w[0] == "reject":
			return []result{{st: st, action: w[0]}}, nil
		default:
			return nil, fmt.Errorf("cannot trace %q", text)
		}
	}
	return []result{{st: st, action: "continue"}}, nil
}

// vmap looks key up in a verdict map; no element means the rule does not match.
func (t *tracer) vmap(st state, ref, key string) ([]result, error) {
	name := strings.TrimPrefix(ref, "@")
	m := t.rs.Containers[name]
	if m == nil {
		return nil, fmt.Errorf("no map %s", name)
	}
	e, ok := m.Elements[key]
	if !ok {
		return []result{{st: st, action: "continue"}}, nil
	}
	st.out.Path = append(slices.Clone(st.out.Path), name+": "+key+" : "+e.Value)
	verb, target, _ := strings.Cut(e.Value, " ")
	return []result{{st: st, action: verb, target: target}}, nil
}

func (t *tracer) inSet(name, addr string) bool {
	if IsAffinitySet(name) {
		return slices.Contains(t.aff[name], addr)
	}
	s := t.rs.Containers[name]
	if s == nil {
		return false
	}
	_, ok := s.Elements[addr]
	return ok
}

func inPrefix(cidr, addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	if p, err := netip.ParsePrefix(cidr); err == nil {
		return p.Contains(a)
	}
	b, err := netip.ParseAddr(cidr)
	return err == nil && a == b
}

// words splits rule text on spaces, keeping a quoted comment as one word.
func words(s string) []string {
	var out []string
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			break
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				out = append(out, s)
				break
			}
			out = append(out, s[:end+2])
			s = s[end+2:]
			continue
		}
		w, rest, _ := strings.Cut(s, " ")
		out = append(out, w)
		s = rest
	}
	return out
}

func splitOn(ws []string, sep string) [][]string {
	var out [][]string
	cur := []string{}
	for _, w := range ws {
		if w == sep {
			out = append(out, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, w)
	}
	return append(out, cur)
}

// Targets lists the distinct DNAT targets (or the verdict when there is none) of outs,
// sorted: a compact view for tests.
func Targets(outs []Outcome) []string {
	var ts []string
	for _, o := range outs {
		t := o.DNAT
		if o.Verdict != "ACCEPT" || t == "" {
			t = o.Verdict
		}
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts
}
