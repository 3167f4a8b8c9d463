package kubeproxy_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

func TestZZFull(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	ns := fmt.Sprintf("nl-zz%d", os.Getpid())
	kernel.CreateNetns(ns)
	defer kernel.DeleteNetns(ns)
	node := kubeproxy.Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12"}
	ports := benchPorts(1000)
	ru := func() (time.Duration, time.Duration) {
		var r syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &r)
		return time.Duration(r.Utime.Nano()), time.Duration(r.Stime.Nano())
	}
	var us, ss []time.Duration
	for range 8 {
		kernel.Do(ns, func() error {
			kernel.Run(ns, []byte("add table ip kube-proxy\ndelete table ip kube-proxy\n"), "nft", "-f", "-")
			u0, s0 := ru()
			sy, _ := agent.NewRuleSyncerMode(node, "nftables")
			_, err := sy.Sync(ports, true)
			sy.Close()
			u1, s1 := ru()
			if err != nil {
				t.Error(err)
			}
			us, ss = append(us, u1-u0), append(ss, s1-s0)
			return nil
		})
	}
	t.Logf("user %v\nsys %v", us, ss)
}
