package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// A full sync in nftables mode writes nothing the kernel already holds: when nothing has
// committed in the namespace since the syncer's last transaction, or since a
// predecessor's whose record matches (an agent restarted), it writes only what changed
// since; after anyone else's commit it reads the table back, keeps it when it holds
// what the ports make (another table's commit, a record that does not match) and
// rewrites it otherwise (a flushed chain, a deleted element, other ports), so that it
// then reads as a new node's.
func TestNFTablesFullSyncKeepsAnUntouchedTable(t *testing.T) {
	labtest.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft is missing (scripts/deps.sh installs nftables): %v", err)
	}
	node := kubeproxy.Node{Name: "node-1", IP: "192.168.0.2", ClusterCIDR: "10.0.0.0/8", ServiceCIDR: "172.30.0.0/12"}
	var ports []kubeproxy.ServicePort
	for i := range 6 {
		sp := kubeproxy.ServicePort{Namespace: "ns", Name: fmt.Sprintf("svc%d", i), PortName: "p80", Protocol: "TCP",
			ClusterIP: fmt.Sprintf("172.30.0.%d", 10+i), Port: 80, NodePort: int32(30080 + i)}
		for j := range 2 {
			sp.Endpoints = append(sp.Endpoints, kubeproxy.Endpoint{Pod: fmt.Sprintf("p%d-%d", i, j),
				IP: fmt.Sprintf("10.180.%d.%d", i, j+2), Port: 8080, Ready: true})
		}
		ports = append(ports, sp)
	}
	ns, ref := labtest.Netns(t, "agnft", "keep"), labtest.Netns(t, "agnft", "ref")
	record := filepath.Join(t.TempDir(), "node-1.nftables")

	// want is the table a new node gets for ports (synced in ref).
	want := func() string {
		t.Helper()
		if _, err := kernel.Run(ref, []byte("add table ip kube-proxy\ndelete table ip kube-proxy\n"), "nft", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		if err := kernel.Do(ref, func() error {
			sy, err := agent.NewRuleSyncerMode(node, "nftables")
			if err != nil {
				return err
			}
			defer sy.Close()
			_, err = sy.Sync(ports, true)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return tableLines(t, ref)
	}
	var sy *agent.RuleSyncer
	restart := func() {
		if sy != nil {
			sy.Close()
		}
		var err error
		if sy, err = agent.NewRuleSyncerMode(node, "nftables"); err != nil {
			t.Fatal(err)
		}
		sy.SetRecord(record)
	}
	step := func(what string, kept bool, wrote bool) {
		t.Helper()
		var st agent.SyncStats
		if err := kernel.Do(ns, func() error {
			var err error
			st, err = sy.Sync(ports, true)
			return err
		}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !st.Full || st.Kept != kept || (st.Bytes > 0) != wrote {
			t.Errorf("%s: full %v, kept %v, wrote %d bytes; want kept %v, wrote something %v", what, st.Full, st.Kept, st.Bytes, kept, wrote)
		}
		if d := cmp.Diff(want(), tableLines(t, ns)); d != "" {
			t.Errorf("%s: the table differs from a new node's (-new node +here):\n%s", what, d)
		}
	}
	nft := func(cmd string) {
		t.Helper()
		if out, err := kernel.Run(ns, []byte(cmd+"\n"), "nft", "-f", "-"); err != nil {
			t.Fatalf("nft %s: %v: %s", cmd, err, out)
		}
	}
	t.Cleanup(func() {
		if sy != nil {
			sy.Close()
		}
	})

	restart()
	step("first sync", false, true)
	step("full sync, nothing committed since", true, false)
	ports[2].Endpoints[1].Ready = false
	step("full sync after an endpoint left", true, true)
	restart()
	step("restarted agent, nothing committed since", true, false)
	ports[4].Endpoints = ports[4].Endpoints[:1] // incrementally: its chain flushed, left to delete later
	if err := kernel.Do(ns, func() error { _, err := sy.Sync(ports, false); return err }); err != nil {
		t.Fatal(err)
	}
	restart()
	step("restarted agent right after a change that left a stale chain (deleted now)", true, true)
	restart()
	ports[3].Endpoints = ports[3].Endpoints[:1]
	step("restarted agent, other ports", false, true)
	nft("add table ip other")
	step("full sync after another table's commit", true, false)
	nft("delete table ip other")
	restart()
	step("restarted agent after another table's commit", true, false)
	restart()
	step("restarted again, nothing committed since", true, false)
	nft("delete element ip kube-proxy service-nodeports { tcp . 30081 }")
	step("full sync after an element was deleted", false, true)
	nft("add rule ip kube-proxy services counter")
	restart()
	step("restarted agent after a rule was added", false, true)
	nft("flush chain ip kube-proxy services")
	restart()
	step("restarted agent after a flushed chain", false, true)
	nft("flush chain ip kube-proxy services")
	step("full sync after a flushed chain", false, true)
	nft("delete table ip kube-proxy")
	step("full sync after the table was deleted", false, true)
	if err := os.WriteFile(record, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	restart()
	step("restarted agent, a record of nothing (the table read back)", true, false)
	nft("flush chain ip kube-proxy services")
	if err := os.WriteFile(record, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	restart()
	step("restarted agent, a record of nothing, a flushed chain", false, true)
}

// tableLines is `nft list table ip kube-proxy` in ns, its lines sorted (nft lists
// chains and sets in the order they were made).
func tableLines(t *testing.T, ns string) string {
	t.Helper()
	out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", "kube-proxy")
	if err != nil {
		t.Fatalf("nft list table in %s: %v\n%s", ns, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// As kube-proxy does, an incremental sync flushes the chains no port wants any more and
// leaves them in the table; a sync at least nftables.StaleDelay later deletes them
// (StaleDue says when one is due), and a full sync deletes them at once.
func TestNFTablesStaleChainsDeletedLater(t *testing.T) {
	labtest.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft is missing (scripts/deps.sh installs nftables): %v", err)
	}
	node := kubeproxy.Node{Name: "node-1", IP: "192.168.0.2", ClusterCIDR: "10.0.0.0/8", ServiceCIDR: "172.30.0.0/12"}
	ports := []kubeproxy.ServicePort{{Namespace: "ns", Name: "web", PortName: "http", Protocol: "TCP",
		ClusterIP: "172.30.0.10", Port: 80, Endpoints: []kubeproxy.Endpoint{
			{Pod: "a", IP: "10.180.0.2", Port: 8080, Ready: true}, {Pod: "b", IP: "10.180.0.3", Port: 8080, Ready: true}}}}
	ns := labtest.Netns(t, "agnft", "stale")
	sy, err := agent.NewRuleSyncerMode(node, "nftables")
	if err != nil {
		t.Fatal(err)
	}
	defer sy.Close()
	sync := func(full bool) {
		t.Helper()
		if err := kernel.Do(ns, func() error { _, err := sy.Sync(ports, full); return err }); err != nil {
			t.Fatal(err)
		}
	}
	chains := func() (all, empty []string) {
		t.Helper()
		out, err := kernel.Run(ns, nil, "nft", "list", "table", "ip", "kube-proxy")
		if err != nil {
			t.Fatalf("nft list table: %v\n%s", err, out)
		}
		var cur string
		n := 0
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(l, "chain endpoint-"):
				cur, n = strings.Fields(l)[1], 0
			case l == "}" && cur != "":
				all = append(all, cur)
				if n == 0 {
					empty = append(empty, cur)
				}
				cur = ""
			case cur != "" && l != "":
				n++
			}
		}
		return all, empty
	}
	sync(true)
	if all, empty := chains(); len(all) != 2 || len(empty) != 0 {
		t.Fatalf("after the first sync: endpoint chains %q, empty %q", all, empty)
	}
	for _, full := range []bool{false, true} {
		ports[0].Endpoints = ports[0].Endpoints[:1] // b leaves
		sync(false)
		all, empty := chains()
		if len(all) != 2 || len(empty) != 1 || !strings.Contains(empty[0], "10.180.0.3") {
			t.Fatalf("after b left: endpoint chains %q, empty %q; want b's left empty", all, empty)
		}
		if !full {
			time.Sleep(nftables.StaleDelay)
			if !sy.StaleDue() {
				t.Fatal("no deletion due after StaleDelay")
			}
		}
		sync(full)
		if all, empty := chains(); len(all) != 1 || len(empty) != 0 {
			t.Fatalf("a later sync (full %v): endpoint chains %q, empty %q; want b's gone", full, all, empty)
		}
		ports[0].Endpoints = append(ports[0].Endpoints, kubeproxy.Endpoint{Pod: "b", IP: "10.180.0.3", Port: 8080, Ready: true})
		sync(false)
	}
	// Gone and back before the delay: the chain is refilled, and nothing is due.
	ports[0].Endpoints = ports[0].Endpoints[:1]
	sync(false)
	ports[0].Endpoints = append(ports[0].Endpoints, kubeproxy.Endpoint{Pod: "b", IP: "10.180.0.3", Port: 8080, Ready: true})
	sync(false)
	if all, empty := chains(); len(all) != 2 || len(empty) != 0 || sy.StaleDue() {
		t.Fatalf("b gone and back: endpoint chains %q, empty %q, due %v", all, empty, sy.StaleDue())
	}
}
