package privs_test

import (
	"strconv"
	"testing"

	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/privs"
	"github.com/netlabdev/netlab/netlab/supervise"
	"golang.org/x/sys/unix"
)

// Every agent inside a lab namespace runs with only the capabilities its role needs and
// NoNewPrivs: the pod echo (ports above 1024) with none, the ingress and the cluster DNS with
// CAP_NET_BIND_SERVICE, kube-proxy and the LB with CAP_NET_ADMIN and CAP_NET_RAW. The
// supervisor and the controller, which enter namespaces, keep theirs.
func TestIntegrationAgentCapabilities(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "healcap", "")
	want := map[string]uint64{
		"pod":        0,
		"ingress":    privs.Mask(privs.NetBindService),
		"kube-proxy": privs.Mask(privs.NetAdmin, privs.NetRaw),
		"lb":         privs.Mask(privs.NetAdmin, privs.NetRaw),
	}
	for _, pr := range append(p.Processes, supervise.SupervisorProcess(p.Lab)) {
		rec := labtest.Record(t, p.Lab, pr.Role, pr.Name)
		eff, bnd, nnp, err := privs.Of(strconv.Itoa(rec.PID))
		if err != nil {
			t.Fatalf("%s %s: %v", pr.Role, pr.Name, err)
		}
		w, restricted := want[pr.Role]
		if pr.Role == "pod" && pr.Args[1] == "dns" { // the cluster DNS binds port 53
			w = privs.Mask(privs.NetBindService)
		}
		if !restricted {
			if eff&privs.Mask(unix.CAP_SYS_ADMIN) == 0 { // setns
				t.Errorf("%s %s: CapEff %#x lacks CAP_SYS_ADMIN it needs to enter namespaces", pr.Role, pr.Name, eff)
			}
			continue
		}
		if eff != w || bnd != w || !nnp {
			t.Errorf("%s %s: CapEff %#x CapBnd %#x NoNewPrivs %v, want %#x, %#x, true", pr.Role, pr.Name, eff, bnd, nnp, w, w)
		}
	}
	// With those, the lab serves.
	if err := labtest.RequestOK(p, "/"); err != nil {
		t.Error(err)
	}
}
