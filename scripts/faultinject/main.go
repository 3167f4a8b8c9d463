// Command faultinject measures the requests a running lab loses to faults: clients open a
// new connection per request through the ingress VIP (CONNS at once), a fault is injected
// after a warm-up, and every request is recorded with its time. For each fault it prints
// how many requests failed before the fault (ended before it: the baseline), inside the
// fault's window (in flight at the fault, or started before the lab had repaired or routed
// around it, as seen in its pid files, the LB's state and the controller's endpoints) and
// after it (started once it had), and how long the window was. Run it as root against a lab that is up (scripts/fault-inject.sh does):
//
//	go run ./scripts/faultinject -name LAB [-conns 200] [-faults pod-kill,node-fail,...]
//
// Faults: pod-kill (the drill: `netlab pod kill web-1`, pod started again afterwards),
// node-fail (node-2's eth0 down, recovered afterwards), and kill -9 of one agent of each
// kind: kill-pod (web-1's process), kill-kube-proxy, kill-ingress, kill-lb,
// kill-controller, kill-supervisor.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

type result struct {
	Fault        string  `json:"fault"`
	Requests     int     `json:"requests"`
	FailedBefore int     `json:"failedBefore"`
	FailedWindow int     `json:"failedInWindow"`
	FailedAfter  int     `json:"failedAfter"`
	WindowMs     float64 `json:"windowMs"` // injection to repair (-1: not repaired in time)
	FirstError   string  `json:"firstError,omitempty"`
}

// netlabBin starts processes of the lab: they must be netlab, not this program.
var netlabBin string

type sample struct {
	at, end time.Duration // the request's start and end, since the load started
	err     error
}

func main() {
	name := flag.String("name", "", "lab name")
	conns := flag.Int("conns", 200, "concurrent clients, each a new connection per request")
	before := flag.Duration("before", 2*time.Second, "load before the fault")
	after := flag.Duration("after", 8*time.Second, "load after the fault")
	faults := flag.String("faults", "pod-kill,node-fail,kill-pod,kill-kube-proxy,kill-ingress,kill-lb,kill-controller,kill-supervisor", "faults, comma-separated")
	out := flag.String("o", "table", "table or json")
	rounds := flag.Int("rounds", 1, "run every fault this many times, in turn (A B C A B C ...)")
	flag.StringVar(&netlabBin, "netlab", "netlab", "the netlab binary (starts the drill's pod again)")
	flag.Parse()
	p, err := lab.LoadPlan(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultinject:", err)
		os.Exit(1)
	}
	var results []result
	names := strings.Split(*faults, ",")
	for round := 1; round <= *rounds; round++ {
		for _, f := range names {
			if err := waitHealthy(p, 30*time.Second); err != nil {
				fmt.Fprintf(os.Stderr, "faultinject: before %s: %v\n", f, err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "round %d: fault %s ...\n", round, f)
			r, err := run(p, f, *conns, *before, *after)
			if err != nil {
				fmt.Fprintf(os.Stderr, "faultinject: %s: %v\n", f, err)
				os.Exit(1)
			}
			results = append(results, r)
		}
	}
	if *out == "json" {
		_ = json.NewEncoder(os.Stdout).Encode(results)
		return
	}
	// Per fault: medians with min-max over the rounds; failures before and after the
	// window summed (both should be 0).
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "FAULT\tROUNDS\tREQUESTS (median)\tFAILED IN WINDOW median (min-max)\tWINDOW ms median (min-max)\tFAILED BEFORE (sum)\tFAILED AFTER (sum)\n")
	for _, f := range names {
		var reqs, failed, win []float64
		before, after := 0, 0
		for _, r := range results {
			if r.Fault != f {
				continue
			}
			reqs = append(reqs, float64(r.Requests))
			failed = append(failed, float64(r.FailedWindow))
			win = append(win, r.WindowMs)
			before += r.FailedBefore
			after += r.FailedAfter
		}
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t%s\t%d\t%d\n", f, len(reqs), median(reqs), spread(failed), spread(win), before, after)
	}
	w.Flush()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%.0f (%.0f-%.0f)", median(v), lo, hi)
}

// load runs conns clients until ctx ends and returns every request's outcome.
func load(ctx context.Context, p *plan.Plan, conns int, start time.Time) []sample {
	client := p.Clients[0].Netns
	addr := net.JoinHostPort(p.LB.VIP, "80")
	host := p.LB.VIP
	if hs := lab.IngressHosts(p); len(hs) > 0 {
		host = hs[0]
	}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return kernel.DialIn(client, "tcp", addr, 2*time.Second)
		},
	}}
	var mu sync.Mutex
	var all []sample
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Since(start)
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				req.Host = host
				resp, err := hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				mu.Lock()
				all = append(all, sample{t, time.Since(start), err})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return all
}

func run(p *plan.Plan, fault string, conns int, before, after time.Duration) (result, error) {
	r := result{Fault: fault, WindowMs: -1}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	done := make(chan []sample, 1)
	go func() { done <- load(ctx, p, conns, start) }()
	time.Sleep(before)
	inject := time.Since(start)
	repaired, undo, err := injectFault(p, fault)
	if err != nil {
		cancel()
		<-done
		return r, err
	}
	var window time.Duration = -1
	deadline := time.Now().Add(after)
	for time.Now().Before(deadline) {
		if repaired() {
			window = time.Since(start) - inject
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline))
	cancel()
	samples := <-done
	if undo != nil {
		if err := undo(); err != nil {
			return r, fmt.Errorf("undo: %w", err)
		}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].at < samples[j].at })
	end := inject + window
	if window < 0 {
		end = time.Duration(1<<62 - 1)
	} else {
		r.WindowMs = float64(window.Microseconds()) / 1000
	}
	for _, s := range samples {
		r.Requests++
		if s.err == nil {
			continue
		}
		if r.FirstError == "" {
			r.FirstError = s.err.Error()
			if len(r.FirstError) > 80 {
				r.FirstError = r.FirstError[:80]
			}
		}
		// Before: over before the fault. Window: in flight at the fault, or started before
		// the lab had repaired or routed around it. After: started once it had.
		switch {
		case s.end < inject:
			r.FailedBefore++
		case s.at <= end:
			r.FailedWindow++
		default:
			r.FailedAfter++
		}
	}
	return r, nil
}

// injectFault makes the fault and returns how to tell that the lab repaired or routed
// around it, and how to undo a drill afterwards.
func injectFault(p *plan.Plan, fault string) (func() bool, func() error, error) {
	dir := rundir.ForLab(p.Lab)
	kill := func(role, name string) (func() bool, func() error, error) {
		rec, err := supervise.ReadRecord(dir, role, name)
		if err != nil {
			return nil, nil, err
		}
		if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil {
			return nil, nil, err
		}
		return func() bool {
			now, err := supervise.ReadRecord(dir, role, name)
			if err != nil || now.PID == rec.PID || !now.Alive() {
				return false
			}
			rep, err := supervise.ReadReport(dir)
			if role == "supervisor" {
				return err == nil && rep.PID == now.PID
			}
			if err != nil {
				return false
			}
			for _, a := range rep.Agents {
				if a.Role == role && a.Name == name {
					return a.State == supervise.StateRunning && a.PID == now.PID && servingAgain(p, role, name)
				}
			}
			return false
		}, nil, nil
	}
	switch fault {
	case "pod-kill":
		if _, err := lab.KillPod(p.Lab, "web-1"); err != nil {
			return nil, nil, err
		}
		return func() bool { return endpointReady(p, "web-1") == 0 },
			func() error {
				out, err := exec.Command(netlabBin, "pod", "start", "web-1", "--name", p.Lab).CombinedOutput()
				if err != nil {
					return fmt.Errorf("netlab pod start: %w: %s", err, out)
				}
				return nil
			}, nil
	case "node-fail":
		if err := lab.SetNodeLink(p.Lab, "node-2", false); err != nil {
			return nil, nil, err
		}
		return func() bool { return lbHealthy(p, "node-2") == 0 && endpointsOff(p, "node-2") },
			func() error { return lab.SetNodeLink(p.Lab, "node-2", true) }, nil
	case "kill-pod":
		return kill("pod", "web-1")
	case "kill-kube-proxy":
		return kill("kube-proxy", "node-1")
	case "kill-ingress":
		return kill("ingress", "node-1")
	case "kill-lb":
		return kill("lb", "lb")
	case "kill-controller":
		return kill("controller", "controller")
	case "kill-supervisor":
		return kill("supervisor", "supervisor")
	}
	return nil, nil, fmt.Errorf("unknown fault %q", fault)
}

// servingAgain: the restarted agent does its job again (a pod is a ready endpoint, an
// ingress is back in the LB, kube-proxy has synced since it started).
func servingAgain(p *plan.Plan, role, name string) bool {
	switch role {
	case "pod":
		return endpointReady(p, name) == 1
	case "ingress":
		return lbHealthy(p, name) == 1
	case "kube-proxy":
		ss, err := rundir.ForLab(p.Lab).ReadSyncStatus(name)
		rec, rerr := supervise.ReadRecord(rundir.ForLab(p.Lab), role, name)
		return err == nil && rerr == nil && ss.Error == "" && ss.At.After(rec.Started)
	}
	return true
}

// endpointReady: 1 when every endpoint of pod is ready, 0 when none is, -1 otherwise.
func endpointReady(p *plan.Plan, pod string) int {
	ef, err := rundir.ForLab(p.Lab).ReadEndpoints()
	if err != nil {
		return -1
	}
	ready, total := 0, 0
	for _, sp := range ef.Ports {
		for _, e := range sp.Endpoints {
			if e.Pod == pod {
				total++
				if e.Ready {
					ready++
				}
			}
		}
	}
	switch {
	case total > 0 && ready == total:
		return 1
	case ready == 0:
		return 0
	}
	return -1
}

// endpointsOff: no pod of node is a ready endpoint.
func endpointsOff(p *plan.Plan, node string) bool {
	for _, pod := range p.Pods {
		if pod.Node == node && endpointReady(p, pod.Name) != 0 {
			return false
		}
	}
	return true
}

// lbHealthy: 1 when node is healthy behind every ingress virtual service, 0 when behind
// none, -1 otherwise.
func lbHealthy(p *plan.Plan, node string) int {
	st, err := rundir.ForLab(p.Lab).ReadLBState()
	if err != nil {
		return -1
	}
	up, total := 0, 0
	for _, vs := range st.Services {
		if !strings.HasPrefix(vs.Name, "ingress-") {
			continue
		}
		for _, b := range vs.Backends {
			if b.Name == node {
				total++
				if b.Healthy {
					up++
				}
			}
		}
	}
	switch {
	case total > 0 && up == total:
		return 1
	case up == 0:
		return 0
	}
	return -1
}

// waitHealthy waits until every agent runs, every pod is a ready endpoint and every node
// is healthy in the LB.
func waitHealthy(p *plan.Plan, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ok := true
		for _, pr := range append(p.Processes, supervise.SupervisorProcess(p.Lab)) {
			if rec, err := supervise.ReadRecord(rundir.ForLab(p.Lab), pr.Role, pr.Name); err != nil || !rec.Alive() {
				ok = false
			}
		}
		for _, pod := range p.Pods {
			if endpointReady(p, pod.Name) == 0 {
				ok = false
			}
		}
		for _, n := range p.Nodes {
			if lbHealthy(p, n.Name) != 1 {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the lab is not healthy")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
