package ingress_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
	"github.com/netlabdev/netlab/netlab/supervise"
	"golang.org/x/sys/unix"
)

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

// cpuClient is nsClient (a connection per request) that dials each connection from the
// next CPU this process may run on, in turn: a node's ingress with a worker per CPU gives
// a connection to the worker on the CPU that handled its handshake (SO_INCOMING_CPU), so
// a client on one CPU would reach one worker only.
func cpuClient(t *testing.T, ns, addr string) *http.Client {
	cpus := allowedCPUs(t)
	var next atomic.Uint32
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			cpu := cpus[int(next.Add(1)-1)%len(cpus)]
			var conn net.Conn
			err := kernel.Do(ns, func() error { // on a thread of its own, locked
				var was, one unix.CPUSet
				if err := unix.SchedGetaffinity(0, &was); err != nil {
					return err
				}
				one.Set(cpu)
				if err := unix.SchedSetaffinity(0, &one); err != nil {
					return err
				}
				defer func() { _ = unix.SchedSetaffinity(0, &was) }() // its CPUs back before the thread is let go
				var err error
				conn, err = net.DialTimeout(network, addr, 3*time.Second)
				return err
			})
			return conn, err
		},
		DisableKeepAlives: true,
	}}
}

// cpusAllowed is /proc/PID/status's Cpus_allowed_list.
func cpusAllowed(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no Cpus_allowed_list", pid)
	return ""
}

// workersYAML is the default scenario with spec.ingress.workers: 2, plus an Ingress for
// extra.example when extra is set.
func workersYAML(t *testing.T, extra bool) string {
	t.Helper()
	y := strings.Replace(string(scenario.DefaultYAML()), "spec:\n  nodes:", "spec:\n  ingress: {workers: 2}\n  nodes:", 1)
	if !strings.Contains(y, "workers: 2") {
		t.Fatal("the default scenario's Lab changed: no place for spec.ingress")
	}
	if extra {
		y += `
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: extra}
spec:
  ingressClassName: netlab
  rules:
  - host: extra.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
`
	}
	return y
}

// ingressProcs lists the lab's ingress processes of node: the agent, then its workers
// (the processes with --worker), by pid.
func ingressProcs(labName, node string) (agent []int, workers []int) {
	for _, a := range labtest.AgentProcs(labName) {
		if a.Argv[2] != "ingress" || !slices.Contains(a.Argv, node) {
			continue
		}
		if slices.Contains(a.Argv, "--worker") {
			workers = append(workers, a.PID)
		} else {
			agent = append(agent, a.PID)
		}
	}
	return agent, workers
}

// A lab whose ingress has two workers per node: the node's agent starts its worker, both
// serve the node's port 80 (the node's one access log names the worker of each request),
// each on a CPU of its own when the host has two (a worker per CPU),
// the metrics port sums them, `apply` returns only once both route by the new Ingress,
// and `down` leaves no worker.
func TestIntegrationIngressWorkers(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "ingw", workersYAML(t, false))
	n1 := nodeIP(t, p, "node-1")
	cns := p.Clients[0].Netns
	agents, workers := ingressProcs(p.Lab, "node-1")
	if len(agents) != 1 || len(workers) != 1 {
		t.Fatalf("node-1's ingress processes: agent %v, workers %v; want one of each", agents, workers)
	}
	// Both run with the runtime setting that keeps Go's system monitor out of its deep
	// sleep (supervise.IngressGODEBUG): the agent from its supervisor, the worker from
	// the agent.
	for _, pid := range append(slices.Clone(agents), workers...) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		var godebug string
		for _, e := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(e, "GODEBUG="); ok {
				godebug = v
			}
		}
		if !slices.Contains(strings.Split(godebug, ","), supervise.IngressGODEBUG) {
			t.Errorf("ingress process %d runs with GODEBUG=%q, want %s in it", pid, godebug, supervise.IngressGODEBUG)
		}
		// Its standard output is the node's log (JSON lines: its own log and the access
		// lines), its standard error the runtime's file: whatever the Go runtime prints
		// (the scheduler line of that setting, a crash) never enters the JSON log.
		rd := rundir.ForLab(p.Lab)
		for fd, want := range map[int]string{1: rd.Log("ingress", "node-1"), 2: rd.RuntimeLog("ingress", "node-1")} {
			if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err != nil || got != want {
				t.Errorf("ingress process %d: descriptor %d is %q (%v), want %s", pid, fd, got, err, want)
			}
		}
	}
	// On a host with two CPUs the two workers are a worker per CPU: each runs on one, the
	// agent (worker 1) on the first; with more CPUs neither is pinned.
	cpus := allowedCPUs(t)
	for i, pid := range append(slices.Clone(agents), workers...) {
		got := cpusAllowed(t, pid)
		switch {
		case len(cpus) == 2 && got != strconv.Itoa(cpus[i]):
			t.Errorf("worker %d (pid %d) may run on CPUs %s, want %d alone", i+1, pid, got, cpus[i])
		case len(cpus) > 2 && !strings.ContainsAny(got, ",-"):
			t.Errorf("worker %d (pid %d) may run on CPU %s alone: 2 workers on %d CPUs are not pinned", i+1, pid, got, len(cpus))
		}
	}
	c := cpuClient(t, cns, n1+":80") // a connection per request: the kernel picks a worker per connection
	logPath := rundir.ForLab(p.Lab).Log("ingress", "node-1")
	sent := 0
	waitFor := func(what string, cond func() (bool, string)) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var ok bool
			if ok, last = cond(); ok {
				return
			}
		}
		t.Fatalf("%s: not within 20 s; last seen: %s", what, last)
	}
	waitFor("requests served by both workers", func() (bool, string) {
		for range 10 {
			echoFrom(t, c, "http://app.example/")
			sent++
		}
		seen := labtest.AccessLogWorkers(t, logPath)
		return seen[1] > 0 && seen[2] > 0, fmt.Sprintf("lines per worker %v after %d requests", seen, sent)
	})

	// The metrics port (inside the node) serves both workers' requests summed.
	mc := nsClient(p.Nodes[0].Netns, "127.0.0.1:10254", nil)
	counter := regexp.MustCompile(`(?m)^netlab_ingress_requests_total\{code="200",ingress="default/app",service="default/web:http"\} (\d+)$`)
	waitFor("the merged request counter", func() (bool, string) {
		resp, err := mc.Get("http://node/metrics")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := counter.FindSubmatch(b)
		if m == nil {
			return false, string(b)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n == sent, fmt.Sprintf("counter %d, requests sent %d", n, sent)
	})

	// apply reloads every worker and waits for all of them: right after it, every
	// connection, whichever worker takes it, finds the new Ingress.
	file := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(file, []byte(workersYAML(t, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := labtest.CLI(t, "apply", "--name", p.Lab, "-f", file); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	before := labtest.AccessLogWorkers(t, logPath)
	for range 40 {
		resp, err := c.Get("http://extra.example/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("extra.example right after apply: %d", resp.StatusCode)
		}
	}
	waitFor("extra.example served by both workers", func() (bool, string) {
		seen := labtest.AccessLogWorkers(t, logPath)
		return seen[1] > before[1] && seen[2] > before[2], fmt.Sprintf("lines per worker %v, before %v", seen, before)
	})

	// trace names the worker that served the request.
	tr, err := lab.TraceWith(context.Background(), p.Lab, lab.TraceOptions{URL: "http://app.example/"})
	if err != nil {
		t.Fatal(err)
	}
	var ingressHop string
	for _, h := range tr.Hops {
		if h.Component == "ingress" {
			ingressHop = h.Summary
		}
	}
	if !regexp.MustCompile(`^ingress on node-\d \(worker [12]\): `).MatchString(ingressHop) {
		t.Errorf("trace's ingress hop %q names no worker", ingressHop)
	}

	// down ends every worker.
	all := append(agents, workers...)
	if out, err := labtest.CLI(t, "down", "--name", p.Lab); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	for _, pid := range all {
		if kernel.Cmdline(pid) != nil && lab.IsAgentOf(kernel.Cmdline(pid), p.Lab) {
			t.Errorf("ingress process %d (%v) still runs after down", pid, kernel.Cmdline(pid))
		}
	}
	if a, w := ingressProcs(p.Lab, "node-1"); len(a)+len(w) > 0 {
		t.Errorf("after down: ingress agent %v, workers %v", a, w)
	}
}

// The premise of the runtime log's separate file: with supervise.IngressGODEBUG, on a host
// whose monotonic clock is past 24.8 days (here a time namespace shifts it to 25.5), the Go
// runtime prints a scheduler line at the start — to standard error only. The process here
// is the ingress agent of this binary, stopped at once by its namespace check.
func TestIntegrationIngressSchedLineOnStderr(t *testing.T) {
	labtest.RequireRoot(t)
	if err := exec.Command("unshare", "-T", "--monotonic", "2200000", "--fork", "true").Run(); err != nil {
		t.Skipf("no time namespace here (unshare -T): %v", err)
	}
	var stdout, stderr strings.Builder
	cmd := exec.Command("unshare", "-T", "--monotonic", "2200000", "--fork", labtest.Binary(t), "agent", "ingress", "--lab", "nolab", "--node", "node-1")
	cmd.Env = append(supervise.WithGODEBUG(os.Environ(), supervise.IngressGODEBUG), labtest.AsCLIEnv+"=1")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("an ingress agent outside its namespace ran")
	}
	if !strings.Contains(stderr.String(), "SCHED ") {
		t.Errorf("no scheduler line on standard error: %q", stderr.String())
	}
	if strings.Contains(stdout.String(), "SCHED") {
		t.Errorf("a scheduler line on standard output: %q", stdout.String())
	}
}
