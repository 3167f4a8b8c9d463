package lb

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Chains netlab owns in the LB namespace. Fixed chains are jumped to from built-in chains
// (JumpRules); per-object chains carry a hash, like kube-proxy's, and are at most 26
// characters long.
const (
	ChainServices = "NETLAB-LB-SERVICES" // nat: VIP:port -> NETLAB-VS-*
	ChainHash     = "NETLAB-LB-HASH"     // mangle: HMARK for sh services
	ChainFilter   = "NETLAB-LB-FILTER"   // filter: REJECT for services without a usable backend
	ChainStats    = "NETLAB-LB-STATS"    // filter: -> the current NETLAB-ST-* chain

	PrefixVS = "NETLAB-VS-" // nat: one per virtual service: persistence, then scheduling
	PrefixRS = "NETLAB-RS-" // nat: one per (virtual service, real server): recent --set, DNAT
	PrefixST = "NETLAB-ST-" // filter: per-real-server packet/byte counters, named by content
)

// hash16 is kube-proxy's chain hash: the first 16 characters of the base32 encoding of
// the sha256 of the parts.
func hash16(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "|")))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

// VSChain is the nat chain of a virtual service; it depends only on the service's key.
func VSChain(vs VirtualService) string {
	return PrefixVS + hash16("vs", vs.Key())
}

// RSChain is the nat chain that DNATs a virtual service's new connections to one real
// server. Its name hashes everything its rules contain, so a chain of that name that
// already exists holds exactly these rules and Render leaves it (and its counters)
// alone. With persistence, the xt_recent list of the real server's clients has the
// same name (/proc/net/xt_recent/<name> in the LB namespace).
func RSChain(vs VirtualService, b Backend) string {
	return PrefixRS + hash16("rs", vs.Key(), vs.label(), b.label(), b.Addr(), persistSeconds(vs))
}

func persistSeconds(vs VirtualService) string {
	return strconv.FormatInt(int64(vs.Persistence.Seconds()), 10)
}

// tableOf says which table holds a per-object chain, by prefix; "" if netlab does not
// own it.
func tableOf(chain string) string {
	switch {
	case strings.HasPrefix(chain, PrefixVS), strings.HasPrefix(chain, PrefixRS):
		return "nat"
	case strings.HasPrefix(chain, PrefixST), strings.HasPrefix(chain, PrefixFW):
		return "filter"
	}
	return ""
}

// JumpRule is one rule in a built-in chain that jumps to a netlab LB chain. Args are the
// complete rule arguments for go-iptables (matches, comment, "-j", Target).
type JumpRule struct {
	Table  string   `json:"table"`
	Chain  string   `json:"chain"`
	Target string   `json:"target"`
	Args   []string `json:"args"`
}

// JumpRules returns the jumps from built-in chains, in order. An applier appends each
// missing one after Render's output has been restored (it declares every Target).
// nat and mangle OUTPUT are hooked too so that a VIP also works from inside the LB
// namespace; filter INPUT/FORWARD/OUTPUT reject connections to a VIP that has no usable
// real server (an un-DNATed packet to a local VIP goes to INPUT).
func JumpRules() []JumpRule {
	table := []struct{ table, chain, target, comment string }{
		{"mangle", "PREROUTING", ChainHash, "netlab lb source hash"},
		{"mangle", "OUTPUT", ChainHash, "netlab lb source hash"},
		{"nat", "PREROUTING", ChainServices, "netlab lb virtual services"},
		{"nat", "OUTPUT", ChainServices, "netlab lb virtual services"},
		{"filter", "FORWARD", ChainStats, "netlab lb real server counters"},
		{"filter", "INPUT", ChainFilter, "netlab lb services without real servers"},
		{"filter", "FORWARD", ChainFilter, "netlab lb services without real servers"},
		{"filter", "OUTPUT", ChainFilter, "netlab lb services without real servers"},
	}
	out := make([]JumpRule, 0, len(table))
	for _, r := range table {
		out = append(out, JumpRule{
			Table: r.table, Chain: r.chain, Target: r.target,
			Args: []string{"-m", "comment", "--comment", r.comment, "-j", r.target},
		})
	}
	return out
}

// tableBuf collects one table's section of the restore input.
type tableBuf struct {
	name    string
	chains  []string // declared (and so flushed) chains, in order
	rules   []string
	deletes []string
}

func (t *tableBuf) declare(chain string) { t.chains = append(t.chains, chain) }

// add appends "-A chain args...", quoting arguments that contain spaces.
func (t *tableBuf) add(chain string, args ...string) {
	t.rules = append(t.rules, ruleLine(chain, args...))
}

func ruleLine(chain string, args ...string) string {
	var b strings.Builder
	b.WriteString("-A ")
	b.WriteString(chain)
	for _, a := range args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t") {
			b.WriteString(strconv.Quote(a))
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

func (t *tableBuf) write(w *bytes.Buffer) {
	fmt.Fprintf(w, "*%s\n", t.name)
	for _, c := range t.chains {
		fmt.Fprintf(w, ":%s - [0:0]\n", c)
	}
	for _, r := range t.rules {
		w.WriteString(r)
		w.WriteByte('\n')
	}
	for _, c := range t.deletes {
		fmt.Fprintf(w, "-X %s\n", c)
	}
	w.WriteString("COMMIT\n")
}

// Render returns the iptables-restore --noflush input that programs vss in the LB
// namespace. existing lists the chains that exist there now (any table; only netlab's
// per-object chains matter): stale NETLAB-VS/RS/ST chains are flushed and deleted, and
// NETLAB-RS/ST chains that exist with the right content are not rewritten, so their
// counters survive a health change. The output is deterministic: services are sorted by
// VIP, port and protocol; backends keep their order.
func Render(vss []VirtualService, existing []string) ([]byte, error) {
	if err := Validate(vss); err != nil {
		return nil, fmt.Errorf("invalid virtual services: %w", err)
	}
	vss = sortServices(vss)
	have := map[string]bool{}
	for _, c := range existing {
		have[c] = true
	}
	want := map[string]bool{}

	filter := &tableBuf{name: "filter"}
	mangle := &tableBuf{name: "mangle"}
	nat := &tableBuf{name: "nat"}
	filter.declare(ChainFilter)
	filter.declare(ChainStats)
	mangle.declare(ChainHash)
	nat.declare(ChainServices)

	var stats [][]string
	for _, vs := range vss {
		vsChain := VSChain(vs)
		want[vsChain] = true
		nat.declare(vsChain)
		match := vipMatch(vs)
		sourceFirewall(filter, vs, want)
		nat.add(ChainServices, append(append([]string{}, match...),
			"-m", "comment", "--comment", vs.label()+" virtual service", "-j", vsChain)...)

		// Real server chains for every configured backend: a backend that fails keeps its
		// chain (and counters) and only loses the jumps to it.
		for _, b := range vs.Backends {
			rs := RSChain(vs, b)
			want[rs] = true
			stats = append(stats, statsRules(vs, b)...)
			if have[rs] {
				continue
			}
			nat.declare(rs)
			args := []string{"-p", strings.ToLower(vs.proto()), "-m", "comment", "--comment", vs.label() + " -> " + b.label()}
			if vs.Persistence > 0 {
				args = append(args, "-m", "recent", "--set", "--name", rs, "--mask", "255.255.255.255", "--rsource")
			}
			args = append(args, "-j", "DNAT", "--to-destination", b.Addr())
			nat.add(rs, args...)
		}

		usable := usableBackends(vs)
		if len(usable) == 0 {
			reject := "tcp-reset"
			if vs.proto() == ProtoUDP {
				reject = "icmp-port-unreachable"
			}
			filter.add(ChainFilter, append(append([]string{}, match...),
				"-m", "comment", "--comment", vs.label()+" has no usable real server",
				"-j", "REJECT", "--reject-with", reject)...)
			continue
		}
		if vs.Persistence > 0 {
			for _, i := range usable {
				b := vs.Backends[i]
				rs := RSChain(vs, b)
				nat.add(vsChain, "-m", "comment", "--comment", vs.label()+" -> "+b.label()+" persistent",
					"-m", "recent", "--rcheck", "--seconds", persistSeconds(vs), "--reap",
					"--name", rs, "--mask", "255.255.255.255", "--rsource", "-j", rs)
			}
		}
		switch vs.scheduler() {
		case SchedRR:
			nthRules(nat, vs, usable)
		case SchedWRR:
			weights := make([]int, len(usable))
			for k, i := range usable {
				weights[k] = vs.Backends[i].Weight
			}
			seq := WRRSequence(weights)
			slots := make([]int, len(seq))
			for k, s := range seq {
				slots[k] = usable[s]
			}
			nthRules(nat, vs, slots)
		case SchedRandom:
			randomRules(nat, vs, usable)
		case SchedSH:
			mangle.add(ChainHash, append(append([]string{}, match...),
				"-m", "conntrack", "--ctstate", "NEW",
				"-m", "comment", "--comment", vs.label()+" source hash",
				"-j", "HMARK", "--hmark-src-prefix", "32", "--hmark-dst-prefix", "0",
				"--hmark-sport-mask", "0", "--hmark-dport-mask", "0", "--hmark-proto-mask", "0",
				"--hmark-rnd", fmt.Sprintf("0x%08x", hmarkSeed(vs.Key())),
				"--hmark-mod", strconv.Itoa(SHBuckets), "--hmark-offset", fmt.Sprintf("0x%x", SHMarkBase))...)
			shRules(nat, vs, SHTable(vs))
		}
	}

	// Counters: one content-addressed chain, rewritten only when the set of real
	// servers changes.
	lines := []string{"st"}
	for _, r := range stats {
		lines = append(lines, ruleLine("", r...))
	}
	st := PrefixST + hash16(lines...)
	want[st] = true
	filter.add(ChainStats, "-j", st)
	if !have[st] {
		filter.declare(st)
		for _, r := range stats {
			filter.add(st, r...)
		}
	}

	// Stale per-object chains: declare (flush) then delete, after every rule that could
	// have referenced them has been rewritten.
	stale := make([]string, 0)
	for c := range have {
		if tableOf(c) != "" && !want[c] {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	for _, c := range stale {
		t := nat
		if tableOf(c) == "filter" {
			t = filter
		}
		t.declare(c)
		t.deletes = append(t.deletes, c)
	}

	var out bytes.Buffer
	for _, t := range []*tableBuf{filter, mangle, nat} {
		t.write(&out)
	}
	return out.Bytes(), nil
}

// vipMatch matches packets to the virtual service's VIP:port.
func vipMatch(vs VirtualService) []string {
	proto := strings.ToLower(vs.proto())
	return []string{"-d", vs.VIP + "/32", "-p", proto, "-m", proto, "--dport", strconv.Itoa(vs.Port)}
}

// statsRules are the arguments of the rules that count one real server's packets
// and bytes in each direction, for connections to this virtual service.
func statsRules(vs VirtualService, b Backend) [][]string {
	proto := strings.ToLower(vs.proto())
	ct := []string{"-m", "conntrack", "--ctorigdst", vs.VIP + "/32", "--ctorigdstport", strconv.Itoa(vs.Port)}
	in := append([]string{"-d", b.IP + "/32", "-p", proto, "-m", proto, "--dport", strconv.Itoa(b.Port)}, ct...)
	in = append(in, "-m", "comment", "--comment", StatsComment(vs, b, true))
	out := append([]string{"-s", b.IP + "/32", "-p", proto, "-m", proto, "--sport", strconv.Itoa(b.Port)}, ct...)
	out = append(out, "-m", "comment", "--comment", StatsComment(vs, b, false))
	return [][]string{in, out}
}

// StatsComment is the comment of the counter rule for one direction of a real server of
// a virtual service; `netlab lb` finds the counters by it.
func StatsComment(vs VirtualService, b Backend, in bool) string {
	dir := "out"
	if in {
		dir = "in"
	}
	return fmt.Sprintf("%s %s %s %s", vs.Key(), b.Addr(), dir, b.label())
}

// usableBackends lists the indexes of backends that may get new connections.
func usableBackends(vs VirtualService) []int {
	var out []int
	for i, b := range vs.Backends {
		if b.Usable() {
			out = append(out, i)
		}
	}
	return out
}

// nthRules sends sequential new connections to slots in turn: rule k sees the
// connections the rules before it did not take and takes the first of every n-k, so the
// k-th connection of every cycle of n goes to slots[k].
func nthRules(t *tableBuf, vs VirtualService, slots []int) {
	n := len(slots)
	for k, i := range slots {
		b := vs.Backends[i]
		args := []string{"-m", "comment", "--comment", vs.label() + " -> " + b.label()}
		if left := n - k; left > 1 {
			args = append(args, "-m", "statistic", "--mode", "nth", "--every", strconv.Itoa(left), "--packet", "0")
		}
		t.add(VSChain(vs), append(args, "-j", RSChain(vs, b))...)
	}
}

// randomRules picks backend k with probability weight_k / (sum of the weights from k on),
// which makes the overall choice proportional to the weights.
func randomRules(t *tableBuf, vs VirtualService, usable []int) {
	rest := 0
	for _, i := range usable {
		rest += vs.Backends[i].Weight
	}
	for k, i := range usable {
		b := vs.Backends[i]
		args := []string{"-m", "comment", "--comment", vs.label() + " -> " + b.label()}
		if k < len(usable)-1 {
			p := float64(b.Weight) / float64(rest)
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%0.10f", p))
		}
		rest -= b.Weight
		t.add(VSChain(vs), append(args, "-j", RSChain(vs, b))...)
	}
}

// shRules maps bucket marks to real servers, merging runs of buckets with the same owner
// into aligned power-of-two blocks matched with a mark mask.
func shRules(t *tableBuf, vs VirtualService, table []int) {
	for b := 0; b < len(table); {
		owner := table[b]
		size := 1
		for next := size * 2; b%next == 0 && b+next <= len(table) && allSame(table[b:b+next], owner); next *= 2 {
			size = next
		}
		if owner >= 0 {
			mark := fmt.Sprintf("0x%x", SHMarkBase+b)
			if size > 1 {
				mark += fmt.Sprintf("/0x%x", ^uint32(size-1))
			}
			rb := vs.Backends[owner]
			what := fmt.Sprintf("bucket %d", b)
			if size > 1 {
				what = fmt.Sprintf("buckets %d-%d", b, b+size-1)
			}
			t.add(VSChain(vs), "-m", "comment", "--comment", vs.label()+" -> "+rb.label()+" "+what,
				"-m", "mark", "--mark", mark, "-j", RSChain(vs, rb))
		}
		b += size
	}
}

func allSame(s []int, v int) bool {
	for _, x := range s {
		if x != v {
			return false
		}
	}
	return true
}

// sortServices returns vss sorted by VIP, port and protocol.
func sortServices(vss []VirtualService) []VirtualService {
	out := slices.Clone(vss)
	slices.SortStableFunc(out, func(a, b VirtualService) int {
		aa, _ := netip.ParseAddr(a.VIP)
		ba, _ := netip.ParseAddr(b.VIP)
		if c := aa.Compare(ba); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		return cmp.Compare(a.proto(), b.proto())
	})
	return out
}
