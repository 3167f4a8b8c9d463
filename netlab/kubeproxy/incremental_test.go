package kubeproxy

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sameRules fails when a and b leave different chains or rules.
func sameRules(t *testing.T, what string, a, b *ruleset) {
	t.Helper()
	for _, table := range []string{"filter", "nat"} {
		if d := cmp.Diff(a.Chains(table), b.Chains(table)); d != "" {
			t.Errorf("%s: %s chains (-want +got):\n%s", what, table, d)
			continue
		}
		for _, c := range a.Chains(table) {
			args := func(rs *ruleset) []string {
				var out []string
				for _, r := range rs.Rules(table, c) {
					out = append(out, strings.Join(r.Args, " "))
				}
				return out
			}
			if d := cmp.Diff(args(a), args(b)); d != "" {
				t.Errorf("%s: %s/%s (-want +got):\n%s", what, table, c, d)
			}
		}
	}
}

func TestIncremental(t *testing.T) {
	base := fixturePorts()
	prev := Render(node1, base, nil)
	if got := Incremental(prev, Render(node1, fixturePorts(), nil)); got != nil {
		t.Errorf("no change gave a restore:\n%s", got)
	}

	flip := fixturePorts()
	flip[0].Endpoints[1].Ready = false // web-1 of default/web:http leaves
	removed := slices.DeleteFunc(fixturePorts(), func(p ServicePort) bool { return p.Name == "api" })
	added := append(fixturePorts(), ServicePort{Namespace: "default", Name: "new", Protocol: "TCP", ClusterIP: "10.96.0.99", Port: 80,
		Endpoints: []Endpoint{{Node: "node-1", IP: "10.244.1.99", Port: 80, Ready: true}}})
	allGone := fixturePorts()
	for i := range allGone {
		allGone[i].Endpoints = nil
	}
	for _, tc := range []struct {
		name  string
		ports []ServicePort
	}{{"endpoint not ready", flip}, {"service removed", removed}, {"service added", added}, {"all endpoints gone", allGone}} {
		next := Render(node1, tc.ports, nil)
		diff := Incremental(prev, next)
		if len(diff) == 0 {
			t.Errorf("%s: change gave no restore", tc.name)
		}
		want, err := parseRules(next)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseRules(append(slices.Clone(prev), diff...))
		if err != nil {
			t.Fatalf("%s: prev+incremental does not parse: %v\n%s", tc.name, err, diff)
		}
		sameRules(t, tc.name, want, got)
	}

	// An endpoint change rewrites only that service's chains, not KUBE-SERVICES.
	diff := string(Incremental(prev, Render(node1, flip, nil)))
	if len(diff) >= len(prev)/4 {
		t.Errorf("endpoint change: incremental restore is %d bytes, full %d", len(diff), len(prev))
	}
	if strings.Contains(diff, ":KUBE-SERVICES ") || strings.Contains(diff, "*filter") {
		t.Errorf("endpoint change rewrote top-level chains:\n%s", diff)
	}
	if !strings.Contains(diff, ":"+SVCChain("default/web:http", "tcp")+" ") || !strings.Contains(diff, "-X "+SEPChain("default/web:http", "tcp", web1+":8080")) {
		t.Errorf("endpoint change did not rewrite the SVC chain and delete the SEP chain:\n%s", diff)
	}
}
