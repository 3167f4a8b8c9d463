package ingressagent

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/internal/planviewtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The ingress agent (and each of its workers) reads only its view of the plan
// (rundir.IngressPlan): the routes of every class setting, the Secrets and default
// certificate hosts of its certificates, the forwarded-headers setting and the Service
// resolutions it builds from the view equal those from the whole plan, on every fixture
// plan (and variants), and each part of the view counts.
func TestIngressComputesFromItsPlanView(t *testing.T) {
	planviewtest.Check(t, map[string]planviewtest.Role{
		"ingress": {View: rundir.IngressPlan, Compute: func(p, full *plan.Plan) []any {
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
