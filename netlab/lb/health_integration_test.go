package lb_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// nodeOut says whether the LB has taken node out of the virtual service named vs.
func nodeOut(labName, vs, node string) bool {
	st, err := rundir.ForLab(labName).ReadLBState()
	if err != nil {
		return false
	}
	for _, s := range st.Services {
		if s.Name != vs {
			continue
		}
		for _, b := range s.Backends {
			if b.Name == node {
				return !b.Healthy
			}
		}
	}
	return false
}

// A SIGSTOPped ingress still completes TCP handshakes (the kernel does), but its health
// path does not answer: the LB takes its node out, and every request works.
func TestIntegrationStoppedIngressTakenOut(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "healstop", "")
	rec := labtest.Record(t, p.Lab, "ingress", "node-2")
	if err := syscall.Kill(rec.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(rec.PID, syscall.SIGCONT)
	if !labtest.WaitFor(15*time.Second, func() bool { return nodeOut(p.Lab, "ingress-http", "node-2") }) {
		t.Fatal("the LB keeps node-2 whose ingress is stopped")
	}
	// status and check say so: node-2's own ports 80/443 (exposed to clients) fail.
	st, err := lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Nodes[1]; n.Ready || !strings.Contains(n.Reason, "health check") {
		t.Errorf("status of node-2 with its ingress stopped: ready %v reason %q", n.Ready, n.Reason)
	}
	if labtest.CheckOK(t, p.Lab, "nodes") {
		t.Error(`check "nodes" passes with node-2's ingress stopped`)
	}
	for i := 0; i < 10; i++ {
		if _, _, err := labtest.GetEchoHost(p.Clients[0].Netns, "http://"+p.LB.VIP+"/", "app.example"); err != nil {
			t.Errorf("request %d with node-2 out: %v", i, err)
		}
	}
	_ = syscall.Kill(rec.PID, syscall.SIGCONT)
	if !labtest.WaitFor(15*time.Second, func() bool { return !nodeOut(p.Lab, "ingress-http", "node-2") }) {
		t.Error("node-2 did not come back once its ingress ran again")
	}
}

// dialFrom opens a TCP connection from a fixed source port inside ns.
func dialFrom(ns string, port int, addr string, timeout time.Duration) error {
	return kernel.Do(ns, func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{Port: port}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// A node fails while clients open connections: attempts scheduled to it in the detection
// window leave conntrack entries (SYN_SENT) in the LB. Once the LB has taken the node out,
// it deletes them (IPVS's expire_nodest_conn), so a new connection that reuses one of
// those source ports is scheduled again instead of following the entry to the dead node.
func TestIntegrationNodeOutExpiresConntrack(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "healct", "")
	client := p.Clients[0].Netns
	vip := net.JoinHostPort(p.LB.VIP, "80")
	if err := lab.SetNodeLink(p.Lab, "node-2", false); err != nil {
		t.Fatal(err)
	}
	const first, n = 41000, 24
	failed := make([]bool, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			failed[i] = dialFrom(client, first+i, vip, 300*time.Millisecond) != nil
		}(i)
	}
	wg.Wait()
	var stale []int
	for i, f := range failed {
		if f {
			stale = append(stale, first+i)
		}
	}
	if len(stale) == 0 {
		t.Fatal("no attempt went to node-2 in the detection window: the case this test is for did not happen")
	}
	if !labtest.WaitFor(15*time.Second, func() bool { return nodeOut(p.Lab, "ingress-http", "node-2") }) {
		t.Fatal("the LB did not take node-2 out")
	}
	out, _ := labtest.Exec(p.LB.Netns, "conntrack", "-L", "-d", p.LB.VIP, "-r", plan.Addr(p.Nodes[1].IP))
	for _, port := range stale {
		if err := dialFrom(client, port, vip, 2*time.Second); err != nil {
			t.Errorf("new connection from port %d after node-2 was taken out: %v", port, err)
		}
	}
	if t.Failed() {
		t.Logf("conntrack entries to node-2 after it was taken out:\n%s", out)
	}
}
