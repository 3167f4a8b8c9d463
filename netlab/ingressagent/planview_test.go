package ingressagent

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// The ingress agent reads only its view of the plan (rundir.IngressPlan): the routes, the
// certificates' inputs and the Service resolver it builds from the view equal those it
// builds from the whole plan, for every plan the scenarios and fixtures make.
func TestIngressComputesFromItsPlanView(t *testing.T) {
	for name, b := range fixturePlanFiles(t) {
		var full plan.Plan
		if err := json.Unmarshal(b, &full); err != nil {
			t.Fatal(err)
		}
		p, err := rundir.IngressPlan.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		same := func(what string, got, want any) {
			t.Helper()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s differs from the whole plan's:\n got  %+v\n want %+v", name, what, got, want)
			}
		}
		for _, class := range []string{"", "netlab", "other"} {
			cfg := IngressConfig{ClassName: class, Config: "plan.json"}
			gt, gw, gerr := routesOf(p, cfg)
			wt, ww, werr := routesOf(&full, cfg)
			same("routes of class "+class, []any{gt, gw, errText(gerr)}, []any{wt, ww, errText(werr)})
		}
		same("secrets", planSecrets(p), planSecrets(&full))
		for _, n := range append(full.Nodes, plan.Node{Name: "no-such-node"}) {
			same("default certificate hosts of "+n.Name, defaultCertHosts(p, n.Name), defaultCertHosts(&full, n.Name))
		}
		same("forwarded headers", p.Ingress.UseForwardedHeaders, full.Ingress.UseForwardedHeaders)
		gr, wr := serviceResolver(p), serviceResolver(&full)
		for _, s := range append(full.Services, plan.Service{Namespace: "default", Name: "no-such-service"}) {
			ports := []ingress.ServiceBackendPort{{Number: 80}, {Name: "http"}}
			for _, sp := range s.Ports {
				ports = append(ports, ingress.ServiceBackendPort{Number: sp.Port}, ingress.ServiceBackendPort{Name: sp.Name})
			}
			for _, port := range ports {
				ga, gerr := gr(s.Namespace, s.Name, port)
				wa, werr := wr(s.Namespace, s.Name, port)
				same("resolution of "+s.Namespace+"/"+s.Name, []string{ga, errText(gerr)}, []string{wa, errText(werr)})
			}
		}
	}
}

// fixturePlanFiles returns the plan file of every scenario and fixture that plans, and of
// each again with its first pod terminating.
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
			continue
		}
		for _, leaving := range []bool{false, true} {
			if leaving {
				if len(p.Pods) == 0 {
					continue
				}
				p.Pods[0].Terminating = true
				f += " (a pod terminating)"
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d plans", len(out))
	}
	return out
}
