package agent

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// A sync's generation is reported only once the stale UDP conntrack entries are cleared:
// a clean-up that fails (a failed delete, an interrupted dump) is tried once more at once,
// then on every tick, against the same earlier state, and the status waits for it.
func TestGenerationWaitsForTheUDPCleanUp(t *testing.T) {
	node := kubeproxy.Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12"}
	dnsPorts := func(eps ...string) []kubeproxy.ServicePort {
		sp := kubeproxy.ServicePort{Namespace: "kube-system", Name: "kube-dns", PortName: "dns", Protocol: "UDP",
			ClusterIP: "10.96.0.10", Port: 53}
		for _, ip := range eps {
			sp.Endpoints = append(sp.Endpoints, kubeproxy.Endpoint{Pod: "coredns-" + ip, IP: ip, Port: 53, Ready: true})
		}
		return []kubeproxy.ServicePort{sp}
	}
	before, after := dnsPorts("10.244.1.2", "10.244.2.2"), dnsPorts("10.244.2.2")
	prev := kubeproxy.NewUDPServing(node, before)

	var calls []udpStale
	fail := true
	oldCount, oldDelete := countConntrack, deleteConntrack
	t.Cleanup(func() { countConntrack, deleteConntrack = oldCount, oldDelete })
	countConntrack = func() int { return 3 }
	deleteConntrack = func(_ netlink.ConntrackTableType, _ netlink.InetFamily, filters ...netlink.CustomConntrackFilter) (uint, error) {
		calls = append(calls, filters[0].(udpStale))
		if fail {
			return 0, errors.New("dump interrupted")
		}
		return 1, nil
	}

	dir := rundir.At(t.TempDir())
	k := &kubeProxy{cfg: KubeProxyConfig{Node: node.Name}, dir: dir, log: slog.New(slog.DiscardHandler),
		syncer: &RuleSyncer{node: node}, gen: 7, udp: prev}
	k.report(SyncStats{}, after)
	if len(calls) != 2 {
		t.Fatalf("%d clean-ups after a failure, want 2 (one more at once)", len(calls))
	}
	if st, err := dir.ReadSyncStatus(node.Name); err == nil {
		t.Fatalf("generation reported while the clean-up failed: %+v", st)
	}
	if !k.udpRetry {
		t.Fatal("no retry pending after the clean-up failed")
	}

	// The next tick: it succeeds, against the same earlier state, and reports.
	fail = false
	k.report(SyncStats{}, after)
	if len(calls) != 3 {
		t.Fatalf("%d clean-ups, want 3", len(calls))
	}
	for i, c := range calls {
		if c.prev != prev {
			t.Errorf("clean-up %d compared against %v, want the state before the change", i, c.prev)
		}
	}
	st, err := dir.ReadSyncStatus(node.Name)
	if err != nil || st.Generation != 7 || st.Error != "" {
		t.Fatalf("status after the clean-up: %+v %v, want generation 7", st, err)
	}
	if k.udpRetry {
		t.Fatal("retry still pending after the clean-up succeeded")
	}
	// Nothing changed since: no scan, and the status stays.
	k.report(SyncStats{}, after)
	if len(calls) != 3 {
		t.Fatalf("%d clean-ups with nothing changed, want 3", len(calls))
	}
}
