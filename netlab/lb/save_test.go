package lb

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// saveFixtureServices are the services testdata/save-counters.txt was made from: the
// output of RenderApply restored into an empty namespace, saved with iptables-save -c
// (iptables 1.8.9, nf_tables), with counters then edited in.
func saveFixtureServices() []VirtualService {
	vs := vsWith(SchedRR, nodes(2, 80))
	vs.Persistence = 10 * time.Second
	return []VirtualService{vs}
}

func readFixture(t *testing.T) SaveState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "save-counters.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseSave(b)
	if err != nil {
		t.Fatalf("ParseSave: %v", err)
	}
	return st
}

func TestParseSaveAndJumps(t *testing.T) {
	st := readFixture(t)
	vss := saveFixtureServices()
	for _, c := range []string{ChainServices, ChainHash, ChainFilter, ChainStats, VSChain(vss[0]), RSChain(vss[0], vss[0].Backends[0])} {
		if !slices.Contains(st.Chains, c) {
			t.Errorf("chain %s not found in %v", c, st.Chains)
		}
	}
	if slices.Contains(st.Chains, "PREROUTING") {
		t.Error("built-in chain listed as a user chain")
	}
	// The kernel's own printing of the jumps matches ours: nothing is missing.
	if m := st.MissingJumps(); len(m) != 0 {
		t.Errorf("jumps reported missing from a namespace that has them: %v", m)
	}
	if m := (SaveState{}).MissingJumps(); len(m) != len(JumpRules()) {
		t.Errorf("empty namespace: %d missing jumps, want %d", len(m), len(JumpRules()))
	}

	// Re-rendering against it rewrites nothing that exists and adds no jump twice.
	out, err := RenderApply(vss, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{RSChain(vss[0], vss[0].Backends[0]), RSChain(vss[0], vss[0].Backends[1])} {
		if strings.Contains(string(out), ":"+c) {
			t.Errorf("existing chain %s re-declared", c)
		}
	}
	if strings.Contains(string(out), "-A PREROUTING") {
		t.Error("jump appended again")
	}
}

func TestRenderApplyAddsJumps(t *testing.T) {
	out, err := RenderApply(saveFixtureServices(), SaveState{})
	if err != nil {
		t.Fatal(err)
	}
	k := newFakeKernel(t)
	k.restore(out, false) // the jumps come from the restore input itself
	for _, j := range JumpRules() {
		if !k.Has(j.Table, j.Chain, j.Args) {
			t.Errorf("jump %s/%s -> %s not in the restore input", j.Table, j.Chain, j.Target)
		}
	}
	vs := saveFixtureServices()[0]
	if got := trace(newTracer(t, k), vs, 1, sameClient); got[0] != "node-1" {
		t.Errorf("first connection after RenderApply: %s", got[0])
	}
}

func TestStats(t *testing.T) {
	vss := saveFixtureServices()
	got := Stats(vss, readFixture(t))
	want := map[string]map[string]RealServerStats{
		"TCP:203.0.113.100:80": {
			"172.18.0.11:80": {Conns: 7, In: Counter{70, 5000}, Out: Counter{60, 90000}},
			"172.18.0.12:80": {Conns: 5, In: Counter{50, 3000}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestParseSaveErrors(t *testing.T) {
	for _, in := range []string{"*nat\n[1:x] -A FOO -j BAR\n", "*nat\n[1:2 -A FOO\n", "*nat\n-I FOO 1 -j X\n"} {
		if _, err := ParseSave([]byte(in)); err == nil {
			t.Errorf("ParseSave(%q) accepted bad input", in)
		}
	}
}
