package kubeproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// This file is a pure packet tracer over iptables-restore text, in the spirit of
// kube-proxy's own tracePacket test helper: it parses the rules Render writes (plus the
// JumpRules in the built-in chains) and walks a new connection's first packet through
// nat and filter, exploring every random branch, so Service behaviour is tested without
// a kernel.

// Rule is one parsed "-A CHAIN ..." line.
type Rule struct {
	Table string
	Chain string
	// Line is the 1-based line number in the parsed text (0 for jump rules).
	Line int
	// Args are the words after "-A CHAIN", quotes removed.
	Args []string

	m      matcher
	target string
	toDest string
	// MARK as --set-xmark value/mask: mark = (mark &^ mask) ^ value. --or-mark X is X/X,
	// --xor-mark X is X/0 (iptables-save prints them that way).
	xmark, xmask uint32
	hasXmark     bool
}

type matcher struct {
	proto                  string
	src, dst               netip.Prefix
	srcNeg, dstNeg         bool
	dport                  int
	srcType, dstType       string
	srcTypeNeg, dstTypeNeg bool
	probability            float64
	hasProbability         bool
	recentName             string
	recentSet, recentCheck bool
	recentSeconds          int
	mark, markMask         uint32
	hasMark, markNeg       bool
	ctstates               []string
	ctNeg                  bool
	comment                string
}

// Ruleset is parsed iptables-restore text: table → chain → rules in order.
type Ruleset struct {
	Tables map[string]map[string][]*Rule
}

// Rules returns the rules of a chain.
func (rs *Ruleset) Rules(table, chain string) []*Rule { return rs.Tables[table][chain] }

// Chains returns the sorted chain names of a table.
func (rs *Ruleset) Chains(table string) []string {
	var out []string
	for c := range rs.Tables[table] {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Comment returns the rule's -m comment text, if any.
func (r *Rule) Comment() string { return r.m.comment }

// Target returns the rule's -j target.
func (r *Rule) Target() string { return r.target }

// splitWords splits an iptables-restore line into words, honouring double quotes.
func splitWords(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case (c == ' ' || c == '\t') && !inQuote:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// ParseRules parses iptables-restore text as Render writes it. Chain declarations create
// (and, as with --noflush, empty) chains; "-X" deletes them; "-A" appends rules. Built-in
// chains get the JumpRules, as an applier leaves them.
func ParseRules(data []byte) (*Ruleset, error) { return parse(data, true) }

// ParseSave parses iptables-save output of a node (filter and nat tables), whose
// built-in chains already hold the jump rules. "[packets:bytes]" counters (iptables-save
// -c) are ignored.
func ParseSave(data []byte) (*Ruleset, error) { return parse(data, false) }

func parse(data []byte, withJumps bool) (*Ruleset, error) {
	rs := &Ruleset{Tables: map[string]map[string][]*Rule{}}
	for _, jr := range JumpRules() {
		if !withJumps {
			break
		}
		r, err := parseRule(jr.Table, jr.Chain, jr.Args)
		if err != nil {
			return nil, fmt.Errorf("jump rule %v: %w", jr.Args, err)
		}
		t := rs.table(jr.Table)
		t[jr.Chain] = append([]*Rule{r}, t[jr.Chain]...) // prepended, as kube-proxy does
	}
	var table string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			if _, rest, ok := strings.Cut(line, "] "); ok {
				line = rest
			}
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			rs.table(table)
		case line == "COMMIT":
			table = ""
		case strings.HasPrefix(line, ":"):
			if table == "" {
				return nil, fmt.Errorf("line %d: chain outside a table", n)
			}
			name, _, _ := strings.Cut(line[1:], " ")
			rs.table(table)[name] = nil
		default:
			if table == "" {
				return nil, fmt.Errorf("line %d: rule outside a table", n)
			}
			words, err := splitWords(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if len(words) < 2 {
				return nil, fmt.Errorf("line %d: short rule %q", n, line)
			}
			switch words[0] {
			case "-X":
				delete(rs.table(table), words[1])
			case "-A":
				t := rs.table(table)
				if _, ok := t[words[1]]; !ok && !isBuiltin(words[1]) {
					return nil, fmt.Errorf("line %d: rule in undeclared chain %s", n, words[1])
				}
				r, err := parseRule(table, words[1], words[2:])
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", n, err)
				}
				r.Line = n
				t[words[1]] = append(t[words[1]], r)
			default:
				return nil, fmt.Errorf("line %d: unsupported command %q", n, words[0])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	// Every jump must reach a chain that exists.
	for tname, t := range rs.Tables {
		for cname, rules := range t {
			for _, r := range rules {
				if isBuiltinTarget(r.target) {
					continue
				}
				if _, ok := t[r.target]; !ok {
					return nil, fmt.Errorf("table %s chain %s: jump to missing chain %s", tname, cname, r.target)
				}
			}
		}
	}
	return rs, nil
}

func (rs *Ruleset) table(name string) map[string][]*Rule {
	t := rs.Tables[name]
	if t == nil {
		t = map[string][]*Rule{}
		rs.Tables[name] = t
	}
	return t
}

func isBuiltin(chain string) bool {
	switch chain {
	case "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING":
		return true
	}
	return false
}

func isBuiltinTarget(t string) bool {
	switch t {
	case "ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "SNAT", "MASQUERADE", "MARK", "":
		return true
	}
	return false
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("bad prefix %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseMark(s string) (val, mask uint32, err error) {
	v, m, hasMask := strings.Cut(s, "/")
	x, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad mark %q: %w", s, err)
	}
	mask = 0xffffffff
	if hasMask {
		y, err := strconv.ParseUint(m, 0, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("bad mark mask %q: %w", s, err)
		}
		mask = uint32(y)
	}
	return uint32(x), mask, nil
}

// parseRule understands the matches and targets kube-proxy uses; anything else is an
// error, so a rule is never silently ignored.
func parseRule(table, chain string, args []string) (*Rule, error) {
	r := &Rule{Table: table, Chain: chain, Args: args}
	m := &r.m
	neg := false
	next := func(i *int) (string, error) {
		*i++
		if *i >= len(args) {
			return "", fmt.Errorf("missing value after %s", args[*i-1])
		}
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var v string
		var err error
		if a != "!" && a != "--set" && a != "--rcheck" && a != "--reap" && a != "--random-fully" && a != "--rsource" {
			if v, err = next(&i); err != nil {
				return nil, err
			}
		}
		switch a {
		case "!":
			neg = true
			continue
		case "-m":
			switch v {
			case "comment", "tcp", "udp", "sctp", "addrtype", "statistic", "recent", "mark", "conntrack":
			default:
				return nil, fmt.Errorf("unsupported match module %q", v)
			}
		case "--comment":
			m.comment = v
		case "-p":
			m.proto = v
		case "-s":
			if m.src, err = parsePrefix(v); err != nil {
				return nil, err
			}
			m.srcNeg = neg
		case "-d":
			if m.dst, err = parsePrefix(v); err != nil {
				return nil, err
			}
			m.dstNeg = neg
		case "--dport":
			if m.dport, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("bad port %q: %w", v, err)
			}
		case "--dst-type":
			m.dstType, m.dstTypeNeg = v, neg
		case "--src-type":
			m.srcType, m.srcTypeNeg = v, neg
		case "--mode":
			if v != "random" {
				return nil, fmt.Errorf("unsupported statistic mode %q", v)
			}
		case "--probability":
			if m.probability, err = strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("bad probability %q: %w", v, err)
			}
			m.hasProbability = true
		case "--name":
			m.recentName = v
		case "--set":
			m.recentSet = true
		case "--rcheck":
			m.recentCheck = true
		case "--reap", "--rsource":
		case "--mask":
			if v != "255.255.255.255" {
				return nil, fmt.Errorf("unsupported recent mask %q", v)
			}
		case "--seconds":
			if m.recentSeconds, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("bad seconds %q: %w", v, err)
			}
		case "--mark":
			if m.mark, m.markMask, err = parseMark(v); err != nil {
				return nil, err
			}
			m.hasMark, m.markNeg = true, neg
		case "--ctstate":
			m.ctstates, m.ctNeg = strings.Split(v, ","), neg
		case "-j":
			r.target = v
		case "--to-destination":
			r.toDest = v
		case "--or-mark", "--xor-mark", "--set-xmark":
			val, mask, err := parseMark(v)
			if err != nil {
				return nil, err
			}
			switch a {
			case "--or-mark":
				mask = val
			case "--xor-mark":
				mask = 0
			}
			r.xmark, r.xmask, r.hasXmark = val, mask, true
		case "--random-fully":
		case "--reject-with":
		default:
			return nil, fmt.Errorf("unsupported option %q", a)
		}
		neg = false
	}
	if r.target == "DNAT" && r.toDest == "" {
		return nil, fmt.Errorf("DNAT without --to-destination")
	}
	return r, nil
}

// Packet is the first packet of a new connection as a node sees it.
type Packet struct {
	Src   string
	Dst   string
	DPort int
	// Proto is tcp, udp or sctp.
	Proto string
	// FromLocalProcess: sent by a process in the node's own namespace (nat OUTPUT path);
	// otherwise it arrived on an interface (a pod on cni0, a client via eth0: PREROUTING).
	FromLocalProcess bool
}

// TraceEnv is what the tracer needs to know about the node.
type TraceEnv struct {
	// LocalIPs are the node's own addresses (addrtype LOCAL); 127.0.0.0/8 always is.
	LocalIPs []string
	// Recent is the xt_recent state: list name → source addresses in it.
	Recent map[string][]string
}

// Outcome is one possible fate of the packet.
type Outcome struct {
	// Verdict is ACCEPT (delivered or forwarded), DROP or REJECT.
	Verdict string
	// DNAT is the "ip:port" the connection was rewritten to, or "".
	DNAT string
	// Masquerade: the source is rewritten by KUBE-POSTROUTING's MASQUERADE.
	Masquerade bool
	// Probability of this outcome among the random branches.
	Probability float64
	// RecentSet are the xt_recent lists the source was added to (ClientIP affinity).
	RecentSet []string
	// Affinity is the recent list whose --rcheck matched, "" when none did.
	Affinity        string
	AffinitySeconds int
	// Path lists the chains traversed, "table/chain".
	Path []string
}

type traceState struct {
	pkt      Packet
	mark     uint32
	out      Outcome
	ctDNAT   bool
	srcLocal bool
}

type branch struct {
	st      traceState
	verdict string // "" = returned / fell off the chain
}

type tracer struct {
	rs    *Ruleset
	local []netip.Addr
	rec   map[string][]string
}

func (t *tracer) isLocal(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	if a.IsLoopback() {
		return true
	}
	return slices.Contains(t.local, a)
}

// Trace walks pkt through nat and filter and returns every possible outcome.
func (rs *Ruleset) Trace(pkt Packet, env TraceEnv) ([]Outcome, error) {
	t := &tracer{rs: rs, rec: env.Recent}
	for _, s := range env.LocalIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("local ip %q: %w", s, err)
		}
		t.local = append(t.local, a)
	}
	start := traceState{pkt: pkt, out: Outcome{Probability: 1}}
	start.pkt.Proto = strings.ToLower(pkt.Proto)
	start.srcLocal = t.isLocal(pkt.Src)

	first := "PREROUTING"
	if pkt.FromLocalProcess {
		first = "OUTPUT"
	}
	natRes, err := t.run("nat", first, start, 0)
	if err != nil {
		return nil, err
	}
	var outs []Outcome
	for _, b := range natRes {
		if b.verdict == "DROP" || b.verdict == "REJECT" {
			b.st.out.Verdict = b.verdict
			outs = append(outs, b.st.out)
			continue
		}
		dstLocal := t.isLocal(b.st.pkt.Dst)
		var filterChains []string
		switch {
		case pkt.FromLocalProcess && dstLocal:
			filterChains = []string{"OUTPUT", "INPUT"}
		case pkt.FromLocalProcess:
			filterChains = []string{"OUTPUT"}
		case dstLocal:
			filterChains = []string{"INPUT"}
		default:
			filterChains = []string{"FORWARD"}
		}
		live := []traceState{b.st}
		for _, fc := range filterChains {
			var nextLive []traceState
			for _, st := range live {
				res, err := t.run("filter", fc, st, 0)
				if err != nil {
					return nil, err
				}
				for _, fb := range res {
					if fb.verdict == "DROP" || fb.verdict == "REJECT" {
						fb.st.out.Verdict = fb.verdict
						outs = append(outs, fb.st.out)
						continue
					}
					nextLive = append(nextLive, fb.st)
				}
			}
			live = nextLive
		}
		for _, st := range live {
			if !dstLocal {
				res, err := t.run("nat", "POSTROUTING", st, 0)
				if err != nil {
					return nil, err
				}
				for _, pb := range res {
					pb.st.out.Verdict = "ACCEPT"
					pb.st.out.Masquerade = pb.verdict == "MASQUERADE"
					outs = append(outs, pb.st.out)
				}
				continue
			}
			st.out.Verdict = "ACCEPT"
			outs = append(outs, st.out)
		}
	}
	return outs, nil
}

// run traverses one chain; each returned branch either fell off/returned (verdict "")
// or ended in a terminal verdict.
func (t *tracer) run(table, chain string, st traceState, depth int) ([]branch, error) {
	if depth > 32 {
		return nil, fmt.Errorf("chain nesting too deep at %s/%s", table, chain)
	}
	rules, ok := t.rs.Tables[table][chain]
	if !ok && !isBuiltin(chain) {
		return nil, fmt.Errorf("no chain %s/%s", table, chain)
	}
	st.out.Path = append(slices.Clip(st.out.Path), table+"/"+chain)
	live := []traceState{st}
	var done []branch
	for _, r := range rules {
		var next []traceState
		for _, s := range live {
			matched, unmatched := t.match(r, s)
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

// apply runs a matched rule's target. A "" verdict means: continue with the next rule.
func (t *tracer) apply(r *Rule, s traceState, depth int) ([]branch, error) {
	switch r.target {
	case "":
		return []branch{{st: s}}, nil
	case "RETURN":
		return []branch{{st: s, verdict: "RETURN"}}, nil
	case "ACCEPT", "DROP", "REJECT", "MASQUERADE":
		return []branch{{st: s, verdict: r.target}}, nil
	case "MARK":
		if r.hasXmark {
			s.mark = (s.mark &^ r.xmask) ^ r.xmark
		}
		return []branch{{st: s}}, nil
	case "DNAT":
		ap, err := netip.ParseAddrPort(r.toDest)
		if err != nil {
			return nil, fmt.Errorf("rule at line %d: bad DNAT target %q: %w", r.Line, r.toDest, err)
		}
		s.pkt.Dst = ap.Addr().String()
		s.pkt.DPort = int(ap.Port())
		s.out.DNAT = r.toDest
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

func prefixMatch(p netip.Prefix, addr string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && p.Contains(a)
}

// match splits s into the states that match r and those that do not (a random
// statistic match yields both, weighted).
func (t *tracer) match(r *Rule, s traceState) (matched, unmatched []traceState) {
	m := &r.m
	no := []traceState{s}
	if m.proto != "" && m.proto != s.pkt.Proto {
		return nil, no
	}
	if m.src.IsValid() && prefixMatch(m.src, s.pkt.Src) == m.srcNeg {
		return nil, no
	}
	if m.dst.IsValid() && prefixMatch(m.dst, s.pkt.Dst) == m.dstNeg {
		return nil, no
	}
	if m.dport != 0 && m.dport != s.pkt.DPort {
		return nil, no
	}
	if m.dstType != "" && (m.dstType == "LOCAL" && t.isLocal(s.pkt.Dst)) == m.dstTypeNeg {
		return nil, no
	}
	if m.srcType != "" && (m.srcType == "LOCAL" && s.srcLocal) == m.srcTypeNeg {
		return nil, no
	}
	if m.hasMark && ((s.mark&m.markMask) == m.mark) == m.markNeg {
		return nil, no
	}
	if m.ctstates != nil {
		states := []string{"NEW"}
		if s.ctDNAT {
			states = append(states, "DNAT")
		}
		hit := false
		for _, c := range m.ctstates {
			if slices.Contains(states, c) {
				hit = true
			}
		}
		if hit == m.ctNeg {
			return nil, no
		}
	}
	if m.recentCheck {
		if !slices.Contains(t.rec[m.recentName], s.pkt.Src) {
			return nil, no
		}
		s.out.Affinity = m.recentName
		s.out.AffinitySeconds = m.recentSeconds
	}
	if m.recentSet {
		s.out.RecentSet = append(slices.Clip(s.out.RecentSet), m.recentName)
	}
	if m.hasProbability {
		yes, not := s, s
		yes.out.Probability *= m.probability
		not.out.Probability *= 1 - m.probability
		return []traceState{yes}, []traceState{not}
	}
	return []traceState{s}, nil
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
