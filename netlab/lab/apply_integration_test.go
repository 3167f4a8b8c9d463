// Integration tests of live changes (apply, scale, rollout restart): real namespaces,
// real packets. Run as root.
//
// Address plan (testdata/live.yaml, under a unique lab name per test):
//
//	wan 203.0.113.0/24      client .2, lb .1, ingress VIP .100
//	fabric 172.18.0.0/24    lb .1, node-1 .11, node-2 .12
//	pods 10.244.0.0/16      node-1 10.244.1.0/24, node-2 10.244.2.0/24: web-N from .2
//	                        (coredns-1/2 among them), new pods take the lowest free address
//	services 10.96.0.0/12   kube-dns .10, web .11, api (when applied) .12
package lab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// liveYAML is the lab these tests bring up; liveWithAPI adds a Deployment api, its
// Service and the path /api of the Ingress.
func liveYAML(t testing.TB) string    { return labtest.Fixture(t, "live.yaml") }
func liveWithAPI(t testing.TB) string { return labtest.Fixture(t, "live-api.yaml") }

// applyYAML applies scenario text to the running lab as `netlab apply` does.
func applyYAML(t *testing.T, labName, yaml string) (plan.Changes, error) {
	t.Helper()
	s, err := scenario.Parse("apply.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := scenario.Validate(s); err != nil {
		t.Fatal(err)
	}
	return lab.Apply(context.Background(), labName, func(cur *plan.Plan) (*plan.Plan, error) {
		return planbuild.BuildFrom(s, labName, cur)
	}, lab.ChangeOptions{Binary: labtest.Binary(t)})
}

func changeLines(cs plan.Changes) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return strings.Join(out, "\n")
}

// labPIDs lists the lab's own processes (netlab's agents and pods) in its namespaces, by
// namespace. The tools an agent runs for a moment (iptables-restore, conntrack) are left
// out: whether a snapshot catches one is timing, not a restart.
func labPIDs(t *testing.T, labName string) map[string][]int {
	t.Helper()
	nss, err := kernel.ListNetns(plan.NetnsName(labName, ""))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	for ns, pids := range kernel.PIDsIn(nss) {
		for _, pid := range pids {
			if argv := kernel.Cmdline(pid); len(argv) > 0 && strings.HasPrefix(filepath.Base(argv[0]), "netlab") && !forkedNotExeced(pid, argv) {
				out[ns] = append(out[ns], pid)
			}
		}
		sort.Ints(out[ns])
	}
	return out
}

// forkedNotExeced: pid is a child an agent forked to run another program (a kube-proxy's
// iptables-save or -restore), caught before its exec, while it still has its parent's
// command line. (An ingress worker, the one netlab child of an agent, has a command line of
// its own: --worker I.)
func forkedNotExeced(pid int, argv []string) bool {
	ppid := kernel.ParentPID(pid)
	return ppid > 1 && slices.Equal(kernel.Cmdline(ppid), argv)
}

// servedBy sends n requests for app.example/path through the VIP from the client and
// returns who answered each.
func servedBy(t *testing.T, p *plan.Plan, path string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		e, _, err := labtest.GetEchoHost(p.Clients[0].Netns, "http://"+p.LB.VIP+path, "app.example")
		if err != nil {
			t.Fatalf("GET app.example%s through the VIP: %v", path, err)
		}
		got[e.Pod]++
	}
	return got
}

// viaClusterIP sends n requests to Service svc's ClusterIP from node-1, a new
// connection each (the ingress pools its upstream connections), and returns who answered.
func viaClusterIP(t *testing.T, labName, svc string, n int) map[string]int {
	t.Helper()
	cur, err := lab.LoadPlan(labName)
	if err != nil {
		t.Fatal(err)
	}
	var ip string
	for _, s := range cur.Services {
		if s.Name == svc {
			ip = s.ClusterIP
		}
	}
	got := map[string]int{}
	for i := 0; i < n; i++ {
		e, _, err := labtest.GetEcho(cur.Nodes[0].Netns, "http://"+ip+"/")
		if err != nil {
			t.Fatalf("GET %s's ClusterIP %s from node-1: %v", svc, ip, err)
		}
		got[e.Pod]++
	}
	return got
}

func readyEndpoints(t *testing.T, labName, svc string) []string {
	t.Helper()
	st, err := lab.GetStatus(context.Background(), labName)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range st.Services {
		if s.Name == svc {
			for _, e := range s.Endpoints {
				if e.Ready {
					out = append(out, e.Pod)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestIntegrationApply(t *testing.T) {
	labtest.RequireRoot(t)
	before := rootSnapshot(t)
	p := labtest.Up(t, "apply", liveYAML(t))
	ctx := context.Background()

	t.Run("the same files: all unchanged, no process restarted", func(t *testing.T) {
		pids := labPIDs(t, p.Lab)
		for _, pod := range p.Pods {
			if len(pids[pod.Netns]) == 0 {
				t.Fatalf("no netlab process in pod %s's namespace: %v", pod.Name, pids)
			}
		}
		planBefore, _ := os.ReadFile(rundir.ForLab(p.Lab).Plan())
		cs, err := applyYAML(t, p.Lab, liveYAML(t))
		if err != nil {
			t.Fatal(err)
		}
		if cs.Changed() {
			t.Fatalf("changes:\n%s", changeLines(cs))
		}
		if after := labPIDs(t, p.Lab); fmt.Sprint(after) != fmt.Sprint(pids) {
			t.Fatalf("processes changed:\nbefore %v\nafter  %v", pids, after)
		}
		if planAfter, _ := os.ReadFile(rundir.ForLab(p.Lab).Plan()); string(planAfter) != string(planBefore) {
			t.Fatal("the stored plan changed")
		}
	})

	t.Run("scale up and down: endpoints and traffic follow", func(t *testing.T) {
		cs, err := lab.Scale(ctx, p.Lab, "web", 4, lab.ChangeOptions{Binary: labtest.Binary(t)})
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := cs.Find(plan.KindDeployment, "default", "web"); c.Action != plan.Configured {
			t.Fatalf("web: %+v", c)
		}
		want := []string{"web-1", "web-2", "web-3", "web-4"}
		if got := readyEndpoints(t, p.Lab, "web"); !slices.Equal(got, want) {
			t.Fatalf("web endpoints %v, want %v", got, want)
		}
		got := viaClusterIP(t, p.Lab, "web", 60)
		for _, pod := range want {
			if got[pod] == 0 {
				t.Fatalf("60 requests to the ClusterIP never reached %s: %v", pod, got)
			}
		}
		if _, err := lab.Scale(ctx, p.Lab, "web", 1, lab.ChangeOptions{Binary: labtest.Binary(t)}); err != nil {
			t.Fatal(err)
		}
		if got := readyEndpoints(t, p.Lab, "web"); !slices.Equal(got, []string{"web-1"}) {
			t.Fatalf("web endpoints %v after scaling to 1", got)
		}
		if got := viaClusterIP(t, p.Lab, "web", 10); got["web-1"] != 10 {
			t.Fatalf("after scaling to 1: %v", got)
		}
		for _, pod := range []string{"web-2", "web-3", "web-4"} {
			if kernel.NetnsExists(plan.NetnsName(p.Lab, pod)) {
				t.Fatalf("namespace of %s left", pod)
			}
		}
	})

	t.Run("Deployment, Service and Ingress path added, then deleted", func(t *testing.T) {
		cs, err := applyYAML(t, p.Lab, liveWithAPI(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"deployment.apps/api created", "service/api created", "ingress.networking.k8s.io/app configured",
			"deployment.apps/web configured", "service/web unchanged", "service/kube-dns unchanged"} {
			if !strings.Contains(changeLines(cs), w) {
				t.Fatalf("changes lack %q:\n%s", w, changeLines(cs))
			}
		}
		// apply returned once every node's ingress had loaded the plan it wrote.
		d := rundir.ForLab(p.Lab)
		for _, n := range p.Nodes {
			if st, err := d.ReadIngressLoaded(n.Name); err != nil || st.Plan != rundir.FileStamp(d.Plan()).String() {
				t.Fatalf("ingress on %s: %+v %v, want the plan as apply wrote it", n.Name, st, err)
			}
		}
		// ... and every DNS pod answers from it: the new Service's name resolves at once.
		ef, err := d.ReadEndpoints()
		if err != nil {
			t.Fatal(err)
		}
		now, err := lab.LoadPlan(p.Lab)
		if err != nil {
			t.Fatal(err)
		}
		var api, web string
		for _, svc := range now.Services {
			if svc.Name == "api" {
				api = svc.ClusterIP
			}
		}
		dnsPods := 0
		for _, pod := range now.Pods {
			if pod.Name == "web-1" {
				web = pod.Netns
			}
			if pod.Agent != plan.DNSAgent {
				continue
			}
			dnsPods++
			if st, err := d.ReadDNSLoaded(pod.Name); err != nil || st.Plan != rundir.FileStamp(d.Plan()).String() || st.Generation < ef.Generation {
				t.Fatalf("DNS pod %s: %+v %v, want the plan as apply wrote it and generation %d", pod.Name, st, err, ef.Generation)
			}
		}
		if dnsPods == 0 || api == "" || web == "" {
			t.Fatalf("%d DNS pods, Service api at %q, web-1 in %q", dnsPods, api, web)
		}
		// (ip netns exec: it mounts the pod's /etc/netns resolv.conf, naming kube-dns)
		if out, err := exec.Command("ip", "netns", "exec", web, "getent", "ahostsv4", "api.default.svc.cluster.local").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), api+" ") {
			t.Fatalf("api.default.svc.cluster.local from web-1 right after apply: %q %v, want %s", out, err, api)
		}
		if got := servedBy(t, p, "/api/x", 3); got["api-1"] != 3 {
			t.Fatalf("/api served by %v, want api-1", got)
		}
		// The files say web has 2 replicas again: web-1 stays, one more comes.
		if got := readyEndpoints(t, p.Lab, "web"); len(got) != 2 || got[0] != "web-1" {
			t.Fatalf("web endpoints %v", got)
		}
		cs, err = applyYAML(t, p.Lab, liveYAML(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"deployment.apps/api deleted", "service/api deleted", "ingress.networking.k8s.io/app configured"} {
			if !strings.Contains(changeLines(cs), w) {
				t.Fatalf("changes lack %q:\n%s", w, changeLines(cs))
			}
		}
		if kernel.NetnsExists(plan.NetnsName(p.Lab, "api-1")) {
			t.Fatal("api-1's namespace left")
		}
		for pod := range servedBy(t, p, "/api/x", 5) {
			if !strings.HasPrefix(pod, "web-") {
				t.Fatalf("/api still served by %s after the path went", pod)
			}
		}
		cur, err := lab.LoadPlan(p.Lab)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cur.Services {
			if s.Name == "api" {
				t.Fatal("Service api still in the plan")
			}
		}
	})

	t.Run("apply waits for an ingress that has not loaded the new plan", func(t *testing.T) {
		d := rundir.ForLab(p.Lab)
		n1 := p.Nodes[0]
		// Stopped, it takes the SIGHUP but cannot load: apply must not return.
		cont := stopIngress(t, n1)
		oldPlan := rundir.FileStamp(d.Plan()).String()
		done := make(chan error, 1)
		go func() {
			_, err := applyYAML(t, p.Lab, liveWithAPI(t))
			done <- err
		}()
		// Wait for what a change that did not wait for the ingress would return on: the
		// new plan, node-2's ingress on it, the controller and every kube-proxy following.
		deadline := time.Now().Add(30 * time.Second)
		var last string
		for {
			plan := rundir.FileStamp(d.Plan()).String()
			st, _ := d.ReadIngressLoaded(p.Nodes[1].Name)
			ef, _ := d.ReadEndpoints()
			synced := ef != nil
			for _, n := range p.Nodes {
				if ss, err := d.ReadSyncStatus(n.Name); synced && (err != nil || ss.Generation < ef.Generation) {
					synced = false
				}
			}
			if plan != oldPlan && st != nil && st.Plan == plan && synced {
				break
			}
			last = fmt.Sprintf("plan %s (was %s), node-2's ingress %+v, synced %v", plan, oldPlan, st, synced)
			select {
			case err := <-done:
				cont()
				t.Fatalf("apply returned (%v) while node-1's ingress was stopped; %s", err, last)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the change did not get there within 30 s: %s", last)
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case err := <-done:
			cont()
			t.Fatalf("apply returned (%v) while node-1's ingress was stopped", err)
		case <-time.After(time.Second):
		}
		if st, err := d.ReadIngressLoaded(n1.Name); err != nil || st.Plan == rundir.FileStamp(d.Plan()).String() {
			t.Fatalf("node-1's stopped ingress reports %+v %v", st, err)
		}
		cont()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("apply did not return within 60 s of node-1's ingress going on")
		}
		if st, err := d.ReadIngressLoaded(n1.Name); err != nil || st.Plan != rundir.FileStamp(d.Plan()).String() {
			t.Fatalf("node-1's ingress: %+v %v, want the new plan", st, err)
		}
		// Back to the lab the next steps expect.
		if _, err := applyYAML(t, p.Lab, liveYAML(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a change that fails restores every ingress before it returns", func(t *testing.T) {
		// node-2's ingress is stopped: the change (a new Deployment and path) cannot
		// finish and is undone. When apply returns its error, node-1's ingress already
		// routes by the restored plan, not by the failed one it loaded meanwhile.
		d := rundir.ForLab(p.Lab)
		n2 := p.Nodes[1]
		cont := stopIngress(t, n2)
		s, err := scenario.Parse("apply.yaml", []byte(liveWithAPI(t)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = lab.Apply(context.Background(), p.Lab, func(cur *plan.Plan) (*plan.Plan, error) {
			return planbuild.BuildFrom(s, p.Lab, cur)
		}, lab.ChangeOptions{Binary: labtest.Binary(t), ReadyTimeout: 3 * time.Second})
		if err == nil {
			t.Fatal("apply succeeded with node-2's ingress stopped")
		}
		if !strings.Contains(err.Error(), "node-2") {
			t.Errorf("apply's error does not name node-2's ingress: %v", err)
		}
		restored := rundir.FileStamp(d.Plan()).String()
		if st, err := d.ReadIngressLoaded(p.Nodes[0].Name); err != nil || st.Plan != restored {
			t.Fatalf("node-1's ingress when apply returned: %+v %v, want the restored plan %s", st, err, restored)
		}
		cur, err := lab.LoadPlan(p.Lab)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cur.Services {
			if s.Name == "api" {
				t.Fatal("Service api in the restored plan")
			}
		}
		cont()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			st, err := d.ReadIngressLoaded(n2.Name)
			if err == nil && st.Plan == restored {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node-2's ingress did not load the restored plan within 30 s of going on: %+v %v", st, err)
			}
		}
	})

	t.Run("LB scheduler change", func(t *testing.T) {
		cs, err := applyYAML(t, p.Lab, strings.Replace(liveYAML(t), "scheduler: rr", "scheduler: wrr", 1))
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := cs.Find(plan.KindLab, "", p.Lab); c.Action != plan.Configured {
			t.Fatalf("lab: %+v", c)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := rundir.ForLab(p.Lab).ReadLBState()
			if err == nil && len(st.Services) > 0 && st.Services[0].Scheduler == "wrr" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the LB does not schedule with wrr: %+v %v", st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		servedBy(t, p, "/", 5)
	})

	t.Run("refused node change leaves the lab as it was", func(t *testing.T) {
		planBefore, _ := os.ReadFile(rundir.ForLab(p.Lab).Plan())
		nss, _ := kernel.ListNetns(plan.NetnsName(p.Lab, ""))
		_, err := applyYAML(t, p.Lab, strings.Replace(liveYAML(t), "{name: node-2}]", "{name: node-2}, {name: node-3}]", 1))
		if !errors.Is(err, plan.ErrRefused) || !strings.Contains(err.Error(), "spec.nodes") {
			t.Fatalf("err = %v, want a refusal naming spec.nodes", err)
		}
		if planAfter, _ := os.ReadFile(rundir.ForLab(p.Lab).Plan()); string(planAfter) != string(planBefore) {
			t.Fatal("the stored plan changed")
		}
		if after, _ := kernel.ListNetns(plan.NetnsName(p.Lab, "")); !slices.Equal(after, nss) {
			t.Fatalf("namespaces changed: %v → %v", nss, after)
		}
	})

	if err := lab.Down(p.Lab, nil); err != nil {
		t.Fatal(err)
	}
	if after := rootSnapshot(t); after != before {
		t.Errorf("the root namespace changed:\n%s", diffLines(before, after))
	}
}

// A rollout restart under continuous requests through the VIP loses none: each new pod
// is in every node's rules before an old one leaves, and a leaving pod keeps serving
// (without keep-alive) through its preStop and grace period.
func TestIntegrationRolloutRestartUnderLoad(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "roll", strings.Replace(liveYAML(t), "replicas: 2", "replicas: 3", 1))
	ctx, cancel := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for _, keepAlive := range []bool{false, true} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := labtest.Client(p.Clients[0].Netns, keepAlive)
			for ctx.Err() == nil {
				req, _ := http.NewRequest(http.MethodGet, "http://"+p.LB.VIP+"/", nil)
				req.Host = "app.example"
				resp, err := c.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	// Watch for terminating pods and endpoints while the rollout runs.
	var sawPod, sawEndpoint atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			st, err := lab.GetStatus(context.Background(), p.Lab)
			if err == nil {
				for _, pod := range st.Pods {
					sawPod.CompareAndSwap(false, pod.Phase == "Terminating")
				}
				for _, s := range st.Services {
					for _, e := range s.Endpoints {
						sawEndpoint.CompareAndSwap(false, e.Terminating && e.Serving && !e.Ready)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	var steps []string
	err := lab.RolloutRestart(context.Background(), p.Lab, "web", lab.ChangeOptions{Binary: labtest.Binary(t)},
		func(s string) { steps = append(steps, s) })
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rollout: %v; %d requests answered, %d failed", steps, ok.Load(), failed.Load())
	if failed.Load() != 0 {
		// The ingress's access log says why (its error field); the log tails printed at
		// clean-up may not reach back to the failed request.
		for _, n := range p.Nodes {
			b, _ := os.ReadFile(rundir.ForLab(p.Lab).Log("ingress", n.Name))
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"status":5`) {
					t.Logf("ingress %s: %s", n.Name, line)
				}
			}
		}
		t.Fatalf("%d of %d requests failed during the rollout, first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 20 {
		t.Fatalf("only %d requests were sent", ok.Load())
	}
	if !sawPod.Load() || !sawEndpoint.Load() {
		t.Fatalf("terminating pod seen: %v, serving terminating endpoint seen: %v", sawPod.Load(), sawEndpoint.Load())
	}
	if got := readyEndpoints(t, p.Lab, "web"); !slices.Equal(got, []string{"web-4", "web-5", "web-6"}) {
		t.Fatalf("after the rollout web's endpoints are %v, want web-4..6", got)
	}
	for _, pod := range []string{"web-1", "web-2", "web-3"} {
		if kernel.NetnsExists(plan.NetnsName(p.Lab, pod)) {
			t.Fatalf("namespace of %s left", pod)
		}
	}
}

// `apply` killed with SIGKILL half-way: down removes everything; before that, the next
// change cleans up what the killed one left and succeeds.
func TestIntegrationApplyKilledHalfway(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "kill", liveYAML(t))
	file, err := os.CreateTemp("", "netlab-apply-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(file.Name())
	if _, err := file.WriteString(strings.Replace(liveYAML(t), "replicas: 2", "replicas: 8", 1)); err != nil {
		t.Fatal(err)
	}
	file.Close()
	cmd := exec.Command(labtest.Binary(t), "apply", "--name", p.Lab, "-f", file.Name())
	cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it has made a new pod's namespace.
	deadline := time.Now().Add(20 * time.Second)
	for !kernel.NetnsExists(plan.NetnsName(p.Lab, "web-3")) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("apply made no new pod")
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	if _, err := applyYAML(t, p.Lab, liveYAML(t)); err != nil {
		t.Fatalf("apply after a killed apply: %v", err)
	}
	nss, _ := kernel.ListNetns(plan.NetnsName(p.Lab, ""))
	cur, _ := lab.LoadPlan(p.Lab)
	want := cur.Namespaces()
	sort.Strings(nss)
	sort.Strings(want)
	if !slices.Equal(nss, want) {
		t.Fatalf("namespaces %v, the plan's %v", nss, want)
	}
	if _, err := lab.Scale(context.Background(), p.Lab, "web", 5, lab.ChangeOptions{Binary: labtest.Binary(t)}); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(labtest.Binary(t), "scale", "--name", p.Lab, "deployment/web", "--replicas", "1")
	cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Killed while its pods terminate.
	for !rundir.ForLab(p.Lab).IsLeaving("web-5") {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			_ = cmd.Process.Kill()
			t.Fatal("scale did not start terminating pods")
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if err := lab.Down(p.Lab, nil); err != nil {
		t.Fatal(err)
	}
	if left, _ := kernel.ListNetns(plan.NetnsName(p.Lab, "")); len(left) > 0 {
		t.Fatalf("left after down: %v", left)
	}
	if _, err := os.Stat(rundir.ForLab(p.Lab).Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("runtime directory left: %v", err)
	}
}

// stopIngress stops (SIGSTOP) node's ingress agent and returns what lets it go on again
// (SIGCONT, once; also at the test's end).
func stopIngress(t *testing.T, node plan.Node) (cont func()) {
	t.Helper()
	var agent int
	for _, pid := range kernel.PIDsIn([]string{node.Netns})[node.Netns] {
		if lab.IsAgent(kernel.Cmdline(pid), "ingress") {
			agent = pid
		}
	}
	if agent == 0 {
		t.Fatalf("no ingress agent on %s", node.Name)
	}
	if err := syscall.Kill(agent, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	cont = func() {
		if stopped {
			stopped = false
			if err := syscall.Kill(agent, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(cont)
	return cont
}
