package kubeproxy_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftnl"
)

// TestBenchRuleSyncNFTables compares the two kube-proxy modes (a command, not a test: it
// asserts nothing about time). Run it as root with NETLAB_BENCH_RULES=1 (make bench-rules).
//
// In a scratch namespace, for each size in SIZES (default 1000) it alternates, ROUNDS
// times (default 5): (A) the node agent's full sync in iptables mode from empty tables
// (render, iptables-save, one iptables-restore), (B) its full sync in nftables mode from
// an empty table (render, list chains and sets, one netlink transaction), (C) a raw
// `nft -f` of the very transaction text B applied (how netlab applied it before), from
// an empty table in a second namespace (B's CPU time, user and system of the whole
// process, is printed too). Then, with the rules in place, one Service's
// endpoint leaves or returns and each incremental sync is timed, A B C A B C: C is
// `nft -f` of the same change text B sent, on the same table in the second namespace.
// Then a restarted agent's first sync over the tables in place, A B C: (A) and (B) a new
// syncer's full sync, (C) the nftables full sync as one netlink transaction (as netlab
// made it before it was staged); before B, a rule is added to its table (untimed), so B
// rewrites it; and in nftables mode alone, a restart after another table's commit, which
// reads the table back and keeps it. Then
// nftables mode alone: ROUNDS periodic full syncs of a running syncer and restarts of a
// new one over a table nothing has touched since (they write nothing). Last, nftables
// mode alone at NFT_SIZE Services (default 10000): NFT_ROUNDS full syncs from an empty
// table (default 1), ROUNDS one-Service changes on the table the last one left, ROUNDS
// restarted agents' full syncs over it untouched, and NFT_ROUNDS each after another
// table's commit (read back) and after a change to the table (rewritten). Medians with
// min–max.
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
	ref := fmt.Sprintf("nl-kpnft%d-node-2", os.Getpid()) // raw nft -f
	for _, n := range []string{ns, ref} {
		if err := kernel.CreateNetns(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := kernel.DeleteNetns(n); err != nil {
				t.Error(err)
			}
		})
	}
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
	// The nftables syncers keep their record where the agent does, beside the table
	// (see agent.RuleSyncer.SetRecord): a restarted one finds its predecessor's.
	record := t.TempDir() + "/node-1.nftables"
	var kept bool // whether the last sync found the table untouched
	sync := func(mode string, ports []kubeproxy.ServicePort) (*agent.RuleSyncer, time.Duration, error) {
		sy, err := agent.NewRuleSyncerMode(node, mode)
		if err != nil {
			return nil, 0, err
		}
		if mode == "nftables" {
			sy.SetRecord(record)
		}
		t.Cleanup(func() { sy.Close() })
		st, err := sy.Sync(ports, true)
		kept = st.Kept
		return sy, st.Took, err
	}
	// commitElsewhere makes a commit in the namespace that does not touch the table
	// (another table made and deleted): the next full sync cannot know from the
	// generation that the table is untouched, reads it back and keeps it.
	commitElsewhere := func() error {
		return run("add table ip bench-other\ndelete table ip bench-other\n", "nft", "-f", "-")
	}
	// changeTable changes the table behind the syncer's back (a rule added to a chain
	// no packet leaves): the next full sync reads it back and rewrites it.
	changeTable := func() error {
		return run("add rule ip kube-proxy masquerading counter\n", "nft", "-f", "-")
	}
	version, _ := exec.Command("iptables", "-V").CombinedOutput()
	nftVersion, _ := exec.Command("nft", "--version").CombinedOutput()
	uname, _ := exec.Command("uname", "-r").CombinedOutput()
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("kernel %s, %d CPUs, %s, %s, load %s, %d rounds", strings.TrimSpace(string(uname)), runtime.NumCPU(),
		strings.TrimSpace(string(version)), strings.TrimSpace(string(nftVersion)), strings.Join(strings.Fields(string(load))[:3], " "), rounds)

	// nftF times a raw nft -f of text in the reference namespace.
	nftF := func(text []byte) (time.Duration, error) {
		start := time.Now()
		out, err := kernel.Run(ref, text, "nft", "-f", "-")
		if err != nil {
			return 0, fmt.Errorf("nft -f: %w: %s", err, out)
		}
		return time.Since(start), nil
	}
	resetRef := func() error {
		_, err := kernel.Run(ref, []byte("add table ip kube-proxy\ndelete table ip kube-proxy\n"), "nft", "-f", "-")
		return err
	}
	type pair struct{ ipt, nft, raw time.Duration }
	stat := func(d []time.Duration) string {
		slices.Sort(d)
		return fmt.Sprintf("%8.2f ms (%.2f–%.2f)", ms(d[len(d)/2]), ms(d[0]), ms(d[len(d)-1]))
	}
	ratios := func(r []float64) string {
		slices.Sort(r)
		return fmt.Sprintf("%.3f× (%.3f–%.3f)", r[len(r)/2], r[0], r[len(r)-1])
	}
	reportC := func(what, cname string, s []pair) {
		var a, b, c []time.Duration
		var ba, ca, bc []float64
		for _, x := range s {
			a, b, c = append(a, x.ipt), append(b, x.nft), append(c, x.raw)
			ba = append(ba, float64(x.nft)/float64(x.ipt))
			ca = append(ca, float64(x.raw)/float64(x.ipt))
			bc = append(bc, float64(x.nft)/float64(x.raw))
		}
		t.Logf("%-26s A iptables mode %s | B nftables mode (netlink) %s | %s %s | B/A %s | C/A %s | B/C %s",
			what, stat(a), stat(b), cname, stat(c), ratios(ba), ratios(ca), ratios(bc))
	}
	report := func(what string, s []pair) { reportC(what, "C raw nft -f", s) }
	reportOne := func(what string, d []time.Duration) {
		slices.Sort(d)
		t.Logf("%-30s nftables median %8.2f ms (min %.2f, max %.2f)", what, ms(d[len(d)/2]), ms(d[0]), ms(d[len(d)-1]))
	}

	for _, n := range sizes {
		ports := benchPorts(n)
		fullText := nftables.Full(nftables.Render(node, ports), nftables.Existing{}, true)
		var full []pair
		var fullUser, fullSys []time.Duration // B's, the whole process's (compiling runs beside the sending thread)
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
				u0, s0 := processCPU()
				_, x.nft, err = sync("nftables", ports)
				u1, s1 := processCPU()
				fullUser, fullSys = append(fullUser, u1-u0), append(fullSys, s1-s0)
				return err
			})
			if err := resetRef(); err != nil {
				t.Fatal(err)
			}
			d, err := nftF(fullText)
			if err != nil {
				t.Fatal(err)
			}
			x.raw = d
			full = append(full, x)
		}
		report(fmt.Sprintf("full sync %d x 2", n), full)
		t.Logf("%-26s B's CPU time, the whole process: user %s, system %s", "", stat(fullUser), stat(fullSys))

		// One Service changed: both modes' rules in place side by side (they live in
		// different tables), each synced incrementally in turn.
		var change []pair
		var cpu []time.Duration // B's CPU time, user and kernel, on its thread
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
			if err := resetRef(); err != nil {
				return err
			}
			prev := nftables.Render(node, ports)
			if _, err := nftF(nftables.Full(prev, nftables.Existing{}, true)); err != nil {
				return err
			}
			for range rounds {
				ports[n/2].Endpoints[1].Ready = !ports[n/2].Endpoints[1].Ready // one endpoint leaves, then returns
				a, err := ipt.Sync(ports, false)
				if err != nil {
					return err
				}
				cpu0 := threadCPU()
				b, err := nft.Sync(ports, false)
				if err != nil {
					return err
				}
				cpu = append(cpu, threadCPU()-cpu0)
				next := nftables.Render(node, ports)
				c, err := nftF(nftables.Diff(prev, next))
				if err != nil {
					return err
				}
				prev = next
				change = append(change, pair{a.Took, b.Took, c})
			}
			return reset()
		})
		report(fmt.Sprintf("one Service changed at %d", n), change)
		t.Logf("%-26s B's CPU time (user+system of the syncing thread; less load-bound than wall time) %s", "", stat(cpu))

		// A restarted agent's first (full) sync over the tables in place, A B C: C is the
		// nftables full sync as one transaction (how netlab did it before Restaged).
		// Before B a rule is added to its table, so B rewrites it; D is then a restart
		// after another table's commit, which reads the table back and keeps it.
		var restart []pair
		var readBack, readBackCPU []time.Duration
		cpu = nil
		in(func() error {
			if err := reset(); err != nil {
				return err
			}
			if _, _, err := sync("iptables", ports); err != nil {
				return err
			}
			if _, _, err := sync("nftables", ports); err != nil {
				return err
			}
			rs := nftables.Render(node, ports)
			for range rounds {
				var x pair
				var err error
				if _, x.ipt, err = sync("iptables", ports); err != nil {
					return err
				}
				if err := changeTable(); err != nil { // untimed: B must rewrite
					return err
				}
				cpu0 := threadCPU()
				if _, x.nft, err = sync("nftables", ports); err != nil {
					return err
				}
				if kept {
					return fmt.Errorf("restart after a change to the table: kept")
				}
				cpu = append(cpu, threadCPU()-cpu0)
				if err := commitElsewhere(); err != nil { // untimed: D reads back
					return err
				}
				cpu0 = threadCPU()
				_, d, err := sync("nftables", ports)
				if err != nil {
					return err
				}
				if !kept {
					return fmt.Errorf("restart after another table's commit: not kept")
				}
				readBack, readBackCPU = append(readBack, d), append(readBackCPU, threadCPU()-cpu0)
				start := time.Now()
				ex, err := nftnl.ListExisting()
				if err != nil {
					return err
				}
				if err := nftnl.Apply(nftables.Full(rs, ex, true)); err != nil {
					return err
				}
				x.raw = time.Since(start)
				restart = append(restart, x)
			}
			return reset()
		})
		reportC(fmt.Sprintf("restart over a changed table at %d", n), "C one transaction", restart)
		t.Logf("%-26s B's CPU time %s", "", stat(cpu))
		reportOne(fmt.Sprintf("restart at %d after another table's commit (read back)", n), readBack)
		reportOne("  its CPU time (thread)", readBackCPU)

		// nftables mode alone: a restarted agent, and a running one's periodic full sync,
		// when nothing has committed in the namespace since the last sync (the table is
		// as it was left: nothing is written), then the same after another table's
		// commit (the table is rewritten, as in the rounds above).
		var keptRestart, keptPeriodic, keptCPU []time.Duration
		in(func() error {
			if err := reset(); err != nil {
				return err
			}
			sy, _, err := sync("nftables", ports)
			if err != nil {
				return err
			}
			for range rounds {
				cpu0 := threadCPU()
				st, err := sy.Sync(ports, true)
				if err != nil {
					return err
				}
				if !st.Kept {
					return fmt.Errorf("periodic full sync over an untouched table: not kept")
				}
				keptPeriodic = append(keptPeriodic, st.Took)
				keptCPU = append(keptCPU, threadCPU()-cpu0)
				_, d, err := sync("nftables", ports)
				if err != nil {
					return err
				}
				if !kept {
					return fmt.Errorf("restart over an untouched table: not kept")
				}
				keptRestart = append(keptRestart, d)
			}
			return reset()
		})
		reportOne(fmt.Sprintf("periodic full sync at %d, untouched table", n), keptPeriodic)
		reportOne("  its CPU time (thread)", keptCPU)
		reportOne(fmt.Sprintf("restart at %d, untouched table", n), keptRestart)
	}

	ports := benchPorts(big)
	var full, change, bigCPU, restart, restartCPU, keptRestart, keptCPU, readBack, readBackCPU []time.Duration
	in(func() error {
		var sy *agent.RuleSyncer
		for range bigRounds {
			if err := reset(); err != nil {
				return err
			}
			var d time.Duration
			var err error
			if sy, d, err = sync("nftables", ports); err != nil {
				return err
			}
			full = append(full, d)
		}
		// The changes on the table the last full sync left.
		for range rounds {
			ports[big/2].Endpoints[1].Ready = !ports[big/2].Endpoints[1].Ready
			cpu0 := threadCPU()
			st, err := sy.Sync(ports, false)
			if err != nil {
				return err
			}
			change = append(change, st.Took)
			bigCPU = append(bigCPU, threadCPU()-cpu0)
		}
		// A restarted agent's first sync over the table in place: untouched since the
		// changes (nothing to write), then after another table's commit (rewritten).
		for range rounds {
			cpu0 := threadCPU()
			_, d, err := sync("nftables", ports)
			if err != nil {
				return err
			}
			if !kept {
				return fmt.Errorf("restart over an untouched table: not kept")
			}
			keptRestart = append(keptRestart, d)
			keptCPU = append(keptCPU, threadCPU()-cpu0)
		}
		for range bigRounds {
			if err := commitElsewhere(); err != nil {
				return err
			}
			cpu0 := threadCPU()
			_, d, err := sync("nftables", ports)
			if err != nil {
				return err
			}
			if !kept {
				return fmt.Errorf("restart after another table's commit: not kept")
			}
			readBack = append(readBack, d)
			readBackCPU = append(readBackCPU, threadCPU()-cpu0)
			if err := changeTable(); err != nil {
				return err
			}
			cpu0 = threadCPU()
			if _, d, err = sync("nftables", ports); err != nil {
				return err
			}
			if kept {
				return fmt.Errorf("restart after a change to the table: kept")
			}
			restart = append(restart, d)
			restartCPU = append(restartCPU, threadCPU()-cpu0)
		}
		return reset()
	})
	reportOne(fmt.Sprintf("full sync %d x 2", big), full)
	reportOne(fmt.Sprintf("one Service changed at %d", big), change)
	reportOne("  its CPU time (thread)", bigCPU)
	reportOne(fmt.Sprintf("restart at %d, untouched table", big), keptRestart)
	reportOne("  its CPU time (thread)", keptCPU)
	reportOne(fmt.Sprintf("restart at %d after another table's commit (read back)", big), readBack)
	reportOne("  its CPU time (thread)", readBackCPU)
	reportOne(fmt.Sprintf("restart over a changed table at %d (rewritten)", big), restart)
	reportOne("  its CPU time (thread)", restartCPU)
}

// processCPU is the process's user and system CPU time so far, all threads.
func processCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// threadCPU is the calling thread's CPU time, user and system (the kernel's work for a
// netlink transaction is done in the sending thread's system call). The callers run on
// a thread kernel.Do locked.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
