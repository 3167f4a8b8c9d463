package labtest

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IngressObject returns the plan's form of an Ingress of class netlab in namespace default:
// host, path prefix / to Service svc on port, TLS for tlsHosts when given.
func IngressObject(t testing.TB, name, host, svc string, port networkingv1.ServiceBackendPort, tlsHosts ...string) plan.Ingress {
	t.Helper()
	pt := networkingv1.PathTypePrefix
	class := "netlab"
	ing := networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pt,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: port}},
				}}},
			}}},
		},
	}
	if len(tlsHosts) > 0 {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: tlsHosts}}
	}
	b, err := json.Marshal(ing)
	if err != nil {
		t.Fatal(err)
	}
	return plan.Ingress{Namespace: "default", Name: name, Object: b}
}

// WritePlan writes p as JSON to path through a temporary file and a rename, as agents see
// a plan change, failing the test on error.
func WritePlan(t testing.TB, path string, p *plan.Plan) {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
