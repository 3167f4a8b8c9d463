package lab

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The names a pod's stub resolver asks, in order, as resolv(5) says with ndots:5.
func TestResolvCandidates(t *testing.T) {
	rc := resolvConf{nameserver: "10.96.0.10", search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, ndots: 5}
	for _, tc := range []struct {
		host string
		want []string
	}{
		{"api", []string{"api.shop.svc.cluster.local.", "api.svc.cluster.local.", "api.cluster.local.", "api."}},
		{"api.default", []string{"api.default.shop.svc.cluster.local.", "api.default.svc.cluster.local.", "api.default.cluster.local.", "api.default."}},
		{"api.default.svc.cluster.local.", []string{"api.default.svc.cluster.local."}},
		{"a.b.c.d.e.f", []string{"a.b.c.d.e.f.", "a.b.c.d.e.f.shop.svc.cluster.local.", "a.b.c.d.e.f.svc.cluster.local.", "a.b.c.d.e.f.cluster.local."}},
	} {
		if d := cmp.Diff(tc.want, rc.candidates(tc.host)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.host, d)
		}
	}
}
