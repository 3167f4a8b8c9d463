package ingressagent_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/ingressagent"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"golang.org/x/sys/unix"
	networkingv1 "k8s.io/api/networking/v1"
)

// childPIDs lists this process's child processes (the test's workers).
func childPIDs(t *testing.T) []int {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var out []int
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(w); err == nil {
				out = append(out, pid)
			}
		}
	}
	slices.Sort(out)
	return out
}

// A node's ingress with two workers: both serve the same port (the access log names which
// served each request), the metrics are their sum, a reload reaches both before the node's
// stamp says the plan is loaded, a killed worker is replaced while requests go on, and no
// worker outlives the agent.
func TestIngressWorkers(t *testing.T) {
	// Worker 1 is this process: with a worker per CPU it would run on one CPU, and so
	// would this test's client, whose every connection would then go to worker 1 (the
	// workers' CPUs: TestIngressWorkersPinned).
	t.Setenv(ingressagent.CPUAffinityEnv, "off")
	dir := t.TempDir()
	_, webPort := namedUpstream(t, "web-1")
	_, apiPort := namedUpstream(t, "api-1")
	p := &plan.Plan{
		Lab:   "t",
		Nodes: []plan.Node{{Name: "node-1", IP: "127.0.0.1/8"}},
		Services: []plan.Service{
			{Namespace: "default", Name: "web", ClusterIP: "127.0.0.1", Ports: []plan.ServicePort{{Name: "http", Port: webPort}}},
			{Namespace: "default", Name: "api", ClusterIP: "127.0.0.1", Ports: []plan.ServicePort{{Name: "http", Port: apiPort}}},
		},
		Ingresses: []plan.Ingress{labtest.IngressObject(t, "web", "app.example", "web", networkingv1.ServiceBackendPort{Name: "http"})},
	}
	cfgPath := filepath.Join(dir, "plan.json")
	labtest.WritePlan(t, cfgPath, p)
	logPath, logf, wlog := workerLogs(t, dir)
	command := workerCommand(dir, logf, wlog)

	reload := make(chan struct{})
	addrs, stop := startAgent(t, ingressagent.IngressConfig{Lab: "t", Node: "node-1", Dir: dir,
		AccessLog: logf, Reload: reload, Workers: 2, WorkerCommand: command}, slog.New(slog.NewJSONHandler(wlog, nil)))

	// A new connection per request: the kernel picks a worker's listener per connection.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	sent := 0
	request := func(host string) int {
		t.Helper()
		status, _, _ := get(t, c, "http://"+addrs.HTTP+"/", host)
		sent++
		return status
	}
	// waitFor polls cond (which says what it saw) for up to 20 s.
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

	// Both workers serve: each request's access-log line names its worker.
	waitFor("requests served by worker 1 and worker 2", func() (bool, string) {
		for range 10 {
			if s := request("app.example"); s != 200 {
				return false, fmt.Sprintf("status %d", s)
			}
		}
		seen := labtest.AccessLogWorkers(t, logPath)
		return seen[1] > 0 && seen[2] > 0, fmt.Sprintf("lines per worker %v after %d requests", seen, sent)
	})
	if kids := childPIDs(t); len(kids) != 1 {
		t.Fatalf("workers started by the agent: %v, want one (worker 2)", kids)
	}

	// The metrics port serves the sum of both workers' counts.
	counter := regexp.MustCompile(`(?m)^netlab_ingress_requests_total\{code="200",ingress="default/web",service="default/web:http"\} (\d+)$`)
	waitFor("the merged request counter", func() (bool, string) {
		resp, err := c.Get("http://" + addrs.Metrics + "/metrics")
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

	// A reload reaches both workers, and the node's stamp waits for both.
	d := rundir.Resolve("t", dir)
	waitFor("the first stamp", func() (bool, string) {
		st, err := d.ReadIngressLoaded("node-1")
		if err != nil {
			return false, err.Error()
		}
		return st.Plan == rundir.FileStamp(cfgPath).String(), st.Plan
	})
	p.Ingresses = append(p.Ingresses, labtest.IngressObject(t, "shop", "shop.example", "api", networkingv1.ServiceBackendPort{Number: apiPort}))
	labtest.WritePlan(t, cfgPath, p)
	want := rundir.FileStamp(cfgPath).String()
	reload <- struct{}{}
	waitFor("the stamp of the new plan", func() (bool, string) {
		st, err := d.ReadIngressLoaded("node-1")
		if err != nil {
			return false, err.Error()
		}
		return st.Plan == want && st.Routes == 2, fmt.Sprintf("plan %s, %d routes (want %s)", st.Plan, st.Routes, want)
	})
	before := labtest.AccessLogWorkers(t, logPath)
	for range 40 {
		if s := request("shop.example"); s != 200 {
			t.Fatalf("shop.example after the stamp said both workers loaded it: %d", s)
		}
	}
	waitFor("shop.example served by both workers", func() (bool, string) {
		seen := labtest.AccessLogWorkers(t, logPath)
		return seen[1] > before[1] && seen[2] > before[2], fmt.Sprintf("lines per worker %v, before %v", seen, before)
	})

	// A plan that fails to load is published with the error once both workers have read
	// it; they keep routing by the one before.
	if err := os.WriteFile(cfgPath, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := rundir.FileStamp(cfgPath).String()
	reload <- struct{}{}
	waitFor("the stamp of the broken plan, with its error", func() (bool, string) {
		st, err := d.ReadIngressLoaded("node-1")
		if err != nil {
			return false, err.Error()
		}
		return st.Plan == broken && st.Error != "", fmt.Sprintf("plan %s, error %q (want %s)", st.Plan, st.Error, broken)
	})
	for range 10 {
		if s := request("shop.example"); s != 200 {
			t.Fatalf("shop.example after a failed reload: %d", s)
		}
	}
	labtest.WritePlan(t, cfgPath, p)
	reload <- struct{}{}

	// A killed worker is started again; the node is unhealthy until it serves, and
	// requests succeed throughout. The node's counter does not go back: the killed
	// worker's counts (as of the scrape just before) stay in it.
	scrape := func() int {
		t.Helper()
		resp, err := c.Get("http://" + addrs.Metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		n := 0
		for _, m := range regexp.MustCompile(`(?m)^netlab_ingress_requests_total\{[^}]*\} (\d+)$`).FindAllSubmatch(b, -1) {
			v, _ := strconv.Atoi(string(m[1]))
			n += v
		}
		return n
	}
	beforeKill := scrape()
	old := childPIDs(t)
	if err := syscall.Kill(old[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Once the killed process is gone (every thread ended, its sockets closed, reaped by
	// the agent), every new connection goes to a live worker's listener. (Connections the
	// kernel had queued on its listener when it died are reset, as with any SO_REUSEPORT
	// server; none is in flight here.)
	waitFor("the killed worker's end", func() (bool, string) {
		err := syscall.Kill(old[0], 0)
		return errors.Is(err, syscall.ESRCH), fmt.Sprintf("kill -0 %d: %v", old[0], err)
	})
	waitFor("a new worker 2, serving", func() (bool, string) {
		if s := request("app.example"); s != 200 {
			t.Fatalf("a request while worker 2 is started again: status %d", s)
		}
		kids := childPIDs(t)
		resp, err := c.Get("http://" + addrs.Metrics + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return len(kids) == 1 && kids[0] != old[0] && resp.StatusCode == 200,
			fmt.Sprintf("workers %v (killed %d), /healthz %d %q", kids, old[0], resp.StatusCode, strings.TrimSpace(string(b)))
	})
	if after := scrape(); after < beforeKill {
		t.Fatalf("the node's request counter went back from %d to %d when worker 2 was replaced", beforeKill, after)
	}
	before = labtest.AccessLogWorkers(t, logPath)
	waitFor("the new worker 2 serving requests", func() (bool, string) {
		for range 10 {
			if s := request("shop.example"); s != 200 {
				return false, fmt.Sprintf("status %d", s)
			}
		}
		seen := labtest.AccessLogWorkers(t, logPath)
		return seen[2] > before[2], fmt.Sprintf("lines per worker %v, before %v", seen, before)
	})

	// No worker outlives the agent.
	kids := childPIDs(t)
	stop()
	if left := childPIDs(t); len(left) > 0 {
		t.Errorf("workers left after the agent ended: %v (were %v)", left, kids)
	}
	for _, pid := range kids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("worker %d still there after the agent ended: %v", pid, err)
		}
	}
}

// cpusAllowed is /proc/PATH/status's Cpus_allowed_list (PATH: a pid, or self/task/TID).
func cpusAllowed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + path + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%s/status has no Cpus_allowed_list", path)
	return ""
}

// threadsAllowed is the Cpus_allowed_list of every thread of this process, each value once.
func threadsAllowed(t *testing.T) []string {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*")
	var out []string
	for _, task := range tasks {
		if v := cpusAllowed(t, "self/task/"+filepath.Base(task)); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// kernelAtLeast says whether the running kernel's release is major.minor or later.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", unix.ByteSliceToString(u.Release[:]), err)
	}
	return ma > major || ma == major && mi >= minor
}

// A node's ingress with a worker per CPU: worker i runs on the i-th CPU (every thread of
// it; worker 1 is this process, given its CPUs back when it ends), and a connection goes
// to the worker on the CPU where its handshake was handled (SO_INCOMING_CPU: kernel 6.2
// and later). With CPUAffinityEnv=off (TestIngressWorkers) nothing is pinned.
func TestIngressWorkersPinned(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < len(all)*64; c++ {
		if all.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 || len(cpus) > 8 {
		t.Skipf("this process may run on %d CPUs: the test wants 2 to 8", len(cpus))
	}
	before := threadsAllowed(t)
	dir := t.TempDir()
	_, webPort := namedUpstream(t, "web-1")
	labtest.WritePlan(t, filepath.Join(dir, "plan.json"), webPlan(t, webPort))
	logPath, logf, wlog := workerLogs(t, dir)
	pids := map[int]int{} // worker -> pid, from the test's command
	command := workerCommand(dir, logf, wlog)
	addrs, stop := startAgent(t, ingressagent.IngressConfig{Lab: "t", Node: "node-1", Dir: dir,
		AccessLog: logf, Workers: len(cpus), WorkerCommand: command}, slog.New(slog.NewJSONHandler(wlog, nil)))

	// Worker 1 (this process): every thread on the first CPU while it serves.
	if got, want := threadsAllowed(t), []string{strconv.Itoa(cpus[0])}; !slices.Equal(got, want) {
		t.Errorf("worker 1's threads may run on %v, want %v", got, want)
	}
	// Workers 2..N (this process's children): worker i on the i-th CPU, each thread.
	kids := childPIDs(t)
	if len(kids) != len(cpus)-1 {
		t.Fatalf("workers started: %v, want %d", kids, len(cpus)-1)
	}
	for _, pid := range kids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		var w testWorker
		for _, e := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(e, workerEnv+"="); ok {
				_ = json.Unmarshal([]byte(v), &w)
			}
		}
		if w.Worker < 2 {
			t.Fatalf("child %d is no worker of this test", pid)
		}
		pids[w.Worker] = pid
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		for _, task := range tasks {
			if got, want := cpusAllowed(t, strconv.Itoa(pid)+"/task/"+filepath.Base(task)), strconv.Itoa(cpus[w.Worker-1]); got != want {
				t.Errorf("worker %d (pid %d) thread %s may run on %s, want %s", w.Worker, pid, filepath.Base(task), got, want)
			}
		}
	}

	// A connection made on the i-th CPU is served by worker i.
	if !kernelAtLeast(t, 6, 2) {
		t.Log("kernel before 6.2: SO_INCOMING_CPU does not choose among SO_REUSEPORT listeners; the routing is not checked")
	} else {
		for i, cpu := range cpus {
			before := labtest.AccessLogWorkers(t, logPath)
			const n = 5
			for range n {
				if s := getFromCPU(t, cpu, addrs.HTTP, "app.example"); s != 200 {
					t.Fatalf("a request from CPU %d: status %d", cpu, s)
				}
			}
			var seen map[int]int
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if seen = labtest.AccessLogWorkers(t, logPath); seen[i+1]-before[i+1] >= n {
					break
				}
			}
			for w := 1; w <= len(cpus); w++ {
				want := 0
				if w == i+1 {
					want = n
				}
				if got := seen[w] - before[w]; got != want {
					t.Errorf("requests from CPU %d: worker %d served %d, want %d (lines per worker %v, before %v)", cpu, w, got, want, seen, before)
				}
			}
		}
	}

	// The last worker, killed, is started again (from a thread of worker 1, which is on
	// worker 1's CPU) and ends up on its own CPU, every thread, serving what is made there.
	last := len(cpus)
	gone := pids[last]
	if err := syscall.Kill(gone, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	lastCPU := strconv.Itoa(cpus[last-1])
	var again int
	for deadline := time.Now().Add(15 * time.Second); again == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, pid := range childPIDs(t) {
			if pid == gone || slices.Contains(kids, pid) {
				continue
			}
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
			pinned := len(tasks) > 0
			for _, task := range tasks {
				if cpusAllowed(t, strconv.Itoa(pid)+"/task/"+filepath.Base(task)) != lastCPU {
					pinned = false
				}
			}
			if pinned {
				again = pid
			}
		}
	}
	if again == 0 {
		t.Fatalf("worker %d, killed (pid %d), was not started again on CPU %s within 15 s (children %v)", last, gone, lastCPU, childPIDs(t))
	}
	if kernelAtLeast(t, 6, 2) {
		was := labtest.AccessLogWorkers(t, logPath)
		// Its listeners may still be on their way when its threads are pinned: ask
		// until it serves one, from its CPU (another worker may serve those before).
		served := false
		for deadline := time.Now().Add(10 * time.Second); !served && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if s := getFromCPU(t, cpus[last-1], addrs.HTTP, "app.example"); s != 200 {
				t.Fatalf("a request from CPU %d after worker %d's restart: status %d", cpus[last-1], last, s)
			}
			served = labtest.AccessLogWorkers(t, logPath)[last] > was[last]
		}
		if !served {
			t.Errorf("worker %d, started again (pid %d), served none of the requests made on its CPU %s", last, again, lastCPU)
		}
	}

	// Worker 1's threads get their CPUs back when it ends.
	stop()
	if got := threadsAllowed(t); !slices.Equal(got, before) {
		t.Errorf("after the agent ended this process's threads may run on %v, want %v as before", got, before)
	}
}

// getFromCPU makes one request with a connection of its own, opened and used from a
// thread that runs on cpu only; it returns the status.
func getFromCPU(t *testing.T, cpu int, addr, host string) int {
	t.Helper()
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		// The thread gets its CPUs back before it is let go. (Not ended with the goroutine,
		// as a locked thread would be: a worker this process started from that thread would
		// be sent its parent-death signal.)
		runtime.LockOSThread()
		var was, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &was); err != nil {
			done <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			done <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer func() {
			if unix.SchedSetaffinity(0, &was) == nil {
				runtime.UnlockOSThread()
			}
		}()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
			done <- result{err: err}
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			done <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("a request from CPU %d: %v", cpu, r.err)
	}
	return r.status
}

// webPlan is a one-node plan whose Ingress sends app.example to Service web on port.
func webPlan(t *testing.T, port int32) *plan.Plan {
	t.Helper()
	return &plan.Plan{
		Lab:       "t",
		Nodes:     []plan.Node{{Name: "node-1", IP: "127.0.0.1/8"}},
		Services:  []plan.Service{{Namespace: "default", Name: "web", ClusterIP: "127.0.0.1", Ports: []plan.ServicePort{{Name: "http", Port: port}}}},
		Ingresses: []plan.Ingress{labtest.IngressObject(t, "web", "app.example", "web", networkingv1.ServiceBackendPort{Name: "http"})},
	}
}

// workerLogs opens dir's access log (its path and file) and the workers' own log, both
// closed when the test ends; a failed test prints the workers' log.
func workerLogs(t *testing.T, dir string) (logPath string, logf, wlog *os.File) {
	t.Helper()
	open := func(path string) *os.File {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	logPath = filepath.Join(dir, "ingress.log")
	logf = open(logPath)
	workerLog := filepath.Join(dir, "workers.log")
	wlog = open(workerLog)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(workerLog)
			t.Logf("workers' log:\n%s", b)
		}
	})
	return logPath, logf, wlog
}

// workerCommand starts worker i as this test binary running testWorker's main, its access
// log and its own log into logf and wlog.
func workerCommand(dir string, logf, wlog *os.File) func(i int) *exec.Cmd {
	return func(i int) *exec.Cmd {
		spec, _ := json.Marshal(testWorker{Lab: "t", Node: "node-1", Dir: dir, Worker: i})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+string(spec))
		cmd.Stdout, cmd.Stderr = logf, wlog
		return cmd
	}
}
