package kubeproxy

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChangedServices(t *testing.T) {
	old := fixturePorts()
	if got := ChangedServices(old, fixturePorts()); len(got) != 0 {
		t.Errorf("identical input reported changed: %v", got)
	}
	// Reordering endpoints or ports is no change.
	re := fixturePorts()
	slices.Reverse(re)
	slices.Reverse(re[0].Endpoints)
	if got := ChangedServices(old, re); len(got) != 0 {
		t.Errorf("reordered input reported changed: %v", got)
	}
	// A readiness flip, a removed Service and an added one.
	nw := fixturePorts()
	nw[2].Endpoints[1].Ready = false // default/api
	nw = slices.DeleteFunc(nw, func(p ServicePort) bool { return p.Name == "ext" })
	nw = append(nw, ServicePort{Namespace: "default", Name: "new", Protocol: "TCP", ClusterIP: "10.96.0.99", Port: 80})
	want := map[string]bool{"default/api": true, "default/ext": true, "default/new": true}
	if d := cmp.Diff(want, ChangedServices(old, nw)); d != "" {
		t.Errorf("changed (-want +got):\n%s", d)
	}
	// Restoring the old full render and then the partial one leaves exactly what a full
	// render of the new state leaves.
	oldText := Render(node1, old, nil)
	oldRS, err := parseRules(oldText)
	if err != nil {
		t.Fatal(err)
	}
	existing := oldRS.Chains("nat")
	partial := RenderWith(node1, nw, Options{Changed: ChangedServices(old, nw), ExistingNATChains: existing})
	seq, err := parseRules(append(slices.Clone(oldText), partial...))
	if err != nil {
		t.Fatal(err)
	}
	full, err := parseRules(Render(node1, nw, existing))
	if err != nil {
		t.Fatal(err)
	}
	if len(partial) >= len(Render(node1, nw, existing)) {
		t.Errorf("partial render is not smaller than the full one")
	}
	for _, table := range []string{"filter", "nat"} {
		if d := cmp.Diff(full.Chains(table), seq.Chains(table)); d != "" {
			t.Errorf("%s chains after full vs old+partial (-full +partial):\n%s", table, d)
		}
		for _, c := range full.Chains(table) {
			args := func(rs *ruleset) [][]string {
				var out [][]string
				for _, r := range rs.Rules(table, c) {
					out = append(out, r.Args)
				}
				return out
			}
			if d := cmp.Diff(args(full), args(seq)); d != "" {
				t.Errorf("%s/%s after full vs old+partial (-full +partial):\n%s", table, c, d)
			}
		}
	}
}
