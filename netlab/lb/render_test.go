package lb

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netlabdev/netlab/netlab/internal/iptablestest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// nodes returns real servers node-1..node-n on port, weight 1, healthy.
func nodes(n, port int) []Backend {
	out := make([]Backend, n)
	for i := range out {
		out[i] = Backend{Name: fmt.Sprintf("node-%d", i+1), IP: fmt.Sprintf("172.18.0.%d", 11+i), Port: port, Weight: 1, Healthy: true}
	}
	return out
}

func vsWith(sched string, backends []Backend) VirtualService {
	return VirtualService{Name: "ingress-http", VIP: "203.0.113.100", Port: 80, Scheduler: sched, Backends: backends}
}

func TestRenderGolden(t *testing.T) {
	down := func(bs []Backend, i int) []Backend { bs[i].Healthy = false; return bs }
	weighted := func(ws ...int) []Backend {
		bs := nodes(len(ws), 80)
		for i, w := range ws {
			bs[i].Weight = w
		}
		return bs
	}
	persistent := vsWith(SchedRR, nodes(2, 80))
	persistent.Persistence = 30 * time.Second
	udp := VirtualService{Name: "default/dns:dns", VIP: "203.0.113.101", Port: 53, Protocol: "UDP", Backends: down(nodes(2, 30053), 0)}
	https := VirtualService{Name: "ingress-https", VIP: "203.0.113.100", Port: 443, Scheduler: SchedSH, Backends: nodes(2, 443)}
	lbsvc := VirtualService{Name: "default/shop:http", VIP: "203.0.113.101", Port: 8080, Scheduler: SchedWRR, Backends: weighted(2, 1)}
	for i := range lbsvc.Backends {
		lbsvc.Backends[i].Port = 31080
	}

	cases := []struct {
		name     string
		vss      []VirtualService
		existing []string
	}{
		{"rr", []VirtualService{vsWith(SchedRR, down(nodes(3, 80), 1))}, nil},
		{"wrr", []VirtualService{vsWith(SchedWRR, weighted(3, 2, 1))}, nil},
		{"sh", []VirtualService{vsWith(SchedSH, down(nodes(3, 80), 1))}, nil},
		{"random", []VirtualService{vsWith(SchedRandom, weighted(1, 2, 1))}, nil},
		{"persistence", []VirtualService{persistent}, nil},
		{"no-usable-backend", []VirtualService{vsWith(SchedRR, down(down(nodes(2, 80), 0), 1)), udp}, nil},
		{"inhibit-weight-0", []VirtualService{vsWith(SchedWRR, weighted(2, 0, 1))}, nil},
		{"lab", []VirtualService{lbsvc, https, vsWith(SchedRR, nodes(2, 80))}, nil},
		{"existing-and-stale", []VirtualService{vsWith(SchedRR, nodes(2, 80))}, []string{
			RSChain(vsWith(SchedRR, nodes(2, 80)), nodes(2, 80)[0]), // kept as is
			PrefixRS + "STALESTALESTALE0", PrefixVS + "STALESTALESTALE1", PrefixST + "STALESTALESTALE2",
			"KUBE-SERVICES", // not ours: ignored
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Render(c.vss, c.existing)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			// Rendering is deterministic, whatever the input order.
			rev := slices.Clone(c.vss)
			slices.Reverse(rev)
			again, _ := Render(rev, c.existing)
			if diff := cmp.Diff(string(got), string(again)); diff != "" {
				t.Errorf("output depends on service order (-first +reversed):\n%s", diff)
			}
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test -update): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("rules differ from %s (-want +got):\n%s", path, diff)
			}
			// And the kernel model accepts it.
			k := newFakeKernel(t)
			for _, c := range c.existing {
				switch tableOf(c) {
				case "nat", "filter":
					k.declare(tableOf(c), c)
				}
			}
			k.restore(got, true)
		})
	}
}

func TestChainNames(t *testing.T) {
	long := VirtualService{Name: strings.Repeat("n", 100), VIP: "203.0.113.100", Port: 65535, Backends: []Backend{{Name: strings.Repeat("b", 100), IP: "172.18.0.11", Port: 65535, Weight: 1}}}
	for _, c := range []string{ChainServices, ChainHash, ChainFilter, ChainStats, VSChain(long), RSChain(long, long.Backends[0])} {
		if len(c) > 28 {
			t.Errorf("chain %q is %d characters, over iptables' 28", c, len(c))
		}
	}
	a, b := vsWith(SchedRR, nodes(2, 80)), vsWith(SchedRR, nodes(2, 80))
	b.Port = 443
	if VSChain(a) == VSChain(b) || RSChain(a, a.Backends[0]) == RSChain(a, a.Backends[1]) || RSChain(a, a.Backends[0]) == RSChain(b, b.Backends[0]) {
		t.Error("distinct services or real servers share a chain name")
	}
	// The VS chain depends on the key only; the RS chain on everything its rules contain.
	c := a
	c.Scheduler = SchedSH
	if VSChain(a) != VSChain(c) {
		t.Error("VS chain name changed with the scheduler")
	}
	c.Persistence = time.Minute
	if RSChain(a, a.Backends[0]) == RSChain(c, c.Backends[0]) {
		t.Error("RS chain name did not change with persistence, which changes its rules")
	}
}

func TestValidate(t *testing.T) {
	good := vsWith(SchedRR, nodes(2, 80))
	if err := Validate([]VirtualService{good}); err != nil {
		t.Fatalf("valid service rejected: %v", err)
	}
	bad := []VirtualService{
		{Name: `a"b`, VIP: "2001:db8::1", Port: 0, Protocol: "SCTP", Scheduler: "lc", Persistence: 1500 * time.Millisecond,
			Backends: []Backend{
				{Name: "x", IP: "not-an-ip", Port: 70000, Weight: -1},
				{Name: "y", IP: "172.18.0.11", Port: 80, Weight: 1},
				{Name: "z", IP: "172.18.0.11", Port: 80, Weight: 1},
			}},
		good, good, // duplicate key
		{Name: "w", VIP: "203.0.113.102", Port: 80, Scheduler: SchedWRR, Backends: []Backend{
			{Name: "a", IP: "172.18.0.11", Port: 80, Weight: 200}, {Name: "b", IP: "172.18.0.12", Port: 80, Weight: 100}}},
	}
	err := Validate(bad)
	if err == nil {
		t.Fatal("invalid services accepted")
	}
	if !errors.Is(err, ErrLCUnsupported) {
		t.Errorf("lc not reported with ErrLCUnsupported: %v", err)
	}
	for _, want := range []string{"name:", "vip", "port 0", "SCTP", "persistence", "not-an-ip", "70000", "weight -1", "listed twice", "duplicates TCP:203.0.113.100:80", "wrr weights sum to 300"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := Render(bad, nil); err == nil {
		t.Error("Render accepted invalid services")
	}
	for _, s := range []string{"", "rr", "WRR", "sh", "random"} {
		if err := ValidateScheduler(s); err != nil {
			t.Errorf("ValidateScheduler(%q): %v", s, err)
		}
	}
	if err := ValidateScheduler("mh"); err == nil {
		t.Error("unknown scheduler accepted")
	}
}

func TestWRRSequenceIPVS(t *testing.T) {
	// Worked through ip_vs_wrr.c by hand: weights 4,3,2 (gcd 1, max 4) step the current
	// weight 4,3,2,1 and pick every server at least that heavy, in order.
	cases := []struct {
		weights []int
		want    []int
	}{
		{[]int{4, 3, 2}, []int{0, 0, 1, 0, 1, 2, 0, 1, 2}},
		{[]int{1, 1, 1}, []int{0, 1, 2}},
		{[]int{2, 4}, []int{1, 0, 1}}, // gcd 2: one cycle is 1 + 2 slots
		{[]int{3, 0, 1}, []int{0, 0, 0, 2}},
		{[]int{0, 0}, nil},
	}
	for _, c := range cases {
		got := WRRSequence(c.weights)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("WRRSequence(%v) (-want +got):\n%s", c.weights, diff)
		}
	}
	// Any weights: each server appears weight/gcd times per cycle.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		ws := make([]int, 1+r.IntN(5))
		for i := range ws {
			ws[i] = r.IntN(7)
		}
		seq := WRRSequence(ws)
		g := 0
		for _, w := range ws {
			if w > 0 {
				g = gcd(g, w)
			}
		}
		for i, w := range ws {
			n := 0
			for _, s := range seq {
				if s == i {
					n++
				}
			}
			if w > 0 && n != w/g || w <= 0 && n != 0 {
				t.Fatalf("WRRSequence(%v) = %v: server %d appears %d times", ws, seq, i, n)
			}
		}
	}
}

// trace sends n sequential new connections from client to the VIP and returns where
// each one went.
func trace(tr *tracer, vs VirtualService, n int, client func(i int) string) []string {
	var out []string
	for i := range n {
		v := tr.newConn(conn{src: client(i), dst: vs.VIP, dport: vs.Port, proto: strings.ToLower(vs.proto())})
		out = append(out, backendOf(vs, v))
	}
	return out
}

func sameClient(int) string { return "203.0.113.2" }

func manyClients(i int) string { return fmt.Sprintf("203.0.113.%d", 2+i%250) }

func TestTraceRoundRobin(t *testing.T) {
	vs := vsWith(SchedRR, nodes(3, 80))
	k := newFakeKernel(t)
	apply(t, k, []VirtualService{vs})
	tr := newTracer(t, k)
	got := trace(tr, vs, 9, manyClients)
	want := []string{"node-1", "node-2", "node-3", "node-1", "node-2", "node-3", "node-1", "node-2", "node-3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rr over 3 servers (-want +got):\n%s", diff)
	}

	// node-2 fails: the rules are re-rendered (fresh counters) and it gets nothing new.
	vs.Backends[1].Healthy = false
	apply(t, k, []VirtualService{vs})
	tr = newTracer(t, k)
	got = trace(tr, vs, 4, sameClient)
	if diff := cmp.Diff([]string{"node-1", "node-3", "node-1", "node-3"}, got); diff != "" {
		t.Fatalf("rr without node-2 (-want +got):\n%s", diff)
	}
}

func TestTraceWeightedRoundRobin(t *testing.T) {
	vs := vsWith(SchedWRR, nodes(3, 80))
	for i, w := range []int{4, 3, 2} {
		vs.Backends[i].Weight = w
	}
	k := newFakeKernel(t)
	apply(t, k, []VirtualService{vs})
	tr := newTracer(t, k)
	got := trace(tr, vs, 18, manyClients)
	var want []string
	for range 2 {
		for _, i := range WRRSequence([]int{4, 3, 2}) {
			want = append(want, vs.Backends[i].Name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("wrr 4:3:2 does not follow IPVS's sequence (-want +got):\n%s", diff)
	}
	counts := map[string]int{}
	for _, g := range got {
		counts[g]++
	}
	if diff := cmp.Diff(map[string]int{"node-1": 8, "node-2": 6, "node-3": 4}, counts); diff != "" {
		t.Errorf("wrr counts over two cycles (-want +got):\n%s", diff)
	}
}

func TestTraceRandomWeights(t *testing.T) {
	vs := vsWith(SchedRandom, nodes(3, 80))
	for i, w := range []int{1, 2, 1} {
		vs.Backends[i].Weight = w
	}
	out, err := Render([]VirtualService{vs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Exact: walking the rules, P(server k) = prod(1-p_j, j<k) * p_k must equal w_k/sum.
	re := regexp.MustCompile(`--probability ([0-9.]+)`)
	var probs []float64
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-A "+VSChain(vs)) {
			p := 1.0
			if m := re.FindStringSubmatch(line); m != nil {
				p, _ = strconv.ParseFloat(m[1], 64)
			}
			probs = append(probs, p)
		}
	}
	if len(probs) != 3 {
		t.Fatalf("want 3 scheduling rules, got %d", len(probs))
	}
	left := 1.0
	for i, p := range probs {
		want := float64(vs.Backends[i].Weight) / 4
		if got := left * p; math.Abs(got-want) > 1e-9 {
			t.Errorf("P(%s) = %v, want %v", vs.Backends[i].Name, got, want)
		}
		left *= 1 - p
	}

	// And through the tracer with a seeded source, the shares land near the weights.
	k := newFakeKernel(t)
	k.restore(out, true)
	tr := newTracer(t, k)
	r := rand.New(rand.NewPCG(3, 4))
	tr.Rand = r.Uint32
	counts := map[string]int{}
	for _, g := range trace(tr, vs, 4000, manyClients) {
		counts[g]++
	}
	for i, name := range []string{"node-1", "node-2", "node-3"} {
		share := float64(counts[name]) / 4000
		want := float64(vs.Backends[i].Weight) / 4
		if math.Abs(share-want) > 0.05 {
			t.Errorf("%s got %.3f of connections, want %.2f±0.05 (%v)", name, share, want, counts)
		}
	}
}

func TestTraceSourceHash(t *testing.T) {
	vs := vsWith(SchedSH, nodes(3, 80))
	k := newFakeKernel(t)
	apply(t, k, []VirtualService{vs})
	tr := newTracer(t, k)

	assign := func() map[string]string {
		m := map[string]string{}
		for i := range 250 {
			c := manyClients(i)
			// Twice per client: the same client always lands on the same server.
			a := trace(tr, vs, 2, func(int) string { return c })
			if a[0] != a[1] {
				t.Fatalf("client %s went to %s then %s", c, a[0], a[1])
			}
			m[c] = a[0]
			if bucket := SHBucket(vs, netip.MustParseAddr(c)); vs.Backends[SHTable(vs)[bucket]].Name != a[0] {
				t.Fatalf("client %s: SHBucket/SHTable predict %s, rules say %s", c, vs.Backends[SHTable(vs)[bucket]].Name, a[0])
			}
		}
		return m
	}
	before := assign()
	spread := map[string]int{}
	for _, b := range before {
		spread[b]++
	}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if spread[n] < 40 {
			t.Errorf("%s got only %d of 250 clients: %v", n, spread[n], spread)
		}
	}

	// node-2 fails: only its clients move, to the others.
	vs.Backends[1].Healthy = false
	apply(t, k, []VirtualService{vs})
	after := assign()
	for c, b := range before {
		switch {
		case b != "node-2" && after[c] != b:
			t.Errorf("client %s of healthy %s moved to %s", c, b, after[c])
		case b == "node-2" && after[c] == "node-2":
			t.Errorf("client %s still sent to failed node-2", c)
		}
	}

	// node-2 recovers: everyone is back where they started.
	vs.Backends[1].Healthy = true
	apply(t, k, []VirtualService{vs})
	if diff := cmp.Diff(before, assign()); diff != "" {
		t.Errorf("after recovery the assignment differs (-before +after):\n%s", diff)
	}
}

func TestSHTableMinimalDisruption(t *testing.T) {
	// Every failure set over 4 weighted servers, reached one failure at a time: a bucket
	// moves only if its current server fails.
	base := nodes(4, 80)
	for i, w := range []int{1, 2, 1, 3} {
		base[i].Weight = w
	}
	vs := vsWith(SchedSH, base)
	home := SHTable(vs)
	count := map[int]int{}
	for _, o := range home {
		count[o]++
	}
	// Contiguous runs proportional to weight: 32 * w/7 by largest remainder.
	if diff := cmp.Diff(map[int]int{0: 5, 1: 9, 2: 4, 3: 14}, count); diff != "" {
		t.Errorf("home buckets per server (-want +got):\n%s", diff)
	}
	for _, order := range [][]int{{0, 1, 2}, {3, 1, 0}, {2, 3, 1}, {1, 2, 3}} {
		cur := vsWith(SchedSH, slices.Clone(base))
		prev := SHTable(cur)
		for _, f := range order {
			cur.Backends[f].Healthy = false
			next := SHTable(cur)
			for b := range next {
				if prev[b] != f && next[b] != prev[b] {
					t.Fatalf("failing %d (order %v) moved bucket %d from %d to %d", f, order, b, prev[b], next[b])
				}
				if next[b] == f || !cur.Backends[next[b]].Usable() {
					t.Fatalf("bucket %d left on unusable server %d", b, next[b])
				}
			}
			prev = next
		}
	}
	none := vsWith(SchedSH, nodes(2, 80))
	none.Backends[0].Healthy, none.Backends[1].Healthy = false, false
	for b, o := range SHTable(none) {
		if o != -1 {
			t.Errorf("bucket %d owned by %d with no usable server", b, o)
		}
	}
}

func TestTracePersistence(t *testing.T) {
	vs := vsWith(SchedRR, nodes(2, 80))
	vs.Persistence = 30 * time.Second
	k := newFakeKernel(t)
	apply(t, k, []VirtualService{vs})
	tr := newTracer(t, k)

	first := trace(tr, vs, 1, sameClient)[0]
	// rr would alternate; persistence keeps the client where it was.
	if got := trace(tr, vs, 3, sameClient); !slices.Equal(got, []string{first, first, first}) {
		t.Fatalf("persistent client moved: first %s then %v", first, got)
	}
	other := trace(tr, vs, 1, func(int) string { return "203.0.113.3" })[0]
	if other == first {
		t.Errorf("a new client did not get the next server by rr: both on %s", first)
	}
	// Past the timeout the client is scheduled again: a new client takes the next rr
	// slot (the first server again), so the expired one gets the other server.
	tr.Now = tr.Now.Add(31 * time.Second)
	if z := trace(tr, vs, 1, func(int) string { return "203.0.113.4" })[0]; z != first {
		t.Fatalf("rr slot after two connections: %s, want %s", z, first)
	}
	nextRR := trace(tr, vs, 1, sameClient)[0]
	if nextRR == first {
		t.Fatalf("client still on %s after its persistence expired", first)
	}

	// Its server fails: the persistence rule for it is gone and it gets the other one.
	tr.Now = tr.Now.Add(time.Second)
	idx := slices.IndexFunc(vs.Backends, func(b Backend) bool { return b.Name == nextRR })
	vs.Backends[idx].Healthy = false
	apply(t, k, []VirtualService{vs})
	if got := trace(tr, vs, 2, sameClient); got[0] == nextRR || got[1] == nextRR {
		t.Fatalf("client still sent to failed %s: %v", nextRR, got)
	}
}

func TestTraceNoUsableBackend(t *testing.T) {
	vs := vsWith(SchedRR, nodes(2, 80))
	vs.Backends[0].Healthy = false
	vs.Backends[1].Weight = 0 // inhibited
	udp := VirtualService{Name: "dns", VIP: "203.0.113.101", Port: 53, Protocol: ProtoUDP, Backends: nodes(1, 30053)}
	udp.Backends[0].Healthy = false
	k := newFakeKernel(t)
	apply(t, k, []VirtualService{vs, udp})
	tr := newTracer(t, k)
	if got := trace(tr, vs, 1, sameClient)[0]; got != "REJECT tcp-reset" {
		t.Errorf("tcp VIP without usable server: %s, want REJECT tcp-reset", got)
	}
	if got := trace(tr, udp, 1, sameClient)[0]; got != "REJECT icmp-port-unreachable" {
		t.Errorf("udp VIP without usable server: %s, want REJECT icmp-port-unreachable", got)
	}
	// Another port of the same VIP is not touched.
	if v := tr.newConn(conn{src: "203.0.113.2", dst: vs.VIP, dport: 8443}); v.reject != "" || v.dnat != "" {
		t.Errorf("unrelated port got %+v", v)
	}
	// Recovery brings it back.
	vs.Backends[0].Healthy = true
	apply(t, k, []VirtualService{vs, udp})
	if got := trace(newTracer(t, k), vs, 2, sameClient); !slices.Equal(got, []string{"node-1", "node-1"}) {
		t.Errorf("after recovery: %v, want node-1 twice", got)
	}
}

func TestRerenderKeepsRealServerChains(t *testing.T) {
	vs := vsWith(SchedRR, nodes(3, 80))
	other := VirtualService{Name: "old", VIP: "203.0.113.101", Port: 8080, Backends: nodes(1, 31000)}
	k := newFakeKernel(t)
	apply(t, k, []VirtualService{vs, other})
	rs := k.Rules("nat", RSChain(vs, vs.Backends[0]))
	if len(rs) != 1 {
		t.Fatalf("RS chain has %d rules, want 1", len(rs))
	}
	st := slices.IndexFunc(k.chains(), func(c string) bool { return strings.HasPrefix(c, PrefixST) })

	// A health change rewrites the VS chain but leaves RS and counter chains in place (same
	// rule objects: their counters survive).
	vs.Backends[0].Healthy = false
	stBefore := k.chains()[st]
	out := apply(t, k, []VirtualService{vs, other})
	if strings.Contains(string(out), ":"+RSChain(vs, vs.Backends[0])) {
		t.Error("existing RS chain was re-declared (its counters would reset)")
	}
	if strings.Contains(string(out), ":"+stBefore) || !slices.Contains(k.chains(), stBefore) {
		t.Error("counter chain re-declared or replaced although only health changed")
	}
	if got := k.Rules("nat", RSChain(vs, vs.Backends[0])); len(got) != 1 || got[0] != rs[0] {
		t.Error("RS chain of the failed server was rewritten or removed")
	}

	// A removed service's chains are deleted, and the counter chain is replaced.
	out = apply(t, k, []VirtualService{vs})
	for _, c := range []string{VSChain(other), RSChain(other, other.Backends[0]), stBefore} {
		if slices.Contains(k.chains(), c) {
			t.Errorf("stale chain %s not deleted", c)
		}
	}
	if !strings.Contains(string(out), "-X "+stBefore) {
		t.Error("old counter chain not deleted when the set of real servers changed")
	}
}

func TestJumpRules(t *testing.T) {
	seen := map[string]bool{}
	for _, j := range JumpRules() {
		if j.Args[len(j.Args)-1] != j.Target || j.Args[len(j.Args)-2] != "-j" {
			t.Errorf("jump %v does not end in -j %s", j.Args, j.Target)
		}
		if !iptablestest.IsBuiltin(j.Table, j.Chain) {
			t.Errorf("jump from %s/%s: not a built-in chain", j.Table, j.Chain)
		}
		seen[j.Table+"/"+j.Target] = true
	}
	for _, want := range []string{"nat/" + ChainServices, "mangle/" + ChainHash, "filter/" + ChainFilter, "filter/" + ChainStats} {
		if !seen[want] {
			t.Errorf("no jump to %s", want)
		}
	}
}
