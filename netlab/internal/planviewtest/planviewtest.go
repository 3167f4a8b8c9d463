// Package planviewtest holds what the tests of the agents' plan views share: every
// scenario's and fixture's plan file (and variants), and the check that an agent computes
// from its view (rundir.PlanView) what it computes from the whole plan. For tests only.
package planviewtest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// Role is an agent's view of the plan and what the agent computes from a plan read
// through it (full: the whole plan, for the names to ask about).
type Role struct {
	View    rundir.PlanView
	Compute func(p, full *plan.Plan) []any
}

// Check holds, on every fixture plan, what each agent computes from its view equal
// to what it computes from the whole plan; and, for each part of each view, that some
// plan tells the view without that part from the whole plan (a part the test cannot
// miss is a part it does not check).
func Check(t *testing.T, roles map[string]Role) {
	t.Helper()
	plans := FixturePlanFiles(t)
	full := map[string]*plan.Plan{}
	for name, b := range plans {
		var p plan.Plan
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		full[name] = &p
	}
	differs := func(v rundir.PlanView, compute func(p, full *plan.Plan) []any, name string) (bool, string) {
		p, err := v.Decode(plans[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, want := compute(p, full[name]), compute(full[name], full[name])
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				return true, fmt.Sprintf("item %d:\n got  %+v\n want %+v", i, got[i], want[i])
			}
		}
		return false, ""
	}
	for role, r := range roles {
		for name := range plans {
			if d, why := differs(r.View, r.Compute, name); d {
				t.Errorf("%s, %s: what it computes from its view differs from the whole plan's, %s", name, role, why)
			}
		}
		for _, key := range r.View {
			missed := true
			for name := range plans {
				if d, _ := differs(Without(r.View, key), r.Compute, name); d {
					missed = false
					break
				}
			}
			if missed {
				t.Errorf("%s: no plan tells its view without %q from the whole plan", role, key)
			}
		}
	}
}

// FixturePlanFiles returns (from a test of a package netlab/NAME: the paths are
// relative to it) the plan file (as rundir.WritePlan writes it) of every scenario
// and fixture, of each again with its first pod terminating, and of each with every
// optional part an agent reads set: clients routed to pods, the ingress's forwarded
// headers and class handling, a Service publishing not-ready addresses with an external
// IP, and a pod in a namespace with no Service (the DNS answers for its namespace).
func FixturePlanFiles(t *testing.T) map[string][]byte {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../../scenarios/*.yaml", "../../testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	out := map[string][]byte{}
	for _, f := range files {
		s, err := scenario.Load([]string{f})
		if err != nil || scenario.Validate(s) != nil {
			continue // a fixture of bad input
		}
		p, err := planbuild.Build(s, "")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		add := func(name string, p *plan.Plan) {
			b, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out[name] = b
		}
		add(f, p)
		if len(p.Pods) == 0 {
			continue
		}
		leaving := p.Clone()
		leaving.Pods[0].Terminating = true
		add(f+" (a pod terminating)", leaving)
		every := p.Clone()
		every.Network.ClientRoutesToPods = true
		every.Ingress.UseForwardedHeaders, every.Ingress.IgnoreWithoutClass = true, true
		if len(every.Services) > 0 {
			every.Services[0].PublishNotReady = true
			every.Services[0].ExternalIPs = []string{"172.18.0.250"}
		}
		lonely := every.Pods[0]
		lonely.Name, lonely.Namespace = "lonely-1", "lonely"
		every.Pods = append(every.Pods, lonely)
		add(f+" (every option)", every)
	}
	if len(out) < 30 {
		t.Fatalf("only %d plans", len(out))
	}
	return out
}

// Without returns the view without key.
func Without(v rundir.PlanView, key string) rundir.PlanView {
	var out rundir.PlanView
	for _, k := range v {
		if k != key {
			out = append(out, k)
		}
	}
	return out
}
