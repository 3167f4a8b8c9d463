package agent

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// MaxProbesPerSecond bounds the probes the controller sends to pods that are ready: each
// is a TCP handshake (and an HTTP request for httpGet probes) through the node's bridge,
// and a thousand pods probed every 250 ms took both CPUs of a small machine, starving the
// pods and every other agent. A ready pod is probed every max(readyPodPeriod, Interval,
// pods ÷ this) (1 s up to 200 pods, 5 s at 1000; kubelet's default is 10 s); a pod that is
// not ready, or whose last probe failed, every Interval.
const MaxProbesPerSecond = 200

// maxConcurrentProbes bounds the probes in flight: each holds an OS thread in the node's
// namespace while it connects.
const maxConcurrentProbes = 16

// readyPodPeriod is the shortest period of a ready pod's probes. A pod whose process ends
// is not ready at once, whatever the period (watchPodProcess); the probes find what a
// process's end does not show (a pod or node that stops answering).
const readyPodPeriod = time.Second

// steadyPeriod is how often a ready pod is probed in a lab of n pods.
func steadyPeriod(n int, fast time.Duration) time.Duration {
	return max(fast, readyPodPeriod, time.Duration(n)*time.Second/MaxProbesPerSecond)
}

// prober is what every probe loop of one controller shares.
type prober struct {
	cfg    ControllerConfig
	steady atomic.Int64 // the current steadyPeriod, as a time.Duration
	slots  chan struct{}
	out    chan<- probeResult
}

func newProber(cfg ControllerConfig, out chan<- probeResult) *prober {
	return &prober{cfg: cfg, slots: make(chan struct{}, maxConcurrentProbes), out: out}
}

// setPods sets the steady period for a plan of n pods.
func (pr *prober) setPods(n int) { pr.steady.Store(int64(steadyPeriod(n, pr.cfg.Interval))) }

// loop probes one pod and reports each result: every success, and a failure when it
// makes the pod not ready (a hard failure at once, others after softFailures in a row).
// A pod already ready (it reported so) is first probed within a steady period, at a
// random moment, so that the pods of a big lab are not probed in step. A kick (the pod's
// process ended) makes it probe at once, then at the fast pace until the pod answers.
func (pr *prober) loop(ctx context.Context, pod plan.Pod, nodeNetns string, ready bool, kick <-chan struct{}) {
	fast := pr.cfg.Interval
	if d, err := time.ParseDuration(pod.Probe.Period); err == nil && d > 0 && d < fast {
		fast = d // the plan's period, when it asks for quicker probes
	}
	first := time.Duration(0)
	spread := true
	if ready {
		first, spread = fast+rand.N(max(fast, time.Duration(pr.steady.Load()))), false
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	soft := 0
	for {
		select {
		case <-timer.C:
		case <-kick:
			timer.Stop()
		case <-ctx.Done():
			return
		}
		select {
		case pr.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := probePod(ctx, pod, nodeNetns, pr.cfg.Timeout)
		<-pr.slots
		switch {
		case err == nil:
			soft = 0
		case hardFailure(err):
			soft = softFailures
		default:
			soft++
		}
		if err == nil || soft >= softFailures {
			select {
			case pr.out <- probeResult{pod: pod.Name, ready: err == nil, err: err, at: time.Now()}:
			case <-ctx.Done():
				return
			}
		}
		wait := fast
		if err == nil {
			wait = max(fast, time.Duration(pr.steady.Load()))
			if spread { // once, so that the pods of a big lab are not probed in step
				wait = fast + rand.N(wait)
				spread = false
			}
		}
		timer.Reset(wait)
	}
}

// readinessRecord is what the controller knows of every pod, written as the lab's
// readiness record (status and up read it instead of probing every pod themselves).
type readinessRecord struct {
	dir     rundir.Dir
	started time.Time
	written time.Time
	pods    map[string]rundir.PodReadiness
}

func newReadinessRecord(dir rundir.Dir) *readinessRecord {
	return &readinessRecord{dir: dir, started: time.Now().UTC(), pods: map[string]rundir.PodReadiness{}}
}

// observe takes a probe result.
func (rr *readinessRecord) observe(r probeResult) {
	pr := rr.pods[r.pod]
	pr.Probed = r.at.UTC()
	pr.Reason = errString(r.err)
	rr.pods[r.pod] = pr
}

// report takes a pod's own report that it serves, received at.
func (rr *readinessRecord) report(pod string, at time.Time) {
	pr := rr.pods[pod]
	pr.Reported = at.UTC()
	pr.Reason = ""
	rr.pods[pod] = pr
}

// forget drops a pod that left the plan.
func (rr *readinessRecord) forget(pod string) { delete(rr.pods, pod) }

// write records every pod of p as isReady decides (its probes and its node), now.
func (rr *readinessRecord) write(p *plan.Plan, isReady func(string) bool, nodeReady func(string) bool, fast, steady time.Duration) error {
	now := time.Now().UTC()
	for _, pod := range p.Pods {
		pr := rr.pods[pod.Name]
		ready := isReady(pod.Name)
		if ready != pr.Ready || pr.Since.IsZero() {
			pr.Since = now
		}
		pr.Ready = ready
		if ready {
			pr.Reason = ""
		} else if pr.Reason == "" && !pr.Probed.IsZero() && !nodeReady(pod.Node) {
			pr.Reason = "node " + pod.Node + " is not ready"
		}
		rr.pods[pod.Name] = pr
	}
	rec := rundir.PodRecord{Updated: now, Started: rr.started, Period: steady.String(), FastPeriod: fast.String(), Pods: rr.pods}
	if err := rr.dir.WriteReadiness(rec); err != nil {
		return err
	}
	rr.written = now
	return nil
}

// reportedReady reads up's list of the pods that reported they serve (rundir.Reported) and
// returns, with when they did, those it can take as ready and that still run the process
// that reported: the echo agent's pods (it answers every request on every TCP port it
// listens on, so their readiness probe passes once it listens) whose probe is on one of
// those ports or is "the process runs"; and the cluster DNS's, whose probe is its
// agent's own ready endpoint, which answers from before the agent reports.
func reportedReady(dir rundir.Dir, p *plan.Plan, log *slog.Logger) map[string]time.Time {
	rep, err := dir.ReadReported()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("pods' ready reports not used", "err", err)
		}
		return nil
	}
	out := map[string]time.Time{}
	for _, pod := range p.Pods {
		r, ok := rep.Pods[pod.Name]
		if !ok || pod.Terminating || !probePassedOnReport(pod) {
			continue
		}
		if r.Start == "" || kernel.StartTime(r.PID) != r.Start || !kernel.Alive(r.PID) {
			continue // not the process that reported any more
		}
		out[pod.Name] = r.At
	}
	log.Info("pods ready as they reported", "pods", len(out), "of", len(p.Pods))
	return out
}

// probePassedOnReport says whether pod's readiness probe passes once its agent reported
// ready.
func probePassedOnReport(pod plan.Pod) bool {
	switch pod.Agent {
	case "":
		return probeServedByEcho(pod)
	case plan.DNSAgent:
		return pod.Probe.Type == "http" && pod.Probe.Port == plan.DNSReadyPort && pod.Probe.Path == plan.DNSReadyPath
	}
	return false
}

// probeServedByEcho says whether the echo agent passes pod's readiness probe as soon as it
// listens: a TCP or HTTP probe on one of its TCP ports, or a probe of its process.
func probeServedByEcho(pod plan.Pod) bool {
	if pod.Probe.Type == "exec" || pod.Probe.Port == 0 {
		return true
	}
	for _, cp := range pod.Ports {
		if cp.Port == pod.Probe.Port && cp.Protocol == "TCP" {
			return true
		}
	}
	return false
}
