package ingressagent

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// The ingress agent (and each of its workers) reads only its view of the plan
// (rundir.IngressPlan): the routes of every class setting, the Secrets and default
// certificate hosts of its certificates, the forwarded-headers setting and the Service
// resolutions it builds from the view equal those from the whole plan, on every fixture
// plan (and variants), and each part of the view counts.
func TestIngressComputesFromItsPlanView(t *testing.T) {
	checkViews(t, map[string]roleView{
		"ingress": {rundir.IngressPlan, func(p, full *plan.Plan) []any {
			var out []any
			for _, class := range []string{"", "netlab", "other"} {
				table, warns, err := routesOf(p, IngressConfig{ClassName: class, Config: "plan.json"})
				out = append(out, table, warns, errText(err))
			}
			out = append(out, planSecrets(p), p.Ingress.UseForwardedHeaders)
			for _, n := range append(full.Nodes, plan.Node{Name: "no-such-node"}) {
				out = append(out, defaultCertHosts(p, n.Name))
			}
			resolve := serviceResolver(p)
			for _, s := range append(full.Services, plan.Service{Namespace: "default", Name: "no-such-service"}) {
				ports := []ingress.ServiceBackendPort{{Number: 80}, {Name: "http"}}
				for _, sp := range s.Ports {
					ports = append(ports, ingress.ServiceBackendPort{Number: sp.Port}, ingress.ServiceBackendPort{Name: sp.Name})
				}
				for _, port := range ports {
					addr, err := resolve(s.Namespace, s.Name, port)
					out = append(out, addr, errText(err))
				}
			}
			return out
		}},
	})
}

// roleView is an agent's view of the plan and what the agent computes from a plan read
// through it (full: the whole plan, for the names to ask about).
type roleView struct {
	view    rundir.PlanView
	compute func(p, full *plan.Plan) []any
}

// checkViews holds, on every fixture plan, what each agent computes from its view equal
// to what it computes from the whole plan; and, for each part of each view, that some
// plan tells the view without that part from the whole plan (a part the test cannot
// miss is a part it does not check).
func checkViews(t *testing.T, roles map[string]roleView) {
	t.Helper()
	plans := fixturePlanFiles(t)
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
			if d, why := differs(r.view, r.compute, name); d {
				t.Errorf("%s, %s: what it computes from its view differs from the whole plan's, %s", name, role, why)
			}
		}
		for _, key := range r.view {
			missed := true
			for name := range plans {
				if d, _ := differs(without(r.view, key), r.compute, name); d {
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

// fixturePlanFiles returns the plan file (as rundir.WritePlan writes it) of every scenario
// and fixture, of each again with its first pod terminating, and of each with every
// optional part an agent reads set: clients routed to pods, the ingress's forwarded
// headers and class handling, a Service publishing not-ready addresses with an external
// IP, and a pod in a namespace with no Service (the DNS answers for its namespace).
func fixturePlanFiles(t *testing.T) map[string][]byte {
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

// without returns the view without key.
func without(v rundir.PlanView, key string) rundir.PlanView {
	var out rundir.PlanView
	for _, k := range v {
		if k != key {
			out = append(out, k)
		}
	}
	return out
}
