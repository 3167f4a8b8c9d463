package kubeproxy_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

func TestZZKept(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	ns := fmt.Sprintf("nl-zz%d", os.Getpid())
	kernel.CreateNetns(ns)
	defer kernel.DeleteNetns(ns)
	node := kubeproxy.Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12"}
	ports := benchPorts(1000)
	rec := t.TempDir() + "/rec"
	kernel.Do(ns, func() error {
		sy, _ := agent.NewRuleSyncerMode(node, "nftables")
		sy.SetRecord(rec)
		sy.Sync(ports, true)
		sy.Close()
		for range 20 {
			t0 := time.Now()
			c0 := threadCPU()
			sy, _ := agent.NewRuleSyncerMode(node, "nftables")
			sy.SetRecord(rec)
			st, err := sy.Sync(ports, true)
			sy.Close()
			t.Logf("wall %v cpu %v kept %v err %v", time.Since(t0), threadCPU()-c0, st.Kept, err)
		}
		return nil
	})
}
