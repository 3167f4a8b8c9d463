package kubeproxy_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// TestBenchRuleSync is the rule-sync benchmark (a command, not a test: it asserts
// nothing about time). Run it as root with NETLAB_BENCH_RULES=1:
//
//	NETLAB_BENCH_RULES=1 go test ./netlab/kubeproxy -run BenchRuleSync -v
//
// In one scratch namespace it alternates, ROUNDS times (default 5): the kube-proxy
// agent's full sync of N Services × 2 endpoints (render, iptables-save, one
// iptables-restore --noflush, jump rules) against a raw iptables-restore of the very same
// text, both from an empty table; then, at 1000, a one-Service change (one endpoint
// leaves or returns; incremental sync)
// against a raw restore of the same changed chains. It prints median, min and max.
func TestBenchRuleSync(t *testing.T) {
	if os.Getenv("NETLAB_BENCH_RULES") != "1" {
		t.Skip("benchmark: set NETLAB_BENCH_RULES=1")
	}
	labtest.RequireRoot(t)
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	ns := fmt.Sprintf("nl-kpbench%d-node-1", os.Getpid()) // nl-<lab>-<object>
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kernel.DeleteNetns(ns); err != nil {
			t.Error(err)
		}
	})
	node := kubeproxy.Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16"}
	in := func(fn func() error) {
		t.Helper()
		if err := kernel.Do(ns, fn); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(text []byte, noflush bool) error {
		args := []string{"-w", "5"}
		if noflush {
			args = append(args, "--noflush")
		}
		cmd := exec.Command("iptables-restore", args...)
		cmd.Stdin = strings.NewReader(string(text))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("iptables-restore: %w: %s", err, out)
		}
		return nil
	}
	// reset empties nat and filter (untimed), so every run starts from the same state.
	reset := func() error {
		return restore([]byte("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"+
			"*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"), false)
	}
	version, _ := exec.Command("iptables", "-V").CombinedOutput()
	uname, _ := exec.Command("uname", "-r").CombinedOutput()
	t.Logf("kernel %s, %d CPUs, %s, %d rounds", strings.TrimSpace(string(uname)), runtime.NumCPU(), strings.TrimSpace(string(version)), rounds)

	type sample struct{ a, b time.Duration }
	report := func(what string, s []sample) {
		var ra, rb []time.Duration
		var ratio []float64
		for _, x := range s {
			ra, rb = append(ra, x.a), append(rb, x.b)
			ratio = append(ratio, float64(x.a)/float64(x.b))
		}
		slices.Sort(ra)
		slices.Sort(rb)
		slices.Sort(ratio)
		med := func(d []time.Duration) time.Duration { return d[len(d)/2] }
		t.Logf("%-34s netlab median %7.1f ms (min %.1f, max %.1f) | raw median %7.1f ms (min %.1f, max %.1f) | ratio median %.2f (min %.2f, max %.2f)",
			what, ms(med(ra)), ms(ra[0]), ms(ra[len(ra)-1]), ms(med(rb)), ms(rb[0]), ms(rb[len(rb)-1]),
			ratio[len(ratio)/2], ratio[0], ratio[len(ratio)-1])
	}

	sizes := []int{1000, 5000}
	if v := os.Getenv("SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	for _, n := range sizes {
		ports := benchPorts(n)
		text := kubeproxy.Render(node, ports, nil)
		var s []sample
		for range rounds {
			var x sample
			in(func() error {
				if err := reset(); err != nil {
					return err
				}
				sy := agent.NewRuleSyncer(node)
				st, err := sy.Sync(ports, true)
				x.a = st.Took
				if err != nil {
					return err
				}
				if err := reset(); err != nil {
					return err
				}
				start := time.Now()
				err = restore(text, true)
				x.b = time.Since(start)
				return err
			})
			s = append(s, x)
		}
		report(fmt.Sprintf("full sync %d services x 2", n), s)
	}

	// One Service changed at 1000: incremental sync vs raw restore of the same chains.
	ports := benchPorts(1000)
	var s []sample
	in(func() error {
		if err := reset(); err != nil {
			return err
		}
		sy := agent.NewRuleSyncer(node)
		if _, err := sy.Sync(ports, true); err != nil {
			return err
		}
		for range rounds {
			before := kubeproxy.Render(node, ports, nil)
			ports[500].Endpoints[1].Ready = !ports[500].Endpoints[1].Ready // one endpoint leaves, then returns
			st, err := sy.Sync(ports, false)
			if err != nil {
				return err
			}
			// The same change, applied raw: put the old state back (untimed), then restore.
			diff := kubeproxy.Incremental(before, kubeproxy.Render(node, ports, nil))
			if err := restore(kubeproxy.Incremental(kubeproxy.Render(node, ports, nil), before), true); err != nil {
				return err
			}
			start := time.Now()
			if err := restore(diff, true); err != nil {
				return err
			}
			s = append(s, sample{st.Took, time.Since(start)})
		}
		return nil
	})
	report("one Service changed at 1000", s)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchPorts builds n NodePort Services with two endpoints each, one per node.
func benchPorts(n int) []kubeproxy.ServicePort {
	ports := make([]kubeproxy.ServicePort, 0, n)
	for i := range n {
		a, b := strconv.Itoa(i/250), strconv.Itoa(i%250+1)
		ports = append(ports, kubeproxy.ServicePort{Namespace: "bench", Name: "svc-" + strconv.Itoa(i), PortName: "http", Protocol: "TCP",
			ClusterIP: "10.96." + a + "." + b, Port: 80, NodePort: int32(30000 + i%2768),
			Endpoints: []kubeproxy.Endpoint{
				{Node: "node-1", IP: "10.244." + strconv.Itoa(i/250+10) + "." + b, Port: 8080, Ready: true},
				{Node: "node-2", IP: "10.245." + strconv.Itoa(i/250+10) + "." + b, Port: 8080, Ready: true},
			}})
	}
	return ports
}
