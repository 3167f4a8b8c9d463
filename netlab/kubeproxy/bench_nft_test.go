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
)

// TestBenchRuleSyncNFTables compares the two kube-proxy modes (a command, not a test: it
// asserts nothing about time). Run it as root with NETLAB_BENCH_RULES=1 (make bench-rules).
//
// In one scratch namespace, for each size in SIZES (default 1000) it alternates, ROUNDS
// times (default 5): (A) the node agent's full sync in iptables mode from empty tables,
// (B) its full sync in nftables mode from an empty table (render, list chains and sets,
// one nft -f). Then, with each mode's rules in place, one Service's endpoint leaves or
// returns and the incremental sync is timed, A B A B. Last, nftables mode alone at
// NFT_SIZE Services (default 10000): NFT_ROUNDS full syncs (default 1: one takes minutes)
// and ROUNDS one-Service changes. Medians with min–max.
func TestBenchRuleSyncNFTables(t *testing.T) {
	if os.Getenv("NETLAB_BENCH_RULES") != "1" {
		t.Skip("benchmark: set NETLAB_BENCH_RULES=1")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal(err)
	}
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	sizes := []int{1000}
	if v := os.Getenv("SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	big, bigRounds := 10000, 1
	if n, err := strconv.Atoi(os.Getenv("NFT_SIZE")); err == nil && n > 0 {
		big = n
	}
	if n, err := strconv.Atoi(os.Getenv("NFT_ROUNDS")); err == nil && n > 0 {
		bigRounds = n
	}
	ns := fmt.Sprintf("nl-kpnft%d-node-1", os.Getpid())
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kernel.DeleteNetns(ns); err != nil {
			t.Error(err)
		}
	})
	node := kubeproxy.Node{Name: "node-1", IP: "172.18.0.11", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12"}
	in := func(fn func() error) {
		t.Helper()
		if err := kernel.Do(ns, fn); err != nil {
			t.Fatal(err)
		}
	}
	run := func(stdin string, name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, out)
		}
		return nil
	}
	// reset empties iptables' nat and filter tables and removes table ip kube-proxy
	// (untimed), so every full sync starts from nothing.
	reset := func() error {
		if err := run("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"+
			"*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
			"iptables-restore", "-w", "5"); err != nil {
			return err
		}
		return run("add table ip kube-proxy\ndelete table ip kube-proxy\n", "nft", "-f", "-")
	}
	sync := func(mode string, ports []kubeproxy.ServicePort) (*agent.RuleSyncer, time.Duration, error) {
		sy, err := agent.NewRuleSyncerMode(node, mode)
		if err != nil {
			return nil, 0, err
		}
		st, err := sy.Sync(ports, true)
		return sy, st.Took, err
	}
	version, _ := exec.Command("iptables", "-V").CombinedOutput()
	nftVersion, _ := exec.Command("nft", "--version").CombinedOutput()
	uname, _ := exec.Command("uname", "-r").CombinedOutput()
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("kernel %s, %d CPUs, %s, %s, load %s, %d rounds", strings.TrimSpace(string(uname)), runtime.NumCPU(),
		strings.TrimSpace(string(version)), strings.TrimSpace(string(nftVersion)), strings.Join(strings.Fields(string(load))[:3], " "), rounds)

	type pair struct{ ipt, nft time.Duration }
	report := func(what string, s []pair) {
		var a, b []time.Duration
		var ratio []float64
		for _, x := range s {
			a, b = append(a, x.ipt), append(b, x.nft)
			ratio = append(ratio, float64(x.nft)/float64(x.ipt))
		}
		slices.Sort(a)
		slices.Sort(b)
		slices.Sort(ratio)
		t.Logf("%-30s iptables median %8.2f ms (min %.2f, max %.2f) | nftables median %8.2f ms (min %.2f, max %.2f) | nftables/iptables median %.3f (min %.3f, max %.3f)",
			what, ms(a[len(a)/2]), ms(a[0]), ms(a[len(a)-1]), ms(b[len(b)/2]), ms(b[0]), ms(b[len(b)-1]),
			ratio[len(ratio)/2], ratio[0], ratio[len(ratio)-1])
	}
	reportOne := func(what string, d []time.Duration) {
		slices.Sort(d)
		t.Logf("%-30s nftables median %8.2f ms (min %.2f, max %.2f)", what, ms(d[len(d)/2]), ms(d[0]), ms(d[len(d)-1]))
	}

	for _, n := range sizes {
		ports := benchPorts(n)
		var full []pair
		for range rounds {
			var x pair
			in(func() error {
				var err error
				if err = reset(); err != nil {
					return err
				}
				if _, x.ipt, err = sync("iptables", ports); err != nil {
					return err
				}
				if err = reset(); err != nil {
					return err
				}
				_, x.nft, err = sync("nftables", ports)
				return err
			})
			full = append(full, x)
		}
		report(fmt.Sprintf("full sync %d x 2", n), full)

		// One Service changed: both modes' rules in place side by side (they live in
		// different tables), each synced incrementally in turn.
		var change []pair
		in(func() error {
			if err := reset(); err != nil {
				return err
			}
			ipt, _, err := sync("iptables", ports)
			if err != nil {
				return err
			}
			nft, _, err := sync("nftables", ports)
			if err != nil {
				return err
			}
			for range rounds {
				ports[n/2].Endpoints[1].Ready = !ports[n/2].Endpoints[1].Ready // one endpoint leaves, then returns
				a, err := ipt.Sync(ports, false)
				if err != nil {
					return err
				}
				b, err := nft.Sync(ports, false)
				if err != nil {
					return err
				}
				change = append(change, pair{a.Took, b.Took})
			}
			return reset()
		})
		report(fmt.Sprintf("one Service changed at %d", n), change)
	}

	ports := benchPorts(big)
	var full, change []time.Duration
	in(func() error {
		for range bigRounds {
			if err := reset(); err != nil {
				return err
			}
			_, d, err := sync("nftables", ports)
			if err != nil {
				return err
			}
			full = append(full, d)
		}
		sy, _, err := sync("nftables", ports) // a full sync over the table in place
		if err != nil {
			return err
		}
		for range rounds {
			ports[big/2].Endpoints[1].Ready = !ports[big/2].Endpoints[1].Ready
			st, err := sy.Sync(ports, false)
			if err != nil {
				return err
			}
			change = append(change, st.Took)
		}
		return reset()
	})
	reportOne(fmt.Sprintf("full sync %d x 2", big), full)
	reportOne(fmt.Sprintf("one Service changed at %d", big), change)
}
