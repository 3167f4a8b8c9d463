package agent

import (
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

func TestSteadyPeriodBoundsTheProbeRate(t *testing.T) {
	fast := 250 * time.Millisecond
	for _, c := range []struct {
		pods int
		want time.Duration
	}{{1, readyPodPeriod}, {30, readyPodPeriod}, {50, readyPodPeriod}, {200, time.Second}, {400, 2 * time.Second}, {1000, 5 * time.Second}} {
		got := steadyPeriod(c.pods, fast)
		if got != c.want {
			t.Errorf("%d pods: %v, want %v", c.pods, got, c.want)
		}
		if rate := float64(c.pods) / got.Seconds(); rate > MaxProbesPerSecond {
			t.Errorf("%d pods: %.0f probes/s", c.pods, rate)
		}
	}
}

// The record says, for every pod of the plan, the controller's verdict (its probes and
// its node), when it last probed it and since when its readiness holds; it is rewritten
// with a new time even when nothing changed.
func TestReadinessRecordWrite(t *testing.T) {
	d := rundir.At(t.TempDir())
	rr := newReadinessRecord(d)
	p := &plan.Plan{Pods: []plan.Pod{{Name: "w-1", Node: "node-1"}, {Name: "w-2", Node: "node-2"}, {Name: "w-3", Node: "node-1"}}}
	probed := map[string]bool{"w-1": true, "w-2": true}
	nodeOK := map[string]bool{"node-1": true, "node-2": false}
	isReady := func(pod string) bool {
		for _, x := range p.Pods {
			if x.Name == pod {
				return probed[pod] && nodeOK[x.Node]
			}
		}
		return false
	}
	t0 := time.Now()
	rr.observe(probeResult{pod: "w-1", ready: true, at: t0})
	rr.observe(probeResult{pod: "w-2", ready: true, at: t0})
	if err := rr.write(p, isReady, func(n string) bool { return nodeOK[n] }, 250*time.Millisecond, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rec, err := d.ReadReadiness()
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Fresh(time.Now()) || rec.Period != "5s" || rec.FastPeriod != "250ms" || rec.Started.IsZero() {
		t.Errorf("record %+v", rec)
	}
	if pr, ok := rec.Pod("w-1"); !ok || !pr.Ready || pr.Reason != "" || !pr.Probed.Equal(t0.UTC()) {
		t.Errorf("w-1: %+v %v", pr, ok)
	}
	if pr, ok := rec.Pod("w-2"); !ok || pr.Ready || pr.Reason != "node node-2 is not ready" {
		t.Errorf("w-2 (node not ready): %+v %v", pr, ok)
	}
	if _, ok := rec.Pod("w-3"); ok {
		t.Errorf("w-3 is known before any probe")
	}
	since := rec.Pods["w-1"].Since
	first := rec.Updated

	// A failure, the node back, and a refresh with nothing else new.
	time.Sleep(2 * time.Millisecond)
	rr.observe(probeResult{pod: "w-1", ready: false, err: errors.New("readiness: connection refused"), at: time.Now()})
	probed["w-1"] = false
	nodeOK["node-2"] = true
	if err := rr.write(p, isReady, func(n string) bool { return nodeOK[n] }, 250*time.Millisecond, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rec, _ = d.ReadReadiness()
	if !rec.Updated.After(first) {
		t.Errorf("updated %v, not after %v", rec.Updated, first)
	}
	if pr := rec.Pods["w-1"]; pr.Ready || pr.Reason != "readiness: connection refused" || !pr.Since.After(since) {
		t.Errorf("w-1 after its failure: %+v", pr)
	}
	if pr := rec.Pods["w-2"]; !pr.Ready || pr.Reason != "" {
		t.Errorf("w-2 with its node back: %+v", pr)
	}
	rr.forget("w-3")
	p.Pods = p.Pods[:2]
	if err := rr.write(p, isReady, func(n string) bool { return nodeOK[n] }, 250*time.Millisecond, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if rec, _ = d.ReadReadiness(); len(rec.Pods) != 2 {
		t.Errorf("pods after w-3 left: %v", rec.Pods)
	}
}

// The controller takes as ready from the start only the pods whose own report it can
// trust, still run by the process that reported: the echo agent's, with a probe the echo
// passes once it listens; the cluster DNS's, probed on its agent's ready endpoint.
func TestReportedReady(t *testing.T) {
	d := rundir.At(t.TempDir())
	self := os.Getpid()
	start := kernel.StartTime(self)
	at := time.Now().UTC().Truncate(time.Millisecond)
	tcp := []plan.ContainerPort{{Port: 8080, Protocol: "TCP"}}
	p := &plan.Plan{Pods: []plan.Pod{
		{Name: "echo", Ports: tcp, Probe: plan.Probe{Type: "tcp", Port: 8080}},
		{Name: "http", Ports: tcp, Probe: plan.Probe{Type: "http", Port: 8080, Path: "/ready"}},
		{Name: "udp", Ports: []plan.ContainerPort{{Port: 53, Protocol: "UDP"}}, Probe: plan.Probe{Type: "exec"}},
		{Name: "otherport", Ports: tcp, Probe: plan.Probe{Type: "http", Port: 9090, Path: "/"}},
		{Name: "dns", Agent: "dns", Ports: tcp, Probe: plan.Probe{Type: "http", Port: 8080, Path: "/ready"}},
		{Name: "coredns", Agent: plan.DNSAgent, Probe: plan.Probe{Type: "http", Port: plan.DNSReadyPort, Path: plan.DNSReadyPath}},
		{Name: "other-agent", Agent: "other", Ports: tcp, Probe: plan.Probe{Type: "tcp", Port: 8080}},
		{Name: "restarted", Ports: tcp, Probe: plan.Probe{Type: "tcp", Port: 8080}},
		{Name: "silent", Ports: tcp, Probe: plan.Probe{Type: "tcp", Port: 8080}},
	}}
	log := slog.New(slog.DiscardHandler)
	if got := reportedReady(d, p, log); len(got) != 0 {
		t.Fatalf("no report: %v", got)
	}
	rep := rundir.Reported{Pods: map[string]rundir.ReportedPod{}}
	for _, n := range []string{"echo", "http", "udp", "otherport", "dns", "coredns", "other-agent"} {
		rep.Pods[n] = rundir.ReportedPod{PID: self, Start: start, At: at}
	}
	rep.Pods["restarted"] = rundir.ReportedPod{PID: self, Start: start + "0", At: at}
	if err := d.WriteReported(rep); err != nil {
		t.Fatal(err)
	}
	got := reportedReady(d, p, log)
	want := []string{"echo", "http", "udp", "coredns"}
	if len(got) != len(want) {
		t.Errorf("ready from reports: %v, want %v", got, want)
	}
	for _, n := range want {
		if !got[n].Equal(at) {
			t.Errorf("%s: reported at %v, want %v", n, got[n], at)
		}
	}
}
