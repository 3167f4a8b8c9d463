package lb

// A small iptables model for unit tests: fakeKernel applies iptables-restore --noflush
// input the way the kernel does (declared chains are flushed, others left alone, -X
// deletes) and tracer walks new connections through the result, keeping the state the
// real matches keep (statistic nth counters per rule, xt_recent lists, the packet mark).
// It understands exactly the options Render writes and fails the test on anything else.
//
// Address plan used by the tests in this package:
//   VIPs            203.0.113.100 (:80, :443), 203.0.113.101 (:8080, UDP :53)
//   clients         203.0.113.2 .. 203.0.113.254
//   real servers    172.18.0.11 node-1, 172.18.0.12 node-2, 172.18.0.13 node-3,
//                   172.18.0.14 node-4

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

type fakeRule struct {
	args []string
}

type fakeKernel struct {
	t      testing.TB
	tables map[string]map[string][]*fakeRule
}

var builtin = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
}

var targets = map[string]bool{"DNAT": true, "REJECT": true, "HMARK": true, "ACCEPT": true, "RETURN": true, "DROP": true}

func newFakeKernel(t testing.TB) *fakeKernel {
	k := &fakeKernel{t: t, tables: map[string]map[string][]*fakeRule{}}
	for table, chains := range builtin {
		k.tables[table] = map[string][]*fakeRule{}
		for _, c := range chains {
			k.tables[table][c] = nil
		}
	}
	return k
}

// tokenize splits a rule line, honouring double quotes.
func tokenize(t testing.TB, line string) []string {
	var out []string
	for i := 0; i < len(line); {
		switch {
		case line[i] == ' ':
			i++
		case line[i] == '"':
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				t.Fatalf("unterminated quote in %q", line)
			}
			s, err := strconv.Unquote(line[i : j+1])
			if err != nil {
				t.Fatalf("bad quoted string in %q: %v", line, err)
			}
			out = append(out, s)
			i = j + 1
		default:
			j := i
			for j < len(line) && line[j] != ' ' {
				j++
			}
			out = append(out, line[i:j])
			i = j
		}
	}
	return out
}

// restore applies iptables-restore --noflush input; with jumps it then appends the
// missing JumpRules, as the agent does.
func (k *fakeKernel) restore(data []byte, jumps bool) {
	k.t.Helper()
	var table map[string][]*fakeRule
	var tname string
	for n, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			tname = line[1:]
			table = k.tables[tname]
			if table == nil {
				k.t.Fatalf("line %d: unknown table %q", n+1, tname)
			}
		case line == "COMMIT":
			table = nil
		case strings.HasPrefix(line, ":"):
			name := strings.Fields(line[1:])[0]
			if len(name) > 28 {
				k.t.Fatalf("line %d: chain name %q longer than 28", n+1, name)
			}
			table[name] = nil // create or flush
		case strings.HasPrefix(line, "-A "):
			toks := tokenize(k.t, line)
			chain := toks[1]
			if _, ok := table[chain]; !ok {
				k.t.Fatalf("line %d: -A to missing chain %s in %s", n+1, chain, tname)
			}
			table[chain] = append(table[chain], &fakeRule{args: toks[2:]})
		case strings.HasPrefix(line, "-X "):
			name := strings.TrimSpace(line[3:])
			if _, ok := table[name]; !ok {
				k.t.Fatalf("line %d: -X of missing chain %s", n+1, name)
			}
			for c, rules := range table {
				for _, r := range rules {
					if target(r) == name {
						k.t.Fatalf("line %d: -X of chain %s still referenced from %s", n+1, name, c)
					}
				}
			}
			delete(table, name)
		default:
			k.t.Fatalf("line %d: unexpected restore line %q", n+1, line)
		}
	}
	if table != nil {
		k.t.Fatalf("missing COMMIT for table %s", tname)
	}
	if jumps {
		for _, j := range JumpRules() {
			if _, ok := k.tables[j.Table][j.Target]; !ok {
				k.t.Fatalf("jump target %s missing in %s", j.Target, j.Table)
			}
			exists := slices.ContainsFunc(k.tables[j.Table][j.Chain], func(r *fakeRule) bool { return slices.Equal(r.args, j.Args) })
			if !exists {
				k.tables[j.Table][j.Chain] = append(k.tables[j.Table][j.Chain], &fakeRule{args: slices.Clone(j.Args)})
			}
		}
	}
	// Every jump must land somewhere.
	for tn, tab := range k.tables {
		for c, rules := range tab {
			for _, r := range rules {
				if tg := target(r); tg != "" && !targets[tg] {
					if _, ok := tab[tg]; !ok {
						k.t.Fatalf("%s %s jumps to missing chain %s", tn, c, tg)
					}
				}
			}
		}
	}
}

func target(r *fakeRule) string {
	for i, a := range r.args {
		if a == "-j" && i+1 < len(r.args) {
			return r.args[i+1]
		}
	}
	return ""
}

// chains lists every non-built-in chain (what the agent passes to Render as existing).
func (k *fakeKernel) chains() []string {
	var out []string
	for tn, tab := range k.tables {
		for c := range tab {
			if !slices.Contains(builtin[tn], c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// conn is the first packet of a new connection from a client to a VIP.
type conn struct {
	src   string
	dst   string
	dport int
	proto string // "tcp" (default) or "udp"
}

// verdict is what happened to a new connection.
type verdict struct {
	dnat   string // "ip:port" the connection was DNATed to
	rs     string // the NETLAB-RS chain that did it
	reject string // --reject-with of the REJECT that hit it
}

type tracer struct {
	t      testing.TB
	k      *fakeKernel
	now    time.Time
	rand   func() uint32
	nth    map[*fakeRule]uint32
	recent map[string]map[netip.Addr]time.Time
}

func newTracer(t testing.TB, k *fakeKernel) *tracer {
	return &tracer{
		t: t, k: k, now: time.Unix(1_700_000_000, 0),
		rand:   func() uint32 { t.Fatal("random statistic used without a random source"); return 0 },
		nth:    map[*fakeRule]uint32{},
		recent: map[string]map[netip.Addr]time.Time{},
	}
}

type pkt struct {
	conn
	src, dst netip.Addr
	mark     uint32
}

// newConn traces the first packet of a connection arriving from the wan: mangle and nat
// PREROUTING, then filter INPUT if it was not DNATed (the VIPs are local to the LB).
func (tr *tracer) newConn(c conn) verdict {
	tr.t.Helper()
	if c.proto == "" {
		c.proto = "tcp"
	}
	p := &pkt{conn: c, src: netip.MustParseAddr(c.src), dst: netip.MustParseAddr(c.dst)}
	var v verdict
	tr.run("mangle", "PREROUTING", p, &v, 0)
	if tr.run("nat", "PREROUTING", p, &v, 0) && v.dnat != "" {
		return v
	}
	tr.run("filter", "INPUT", p, &v, 0)
	return v
}

// run walks a chain; it returns true when a terminal target was hit.
func (tr *tracer) run(table, chain string, p *pkt, v *verdict, depth int) bool {
	tr.t.Helper()
	if depth > 10 {
		tr.t.Fatalf("chain loop at %s", chain)
	}
	rules, ok := tr.k.tables[table][chain]
	if !ok {
		tr.t.Fatalf("trace: missing chain %s/%s", table, chain)
	}
	for _, r := range rules {
		tg, opts, matched := tr.match(r, p)
		if !matched || tg == "" {
			continue
		}
		switch tg {
		case "RETURN":
			return false
		case "ACCEPT":
			return true
		case "DNAT":
			v.dnat = opt(tr.t, opts, "--to-destination")
			v.rs = chain
			return true
		case "REJECT":
			v.reject = opt(tr.t, opts, "--reject-with")
			return true
		case "HMARK":
			tr.hmark(p, opts)
		default:
			if tr.run(table, tg, p, v, depth+1) {
				return true
			}
		}
	}
	return false
}

func opt(t testing.TB, opts []string, name string) string {
	t.Helper()
	for i, o := range opts {
		if o == name && i+1 < len(opts) {
			return opts[i+1]
		}
	}
	t.Fatalf("option %s missing in %v", name, opts)
	return ""
}

func (tr *tracer) hmark(p *pkt, opts []string) {
	want := map[string]string{"--hmark-src-prefix": "32", "--hmark-dst-prefix": "0",
		"--hmark-sport-mask": "0", "--hmark-dport-mask": "0", "--hmark-proto-mask": "0"}
	for k, v := range want {
		if got := opt(tr.t, opts, k); got != v {
			tr.t.Fatalf("HMARK %s %s: the tracer only models %s", k, got, v)
		}
	}
	rnd, err1 := strconv.ParseUint(opt(tr.t, opts, "--hmark-rnd"), 0, 32)
	mod, err2 := strconv.ParseUint(opt(tr.t, opts, "--hmark-mod"), 0, 32)
	off, err3 := strconv.ParseUint(opt(tr.t, opts, "--hmark-offset"), 0, 32)
	if err1 != nil || err2 != nil || err3 != nil {
		tr.t.Fatalf("bad HMARK options %v", opts)
	}
	p.mark = hmarkHash(p.src.As4(), uint32(rnd), uint32(mod), uint32(off))
}

var segStart = map[string]bool{"-d": true, "-s": true, "-p": true, "-m": true, "-j": true}

// match evaluates a rule's matches in order, short-circuiting like the kernel (a
// statistic or recent match after a failed match is not evaluated). It returns the
// target and its options.
func (tr *tracer) match(r *fakeRule, p *pkt) (string, []string, bool) {
	tr.t.Helper()
	var segs [][]string
	for _, a := range r.args {
		if segStart[a] || len(segs) == 0 {
			segs = append(segs, []string{a})
			continue
		}
		segs[len(segs)-1] = append(segs[len(segs)-1], a)
	}
	for _, s := range segs {
		switch s[0] {
		case "-j":
			return s[1], s[2:], true
		case "-d", "-s":
			pfx := netip.MustParsePrefix(s[1])
			a := p.dst
			if s[0] == "-s" {
				a = p.src
			}
			if !pfx.Contains(a) {
				return "", nil, false
			}
		case "-p":
			if s[1] != p.proto {
				return "", nil, false
			}
		case "-m":
			if !tr.module(r, s[1], s[2:], p) {
				return "", nil, false
			}
		default:
			tr.t.Fatalf("unmodelled rule segment %v", s)
		}
	}
	return "", nil, true
}

func (tr *tracer) module(r *fakeRule, mod string, o []string, p *pkt) bool {
	tr.t.Helper()
	kv := map[string]string{}
	flags := map[string]bool{}
	for i := 0; i < len(o); i++ {
		switch o[i] {
		case "--rcheck", "--set", "--reap", "--rsource":
			flags[o[i]] = true
		default:
			if i+1 >= len(o) {
				tr.t.Fatalf("option %s without value in -m %s", o[i], mod)
			}
			kv[o[i]] = o[i+1]
			i++
		}
	}
	known := func(names ...string) {
		for k := range kv {
			if !slices.Contains(names, k) {
				tr.t.Fatalf("unmodelled option -m %s %s", mod, k)
			}
		}
	}
	switch mod {
	case "comment":
		known("--comment")
		return true
	case "tcp", "udp":
		known("--dport")
		if mod != p.proto {
			tr.t.Fatalf("-m %s on a %s packet", mod, p.proto)
		}
		if d, ok := kv["--dport"]; ok {
			return d == strconv.Itoa(p.dport)
		}
		return true
	case "conntrack":
		known("--ctstate")
		return kv["--ctstate"] == "NEW" // every traced packet starts a connection
	case "mark":
		known("--mark")
		v, m, found := strings.Cut(kv["--mark"], "/")
		val, _ := strconv.ParseUint(v, 0, 32)
		mask := uint64(0xffffffff)
		if found {
			mask, _ = strconv.ParseUint(m, 0, 32)
		}
		return uint64(p.mark)&mask == val
	case "statistic":
		switch kv["--mode"] {
		case "nth":
			known("--mode", "--every", "--packet")
			every, _ := strconv.Atoi(kv["--every"])
			packet, _ := strconv.Atoi(kv["--packet"])
			e := uint32(every - 1)
			count, ok := tr.nth[r]
			if !ok {
				count = e - uint32(packet) // libxt_statistic: count = every-1 - packet
			}
			// xt_statistic: nval = (oval == every-1) ? 0 : oval+1; match when nval == 0.
			if count == e {
				count = 0
			} else {
				count++
			}
			tr.nth[r] = count
			return count == 0
		case "random":
			known("--mode", "--probability")
			f, err := strconv.ParseFloat(kv["--probability"], 64)
			if err != nil {
				tr.t.Fatalf("bad probability %q", kv["--probability"])
			}
			prob := uint32(f * 0x80000000)
			return tr.rand()&0x7fffffff < prob
		}
		tr.t.Fatalf("unmodelled statistic mode %q", kv["--mode"])
	case "recent":
		known("--name", "--mask", "--seconds")
		if kv["--mask"] != "255.255.255.255" || !flags["--rsource"] {
			tr.t.Fatalf("recent: the tracer models only --rsource with a full mask")
		}
		list := tr.recent[kv["--name"]]
		if list == nil {
			list = map[netip.Addr]time.Time{}
			tr.recent[kv["--name"]] = list
		}
		switch {
		case flags["--set"]:
			list[p.src] = tr.now
			return true
		case flags["--rcheck"]:
			secs, _ := strconv.Atoi(kv["--seconds"])
			last, ok := list[p.src]
			if ok && flags["--reap"] && tr.now.Sub(last) > time.Duration(secs)*time.Second {
				delete(list, p.src)
			}
			return ok && tr.now.Sub(last) <= time.Duration(secs)*time.Second
		}
		tr.t.Fatalf("unmodelled recent flags %v", flags)
	}
	tr.t.Fatalf("unmodelled match module %q", mod)
	return false
}

// apply renders vss against the kernel's current chains and restores the result.
func apply(t testing.TB, k *fakeKernel, vss []VirtualService) []byte {
	t.Helper()
	out, err := Render(vss, k.chains())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	k.restore(out, true)
	return out
}

// backendOf names the backend a verdict went to, or "REJECT <how>" / "none".
func backendOf(vs VirtualService, v verdict) string {
	if v.reject != "" {
		return "REJECT " + v.reject
	}
	for _, b := range vs.Backends {
		if b.Addr() == v.dnat {
			return b.Name
		}
	}
	if v.dnat != "" {
		return fmt.Sprintf("unknown %s", v.dnat)
	}
	return "none"
}
