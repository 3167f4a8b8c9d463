// Integration tests of the external load balancer: real labs, real connections. Root.
//
// Address plan (testdata/lb-schedulers.yaml, under a unique lab name per test):
//
//	wan 203.0.113.0/24      client .2, client2 .3, client3 .4, client4 .5, lb eth0 .1,
//	                        ingress VIP .100, LoadBalancer Services .101+ (plan order)
//	fabric 172.18.0.0/24    lb eth1 .1 (the nodes' gateway), node-1 .11 (weight 3),
//	                        node-2 .12 (weight 2), node-3 .13 (weight 1)
//	pods                    shop-1..3, one per node; solo-1 on node-1 only
//
// Every scheduler Service has externalTrafficPolicy: Local, so the node the LB picked is
// the node whose pod answers (the echo's "node") and the pod sees the client's address.
package lb_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// Health checks: generous enough not to flap on a loaded 2-core CI machine.
const checkInterval, checkFall, checkRise = 500 * time.Millisecond, 2, 2

// vipOf returns the LoadBalancer address of a Service.
func vipOf(t *testing.T, p *plan.Plan, name string) string {
	t.Helper()
	for _, s := range p.Services {
		if s.Name == name && s.LoadBalancerIP != "" {
			return s.LoadBalancerIP
		}
	}
	t.Fatalf("no LoadBalancer Service %s in the plan", name)
	return ""
}

func clientNS(t *testing.T, p *plan.Plan, name string) (ns string, ip string) {
	t.Helper()
	for _, c := range p.Clients {
		if c.Name == name {
			return c.Netns, plan.Addr(c.IP)
		}
	}
	t.Fatalf("no client %s", name)
	return "", ""
}

// waitHealthy waits until the agent has applied rules in which the named service's
// healthy real servers are exactly want (node names).
func waitHealthy(t *testing.T, lab string, service string, want ...string) lb.VirtualService {
	t.Helper()
	return healthyBy(t, time.Now().Add(30*time.Second), lab, service, want...)
}

// healthyBy is waitHealthy with a deadline: it fails the test if the agent's published
// state does not show exactly want as the service's healthy real servers by then.
func healthyBy(t *testing.T, deadline time.Time, lab string, service string, want ...string) lb.VirtualService {
	t.Helper()
	var last []string
	for {
		st, err := rundir.ReadLBStateFile(stateFile(lab))
		if err == nil {
			for _, vs := range st.Services {
				if vs.Name != service {
					continue
				}
				last = last[:0]
				for _, b := range vs.Backends {
					if b.Healthy {
						last = append(last, b.Name)
					}
				}
				if slices.Equal(last, want) {
					return vs
				}
			}
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("service %s: healthy real servers %v by the deadline, want %v", service, last, want)
	return lb.VirtualService{}
}

func stateFile(name string) string { return rundir.ForLab(name).LBState() }

// unchangedRules runs sample, again (up to three times in all) when the agent applied its
// rules meanwhile: a health transition (a check stalled past its timeouts on a loaded
// machine) re-renders them, which restarts the schedulers' sequences, so an exact
// sequence holds only for connections made while the rules stayed the same.
func unchangedRules(t *testing.T, lab string, sample func() []string) []string {
	t.Helper()
	applies := func() int {
		st, err := rundir.ReadLBStateFile(stateFile(lab))
		if err != nil {
			t.Fatalf("the LB's state: %v", err)
		}
		return st.Applies
	}
	var got []string
	for try := 1; try <= 3; try++ {
		before := applies()
		got = sample()
		after := applies()
		if after == before {
			return got
		}
		t.Logf("the LB applied its rules %d times while the connections were made (%v): again", after-before, got)
	}
	t.Fatalf("the LB applied its rules during each of three samples: last %v", got)
	return nil
}

// requests sends n sequential requests, each on a new connection, and returns the node
// that answered each; every answer must show the client's own address.
func requests(t *testing.T, ns, clientIP, vip string, n int) []string {
	t.Helper()
	var nodes []string
	for range n {
		e, _, err := labtest.GetEcho(ns, "http://"+vip+"/")
		if err != nil {
			t.Fatalf("request to %s: %v", vip, err)
		}
		if e.ClientIP != clientIP {
			t.Fatalf("pod on %s saw client %s, want the real client %s", e.Node, e.ClientIP, clientIP)
		}
		nodes = append(nodes, e.Node)
	}
	return nodes
}

func count(nodes []string) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[n]++
	}
	return m
}

func TestIntegrationLBSchedulers(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "lbs", labtest.Fixture(t, "lb-schedulers.yaml"))
	all := []string{"node-1", "node-2", "node-3"}
	for _, s := range []string{"default/rr:http", "default/wrr:http", "default/sh:http", "default/random:http", "default/sticky:http"} {
		waitHealthy(t, p.Lab, s, all...)
	}
	cns, cip := clientNS(t, p, "client")

	t.Run("a new lab's LB writes its start's rules with the first checks' verdicts", func(t *testing.T) {
		firstApplyCarriesTheStart(t, p)
	})

	t.Run("rr alternates exactly", func(t *testing.T) {
		got := unchangedRules(t, p.Lab, func() []string { return requests(t, cns, cip, vipOf(t, p, "rr"), 9) })
		for i := range got {
			if i >= 3 && got[i] != got[i-3] {
				t.Fatalf("not a cycle of 3: %v", got)
			}
		}
		if c := count(got[:3]); len(c) != 3 {
			t.Fatalf("first three connections did not reach three nodes: %v", got)
		}
	})

	t.Run("wrr follows the node weights", func(t *testing.T) {
		// Two whole cycles of IPVS's sequence for 3:2:1: exact counts wherever it starts.
		got := count(unchangedRules(t, p.Lab, func() []string { return requests(t, cns, cip, vipOf(t, p, "wrr"), 12) }))
		if want := map[string]int{"node-1": 6, "node-2": 4, "node-3": 2}; !mapsEqual(got, want) {
			t.Fatalf("wrr over 12 connections: %v, want %v", got, want)
		}
	})

	t.Run("sh keeps each client on one node, as HMARK hashes it", func(t *testing.T) {
		vip := vipOf(t, p, "sh")
		vs := waitHealthy(t, p.Lab, "default/sh:http", all...)
		table := lb.SHTable(vs)
		seen := map[string]bool{}
		for _, c := range []string{"client", "client2", "client3", "client4"} {
			ns, ip := clientNS(t, p, c)
			got := count(requests(t, ns, ip, vip, 4))
			predicted := vs.Backends[table[lb.SHBucket(vs, netip.MustParseAddr(ip))]].Name
			if len(got) != 1 || got[predicted] != 4 {
				t.Errorf("%s (%s): nodes %v, want all 4 on %s (the bucket table's choice)", c, ip, got, predicted)
			}
			seen[predicted] = true
		}
		if len(seen) < 2 {
			t.Errorf("four clients all hash to one node: %v", seen)
		}
	})

	t.Run("random reaches every node", func(t *testing.T) {
		got := count(requests(t, cns, cip, vipOf(t, p, "random"), 60))
		for _, n := range all {
			if got[n] == 0 {
				t.Errorf("random: %s got none of 60 connections: %v", n, got)
			}
		}
	})

	t.Run("persistence keeps a client on its node", func(t *testing.T) {
		vip := vipOf(t, p, "sticky")
		first := count(requests(t, cns, cip, vip, 4))
		ns2, ip2 := clientNS(t, p, "client2")
		second := count(requests(t, ns2, ip2, vip, 4))
		if len(first) != 1 || len(second) != 1 {
			t.Fatalf("persistent clients moved: client %v, client2 %v", first, second)
		}
		if mapsEqual(first, second) {
			t.Errorf("client2 was scheduled onto client's node (rr would pick the next one): %v", first)
		}
	})

	t.Run("ETP Local sends only to nodes with a local endpoint", func(t *testing.T) {
		home := ""
		for _, pod := range p.Pods {
			if pod.Deployment == "solo" {
				home = pod.Node
			}
		}
		waitHealthy(t, p.Lab, "default/solo:http", home)
		got := count(requests(t, cns, cip, vipOf(t, p, "solo"), 6))
		if !mapsEqual(got, map[string]int{home: 6}) {
			t.Fatalf("solo (one pod, on %s): %v", home, got)
		}
	})

	t.Run("netlab lb shows the counters", func(t *testing.T) {
		// One connection to solo stays open (established: an active connection); the six
		// earlier ones to solo's node are closed (in TIME_WAIT: inactive).
		home := ""
		for _, pod := range p.Pods {
			if pod.Deployment == "solo" {
				home = pod.Node
			}
		}
		ka := labtest.Client(cns, true)
		t.Cleanup(ka.CloseIdleConnections)
		resp, err := ka.Get("http://" + vipOf(t, p, "solo") + "/")
		if err != nil {
			t.Fatalf("keep-alive request to solo: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()

		out, err := labtest.CLI(t, "lb", "--name", p.Lab, "-o", "json")
		if err != nil {
			t.Fatalf("netlab lb: %v\n%s", err, out)
		}
		var r lb.Report
		if err := json.Unmarshal([]byte(out[strings.IndexByte(out, '{'):]), &r); err != nil {
			t.Fatalf("netlab lb -o json: %v\n%s", err, out)
		}
		found := 0
		for _, s := range r.Services {
			switch s.Name {
			case "default/rr:http":
				found++
				for _, b := range s.Backends {
					// 9 connections, 3 per node, each at least a handshake and a request,
					// all closed.
					if b.Conns != 3 || !b.Healthy || b.Weight == 0 || b.In.Packets < 3*3 || b.Out.Packets < 3*2 || b.In.Bytes == 0 ||
						b.Active != 0 || b.Inactive != 3 {
						t.Errorf("rr real server %s: %+v", b.Node, b)
					}
				}
			case "default/solo:http":
				found++
				for _, b := range s.Backends {
					want := lb.ConnCount{}
					if b.Node == home {
						want = lb.ConnCount{Active: 1, Inactive: 6}
					}
					if b.ConnCount != want {
						t.Errorf("solo real server %s: active %d inactive %d, want %d and %d", b.Node, b.Active, b.Inactive, want.Active, want.Inactive)
					}
				}
			}
		}
		if found != 2 {
			t.Fatalf("default/rr:http or default/solo:http missing in %s", out)
		}
	})
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestIntegrationLBFailover(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "lbf", labtest.Fixture(t, "lb-schedulers.yaml"))
	all := []string{"node-1", "node-2", "node-3"}
	waitHealthy(t, p.Lab, "default/rr:http", all...)
	cns, cip := clientNS(t, p, "client")
	vip := vipOf(t, p, "rr")

	// A keep-alive connection through the LB, established before anything changes.
	ka := labtest.Client(cns, true)
	keep := func() labtest.Echo {
		t.Helper()
		resp, err := ka.Get("http://" + vip + "/")
		if err != nil {
			t.Fatalf("keep-alive request: %v", err)
		}
		defer resp.Body.Close()
		var e labtest.Echo
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("keep-alive answer: %v: %s", err, b)
		}
		return e
	}
	held := keep().Node
	victim := "node-2"
	if held == victim {
		victim = "node-3"
	}

	// Detection takes interval × fall (the last failing check ends within its timeout,
	// below the interval), then the agent's coalescing and its restore: about 1.5 s. The
	// wait below is a bound on a hang, not a timing (a loaded machine stretches every
	// step); that the health checks took the node out, and not a restart of the agent, is
	// checked on the agent's record and log below.
	lbBefore := labtest.Record(t, p.Lab, "lb", "lb")
	failed := time.Now()
	out, err := labtest.CLI(t, "node", "fail", victim, "--name", p.Lab)
	if err != nil {
		t.Fatalf("node fail: %v\n%s", err, out)
	}
	rest := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == victim })
	waitHealthy(t, p.Lab, "default/rr:http", rest...)
	t.Logf("%s out of rotation %v after node fail (checks every %v, fall %d)", victim, time.Since(failed).Round(time.Millisecond), checkInterval, checkFall)
	// At once, every request succeeds (requests fails the test otherwise) and none
	// reaches the failed node.
	got := requests(t, cns, cip, vip, 20)
	if c := count(got); c[victim] != 0 {
		t.Fatalf("after failing %s: %v", victim, c)
	}
	// The established connection survived the rule change, on its node.
	if e := keep(); e.Node != held {
		t.Errorf("keep-alive connection moved from %s to %s", held, e.Node)
	}

	recovered := time.Now()
	out, err = labtest.CLI(t, "node", "recover", victim, "--name", p.Lab)
	if err != nil {
		t.Fatalf("node recover: %v\n%s", err, out)
	}
	waitHealthy(t, p.Lab, "default/rr:http", all...)
	t.Logf("%s back in rotation %v after node recover (rise %d)", victim, time.Since(recovered).Round(time.Millisecond), checkRise)
	if c := count(requests(t, cns, cip, vip, 9)); c[victim] == 0 {
		t.Fatalf("after recovering %s it gets nothing: %v", victim, c)
	}
	if lbAfter := labtest.Record(t, p.Lab, "lb", "lb"); lbAfter.PID != lbBefore.PID || lbAfter.Restarts != lbBefore.Restarts {
		t.Errorf("the lb agent was restarted during the failover (pid %d → %d, restarts %d → %d): its health checks did not decide it",
			lbBefore.PID, lbAfter.PID, lbBefore.Restarts, lbAfter.Restarts)
	}
	logs, _ := os.ReadFile(rundir.ForLab(p.Lab).Log("lb", "lb"))
	// Each transition of the victim is logged with the check that decided it.
	for _, msg := range []string{`"real server down"`, `"real server up"`} {
		found := false
		for line := range strings.Lines(string(logs)) {
			found = found || (strings.Contains(line, msg) && strings.Contains(line, `"node":"`+victim+`"`) && strings.Contains(line, `"check":"`))
		}
		if !found {
			t.Errorf("lb agent log has no %s line for %s with its check:\n%s", msg, victim, logs)
		}
	}
}

// TestIntegrationLBEstablishedSurvivesRemoval removes a real server from the rules while
// a connection to it is open (as a health transition does) and checks that conntrack
// keeps that connection on it while new connections avoid it.
func TestIntegrationLBEstablishedSurvivesRemoval(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "lbe", labtest.Fixture(t, "lb-schedulers.yaml"))
	all := []string{"node-1", "node-2", "node-3"}
	vs := waitHealthy(t, p.Lab, "default/rr:http", all...)
	cns, _ := clientNS(t, p, "client")
	vip := vipOf(t, p, "rr")

	var dials atomic.Int32
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return kernel.DialIn(cns, network, addr, 3*time.Second)
		},
		MaxIdleConnsPerHost: 1,
	}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func() string {
		t.Helper()
		resp, err := c.Get("http://" + vip + "/")
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		defer resp.Body.Close()
		var e labtest.Echo
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		return e.Node
	}
	held := get()

	// Take that node out of the rules the way the agent does on a failed check. The agent
	// (started by this test's Up) is stopped first so that no transition of its own
	// re-renders the rules meanwhile. It is marked stopped on purpose, as `pod kill` marks
	// a pod, or the lab's supervisor would start it again and its first render would put
	// the node back.
	mark := rundir.ForLab(p.Lab).StoppedMark("lb", "lb")
	if err := os.WriteFile(mark, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	kernel.Terminate(kernel.PIDsIn([]string{p.LB.Netns})[p.LB.Netns], 5*time.Second)
	for i := range vs.Backends {
		vs.Backends[i].Healthy = vs.Backends[i].Name != held
	}
	saved, err := kernel.Save(p.LB.Netns, false, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := lb.ParseSave(saved)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := rundir.ReadLBStateFile(stateFile(p.Lab))
	if err != nil {
		t.Fatal(err)
	}
	vss := st2.Services
	for i := range vss {
		if vss[i].Name == vs.Name {
			vss[i] = vs
		}
	}
	input, err := lb.RenderApply(vss, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := kernel.Restore(p.LB.Netns, input); err != nil {
		t.Fatal(err)
	}

	for range 5 {
		if n := get(); n != held {
			t.Fatalf("established connection moved from %s to %s", held, n)
		}
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("keep-alive connection was re-dialled (%d dials): the test did not reuse it", d)
	}
	_, ip := clientNS(t, p, "client")
	if c := count(requests(t, cns, ip, vip, 6)); c[held] != 0 {
		t.Errorf("new connections still reach removed %s: %v", held, c)
	}
	if pids := kernel.PIDsIn([]string{p.LB.Netns})[p.LB.Netns]; len(pids) > 0 {
		t.Errorf("the stopped lb agent was started again (pids %v): the rules above may be its own", pids)
	}
}

// TestIntegrationLBRulesRestore checks that the kernel accepts every golden rule set as
// written (iptables-restore --noflush in a scratch namespace) and that re-applying a
// render is idempotent.
func TestIntegrationLBRulesRestore(t *testing.T) {
	labtest.RequireRoot(t)
	ns := "nl-" + labtest.LabName("lbr") + "-lb"
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kernel.DeleteNetns(ns); err != nil {
			t.Errorf("delete %s: %v", ns, err)
		}
	})
	goldens, _ := filepath.Glob("testdata/*.golden")
	if len(goldens) == 0 {
		t.Fatal("no golden files")
	}
	for _, g := range goldens {
		if strings.Contains(g, "existing") {
			continue // assumes chains that only a previous apply would have made
		}
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := kernel.Restore(ns, b); err != nil {
			t.Errorf("%s: %v", filepath.Base(g), err)
		}
	}
	// Through the agent's path: plan services -> RenderApply against iptables-save, twice.
	p := labtest.Plan(t, "lbr", labtest.Fixture(t, "lb-schedulers.yaml"))
	vss, _, err := agent.LBServices(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		saved, err := kernel.Save(ns, false, "")
		if err != nil {
			t.Fatal(err)
		}
		st, err := lb.ParseSave(saved)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 && len(st.MissingJumps()) != 0 {
			t.Errorf("jumps missing after the first apply: %v", st.MissingJumps())
		}
		input, err := lb.RenderApply(vss, st)
		if err != nil {
			t.Fatal(err)
		}
		if err := kernel.Restore(ns, input); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	saved, _ := kernel.Save(ns, false, "")
	for _, j := range lb.JumpRules() {
		if n := strings.Count(string(saved), "-j "+j.Target+"\n"); n == 0 {
			t.Errorf("no jump to %s after two applies", j.Target)
		}
	}
	st, _ := lb.ParseSave(saved)
	jumps := 0
	for _, r := range st.Rules {
		if !strings.HasPrefix(r.Chain, "NETLAB-") {
			jumps++
		}
	}
	if jumps != len(lb.JumpRules()) {
		t.Errorf("%d jump rules in built-in chains after two applies, want %d", jumps, len(lb.JumpRules()))
	}
}

// firstApplyCarriesTheStart checks, in a lab just up, that the LB's first write of its new
// namespace's rules was the start's (the WAN filter, every VIP) together with the first
// checks' verdicts, not a restore of its own before them; unless the LB reported ready
// with no verdict (none decided in time, or nothing to check), when it wrote the start's
// alone, first. Either way the WAN filter is in place.
func firstApplyCarriesTheStart(t *testing.T, p *plan.Plan) {
	t.Helper()
	b, err := os.ReadFile(rundir.ForLab(p.Lab).Log("lb", "lb"))
	if err != nil {
		t.Fatal(err)
	}
	var first, readyWhy string
	for _, line := range strings.Split(string(b), "\n") {
		var e struct{ Msg, Why string }
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e.Msg == "rules applied" && first == "" {
			first = e.Why
		}
		if e.Msg == "lb agent ready" {
			readyWhy = e.Why
			break
		}
	}
	switch {
	case first == "":
		t.Errorf("no rules applied before the LB reported ready (%q)", readyWhy)
	case first == "start" && readyWhy != "timeout" && readyWhy != "no real servers to check":
		t.Errorf("the LB applied the start's rules alone (%q) and reported ready on %q: want them with the first verdicts", first, readyWhy)
	case first != "start" && !strings.HasPrefix(first, "start, health "):
		t.Errorf("the LB's first apply was %q, want the start's with the first checks' verdicts", first)
	}
	rulesOnce(t, p)
}

// rulesOnce checks the LB namespace's rules: one jump to the WAN filter, first in
// FORWARD, and each of the LB's jumps from a built-in chain exactly once.
func rulesOnce(t *testing.T, p *plan.Plan) {
	t.Helper()
	saved, err := kernel.Save(p.LB.Netns, false, "")
	if err != nil {
		t.Fatal(err)
	}
	wan, forward := 0, ""
	for _, line := range strings.Split(string(saved), "\n") {
		if strings.HasPrefix(line, "-A FORWARD ") {
			if forward == "" {
				forward = line
			}
			if strings.HasSuffix(line, "-j "+lb.ChainWanFilter) {
				wan++
			}
		}
	}
	if wan != 1 || !strings.HasSuffix(forward, "-j "+lb.ChainWanFilter) {
		t.Errorf("%d jumps to the WAN filter in FORWARD (first rule %q), want one, first:\n%s", wan, forward, saved)
	}
	st, err := lb.ParseSave(saved)
	if err != nil {
		t.Fatal(err)
	}
	if missing := st.MissingJumps(); len(missing) > 0 {
		t.Errorf("jumps missing: %v", missing)
	}
	jumps := map[string]int{}
	for _, r := range st.Rules {
		jumps[r.Table+" "+r.Chain+" "+r.Target]++
	}
	for _, j := range lb.JumpRules() {
		if n := jumps[j.Table+" "+j.Chain+" "+j.Target]; n != 1 {
			t.Errorf("%s: %d jumps from %s to %s, want one", j.Table, n, j.Chain, j.Target)
		}
	}
}

// TestIntegrationLBRestartKeepsItsRules kills a lab's LB agent: the supervisor starts it
// again, unheld, in a namespace that has its rules (the old path: read, the start's restore
// with them, the checks' verdicts): every rule is still there once, the WAN filter first.
// Then again in a namespace flushed of every table: unheld, it writes the start's rules
// before its first checks (not with their verdicts, as in up's new namespace).
func TestIntegrationLBRestartKeepsItsRules(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "lbk", labtest.Fixture(t, "lb-schedulers.yaml"))
	d := rundir.ForLab(p.Lab)
	before, err := supervise.ReadRecord(d, "lb", "lb")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	restarted := labtest.WaitFor(60*time.Second, func() bool {
		rec, err := supervise.ReadRecord(d, "lb", "lb")
		if err != nil || rec.PID == before.PID || !rec.Alive() {
			return false
		}
		b, err := os.ReadFile(d.Log("lb", "lb"))
		return err == nil && strings.Count(string(b), `"msg":"lb agent ready"`) >= 2
	})
	if !restarted {
		t.Fatal("the LB agent was not started again and ready within the bound")
	}
	rulesOnce(t, p)
	for _, s := range []string{"default/rr:http", "default/wrr:http"} {
		waitHealthy(t, p.Lab, s, "node-1", "node-2", "node-3")
	}

	// Restarted in a namespace with no table at all (someone flushed it), not held by up:
	// it writes the start's rules (the WAN filter) at once, before its first checks, not
	// with their verdicts as it does in up's new namespace.
	if _, err := kernel.Run(p.LB.Netns, nil, "nft", "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	var empty bool
	if err := kernel.Do(p.LB.Netns, func() error { empty = kernel.IPTablesEmptyHere(); return nil }); err != nil {
		t.Fatal(err)
	}
	if !empty {
		t.Skip("the LB's namespace keeps a table after nft flush ruleset (legacy iptables?): the empty namespace's restart is not checked")
	}
	mid, err := supervise.ReadRecord(d, "lb", "lb")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(mid.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var logText string
	restarted = labtest.WaitFor(60*time.Second, func() bool {
		rec, err := supervise.ReadRecord(d, "lb", "lb")
		if err != nil || rec.PID == mid.PID || !rec.Alive() {
			return false
		}
		b, err := os.ReadFile(d.Log("lb", "lb"))
		logText = string(b)
		return err == nil && strings.Count(logText, `"msg":"lb agent ready"`) >= 3
	})
	if !restarted {
		t.Fatal("the LB agent was not started again (in its flushed namespace) and ready within the bound")
	}
	// The third start's first apply is the start's own.
	third := logText
	for range 3 {
		i := strings.Index(third, `"msg":"lb agent starting"`)
		if i < 0 {
			t.Fatalf("the LB's log has fewer than three starts:\n%s", logText)
		}
		third = third[i+1:]
	}
	var first struct{ Why string }
	for _, line := range strings.Split(third, "\n") {
		if strings.Contains(line, `"msg":"rules applied"`) {
			if err := json.Unmarshal([]byte(line), &first); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			break
		}
	}
	if first.Why != "start" {
		t.Errorf("the first apply after a restart in a flushed namespace is %q, want the start's own (\"start\", before any check)", first.Why)
	}
	rulesOnce(t, p)
	for _, s := range []string{"default/rr:http", "default/wrr:http"} {
		waitHealthy(t, p.Lab, s, "node-1", "node-2", "node-3")
	}
}
