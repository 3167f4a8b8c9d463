package ingressagent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	logPath := filepath.Join(dir, "ingress.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	workerLog := filepath.Join(dir, "workers.log")
	wlog, err := os.OpenFile(workerLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer wlog.Close()
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(workerLog)
			t.Logf("workers' log:\n%s", b)
		}
	}()
	command := func(i int) *exec.Cmd {
		spec, _ := json.Marshal(testWorker{Lab: "t", Node: "node-1", Dir: dir, Worker: i})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+string(spec))
		cmd.Stdout, cmd.Stderr = logf, wlog
		return cmd
	}

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
