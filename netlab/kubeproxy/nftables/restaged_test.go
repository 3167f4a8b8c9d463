package nftables

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Restaged refills every regular chain after the chains it leads to, touches the base
// chains only in the last stage, and writes what Full writes, command for command
// (the base chains' re-creation aside).
func TestRestagedOrder(t *testing.T) {
	rs := Render(testNode, overallPorts())
	stages := Restaged(rs, Existing{Table: true, Base: BaseChains()}, 2)
	filled := map[string]int{} // chain -> stage that refills it
	for i, s := range stages {
		for line := range strings.Lines(string(s)) {
			if c, ok := strings.CutPrefix(strings.TrimSpace(line), "flush chain "+prefix); ok {
				filled[c] = i
			}
		}
	}
	last := len(stages) - 1
	for name, c := range rs.Chains {
		i, ok := filled[name]
		switch {
		case !ok:
			t.Errorf("chain %s is never refilled", name)
		case c.Base != "" && i != last:
			t.Errorf("base chain %s refilled in stage %d of %d", name, i+1, len(stages))
		case c.Base == "":
			for _, r := range c.Rules {
				for _, to := range chainRefs(r) {
					if j, ok := filled[to]; !ok || j > i {
						t.Errorf("chain %s (stage %d) leads to %s, refilled in stage %d", name, i+1, to, j+1)
					}
				}
			}
		}
	}
	// The same commands as one Full transaction, in another order, but for Full's
	// re-adding of the base chains (they have kube-proxy's hooks here).
	lines := func(b []byte) []string {
		var out []string
		for l := range bytes.Lines(b) {
			if !strings.Contains(string(l), "{ type ") {
				out = append(out, string(l))
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if got, want := lines(bytes.Join(stages, nil)), lines(Full(rs, Existing{Table: true}, false)); !slices.Equal(got, want) {
		t.Errorf("Restaged's commands differ from Full's (-Full +Restaged):\n%s", cmp.Diff(want, got))
	}
	if got := chainRefs("numgen random mod 2 vmap { 0 : goto endpoint-A , 1 : goto endpoint-B }"); !slices.Equal(got, []string{"endpoint-A", "endpoint-B"}) {
		t.Errorf("chainRefs of a numgen map: %q", got)
	}
}

// StagedSeq and RestagedSeq yield Staged's and Restaged's transactions, and stop writing
// when the caller stops taking them.
func TestStagedSeqs(t *testing.T) {
	rs := Render(testNode, overallPorts())
	ex := Existing{Table: true, Base: BaseChains()}
	for _, c := range []struct {
		name string
		want [][]byte
		seq  func(yield func([]byte) bool)
	}{
		{"Staged", Staged(rs, 2), StagedSeq(rs, 2)},
		{"Restaged", Restaged(rs, ex, 2), RestagedSeq(rs, ex, 2)},
	} {
		if len(c.want) < 3 {
			t.Fatalf("%s: %d stages", c.name, len(c.want))
		}
		var got [][]byte
		for s := range c.seq {
			got = append(got, s)
		}
		if !slices.EqualFunc(got, c.want, bytes.Equal) {
			t.Errorf("%s: the sequence differs from the list", c.name)
		}
		for stop := 1; stop < len(c.want); stop++ {
			n := 0
			for s := range c.seq {
				if !bytes.Equal(s, c.want[n]) {
					t.Errorf("%s: stage %d differs", c.name, n+1)
				}
				if n++; n == stop {
					break
				}
			}
			if n != stop {
				t.Errorf("%s: stopped after %d stages, want %d", c.name, n, stop)
			}
		}
	}
}
