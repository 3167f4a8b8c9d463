package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// ControllerConfig configures the endpoints controller.
type ControllerConfig struct {
	Lab string
	// Dir is the lab's runtime directory (default rundir.ForLab(Lab)); the plan is read
	// from it and the endpoints written to it.
	Dir string
	// Interval between two probes of a pod; at most 500 ms (default 250 ms).
	Interval time.Duration
	// Timeout of one probe (default 1 s, kubelet's default).
	Timeout time.Duration
	// ReadyGrace bounds how long the controller waits, before reporting ready, for every
	// pod to be ready and every node to have programmed it (default 15 s).
	ReadyGrace time.Duration
}

type probeResult struct {
	pod   string
	ready bool
	err   error
	at    time.Time
}

// RunController probes every pod's readiness (its readinessProbe, else a TCP connect to
// its first TCP port, else "its process is alive" for UDP-only pods) from inside the
// pod's node namespace, and writes every service port's endpoints with their readiness
// to endpoints.json whenever a pod's readiness changes. A pod whose process ends is not
// ready at once (its pidfd), and a refused connection fails at once: a killed pod leaves
// its Services as it dies. It logs endpoint
// changes and, when the node agents report them applied, "sync done".
func RunController(ctx context.Context, cfg ControllerConfig, log *slog.Logger) error {
	dir := rundir.Resolve(cfg.Lab, cfg.Dir)
	if cfg.Interval <= 0 || cfg.Interval > 500*time.Millisecond {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.ReadyGrace <= 0 {
		cfg.ReadyGrace = 15 * time.Second
	}
	planPath := dir.Plan()
	// Live changes (the plan) and the node agents' sync reports wake the controller
	// (inotify), followed from before the first reads; without inotify, it polls them.
	planWatch := rundir.Watch(ctx, dir.Path(), filepath.Base(planPath))
	syncWatch := rundir.Watch(ctx, filepath.Join(dir.Path(), rundir.SyncDir))
	planStamp := rundir.FileStamp(planPath)
	p, err := rundir.ReadPlanView(planPath, rundir.ControllerPlan)
	if err != nil {
		return err
	}
	// Started beside the pods, the controller waits here until up has written which pods
	// reported ready (reportedReady below).
	if err := ready.WaitRelease(ctx); err != nil {
		return nil
	}
	// The controller watches the lab's supervisor, which watches every agent (this one too).
	go supervise.Guard(ctx, supervise.Config{Lab: cfg.Lab, Dir: dir}, log.With("task", "guard"))
	nodeNS := map[string]string{}
	for _, n := range p.Nodes {
		nodeNS[n.Name] = n.Netns
	}
	results := make(chan probeResult, len(p.Pods)+1)
	probes := newProber(cfg, results)
	record := newReadinessRecord(dir)
	// A node that drops off the fabric makes its pods unready everywhere, as the node
	// lifecycle controller does for a NotReady node (here within one interval, not 40 s):
	// the pods still answer their own node's probes, but no other node can reach them.
	podNode := map[string]string{}
	ready := map[string]bool{}
	seen := map[string]bool{}
	// Every pod of the plan is probed; the plan changes under live changes (apply,
	// scale, rollout): new pods are probed from then on, pods that left are forgotten,
	// and the others keep their readiness.
	probing := map[string]context.CancelFunc{}
	// The pods that reported to up that they serve, and still run the process that did,
	// are ready from the start, as Kubernetes takes a started container; they are probed
	// from then on as any ready pod.
	probes.setPods(len(p.Pods))
	for pod, at := range reportedReady(dir, p, log) {
		ready[pod], seen[pod] = true, true
		record.report(pod, at)
	}
	followPlan := func() {
		probes.setPods(len(p.Pods))
		in := map[string]bool{}
		for _, pod := range p.Pods {
			in[pod.Name] = true
			podNode[pod.Name] = pod.Node
			if probing[pod.Name] == nil {
				pctx, cancel := context.WithCancel(ctx)
				probing[pod.Name] = cancel
				kick := make(chan struct{}, 1)
				go probes.loop(pctx, pod, nodeNS[pod.Node], ready[pod.Name], kick)
				go watchPodProcess(pctx, dir, pod.Name, cfg.Interval, results, kick)
			}
		}
		for name, cancel := range probing {
			if !in[name] {
				cancel()
				delete(probing, name)
				delete(ready, name)
				delete(seen, name)
				delete(podNode, name)
				record.forget(name)
			}
		}
	}
	followPlan()
	nodeReady := map[string]bool{}
	for _, n := range p.Nodes {
		nodeReady[n.Name] = true
	}
	nodeEvents := make(chan nodeResult, len(p.Nodes))
	go nodeLoop(ctx, cfg.Interval, p, nodeEvents, log.With("task", "routes"))

	var gen int64
	var last []kubeproxy.ServicePort
	start := time.Now()
	reported := false
	var pending *pendingSync
	isReady := func(pod string) bool { return ready[pod] && nodeReady[podNode[pod]] }
	writeRecord := func() {
		if err := record.write(p, isReady, func(n string) bool { return nodeReady[n] }, cfg.Interval, time.Duration(probes.steady.Load())); err != nil {
			log.Error("write the readiness record", "err", err)
		}
	}
	write := func() error {
		gen++
		ports := p.ServicePorts(isReady)
		logEndpointChanges(log, last, ports)
		last = ports
		podReady := make(map[string]bool, len(p.Pods))
		for _, pod := range p.Pods {
			podReady[pod.Name] = isReady(pod.Name)
		}
		if err := dir.WriteEndpoints(kubeproxy.EndpointsFile{Generation: gen, Updated: time.Now().UTC(), Ports: ports, PodReady: podReady}); err != nil {
			return fmt.Errorf("write endpoints: %w", err)
		}
		pending = &pendingSync{gen: gen, since: time.Now()}
		writeRecord()
		return nil
	}
	// Nothing is ready before the first probe: write that at once so node agents can start.
	if err := write(); err != nil {
		return err
	}
	log.Info("controller started", "lab", p.Lab, "pods", len(p.Pods), "interval", cfg.Interval.String(),
		"readyPodPeriod", time.Duration(probes.steady.Load()).String())
	poll := 20 * time.Millisecond
	if planWatch.Active() && syncWatch.Active() {
		poll = 250 * time.Millisecond // the readiness record's refresh, the ready grace
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	// files follows the plan and the node agents' reports, refreshes the readiness
	// record and says ready once every pod is and every node applied the endpoints.
	files := func() {
		if st := rundir.FileStamp(planPath); st != planStamp {
			if np, err := rundir.ReadPlanView(planPath, rundir.ControllerPlan); err == nil {
				planStamp, p = st, np
				followPlan()
				log.Info("plan changed", "pods", len(p.Pods), "services", len(p.Services))
				if err := write(); err != nil {
					log.Error("write endpoints", "err", err)
				}
			}
		}
		if pending != nil && pending.check(dir, p, log) {
			pending = nil
		}
		if time.Since(record.written) >= rundir.RecordRefresh {
			writeRecord()
		}
		if !reported {
			all := len(seen) == len(p.Pods)
			for _, pod := range p.Pods {
				all = all && ready[pod.Name]
			}
			if (all && pending == nil) || time.Since(start) > cfg.ReadyGrace {
				if !all {
					log.Warn("reporting ready with pods not ready", "after", time.Since(start).String())
				}
				reported = true
				NotifyReady()
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("controller stopping")
			return nil
		case nr := <-nodeEvents:
			if nodeReady[nr.node] == nr.ready {
				continue
			}
			nodeReady[nr.node] = nr.ready
			if nr.ready {
				log.Info("node ready", "node", nr.node)
			} else {
				log.Info("node not ready: its pods leave every Service", "node", nr.node, "reason", nr.reason)
			}
			if err := write(); err != nil {
				log.Error("write endpoints", "err", err)
			}
		case r := <-results:
			if probing[r.pod] == nil {
				continue // a pod that left the plan
			}
			seen[r.pod] = true
			record.observe(r)
			if ready[r.pod] == r.ready {
				continue
			}
			ready[r.pod] = r.ready
			if r.ready {
				log.Info("pod ready", "pod", r.pod)
			} else {
				log.Info("pod not ready", "pod", r.pod, "reason", errString(r.err))
			}
			// Take every result already queued before writing: one change for a burst.
			for drained := false; !drained; {
				select {
				case r := <-results:
					if probing[r.pod] == nil {
						continue
					}
					seen[r.pod] = true
					record.observe(r)
					if ready[r.pod] != r.ready {
						ready[r.pod] = r.ready
						if r.ready {
							log.Info("pod ready", "pod", r.pod)
						} else {
							log.Info("pod not ready", "pod", r.pod, "reason", errString(r.err))
						}
					}
				default:
					drained = true
				}
			}
			if err := write(); err != nil {
				log.Error("write endpoints", "err", err)
			}
		case <-planWatch.C:
			files()
		case <-syncWatch.C:
			files()
		case <-tick.C:
			files()
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// pendingSync waits for every node agent to report a generation.
type pendingSync struct {
	gen   int64
	since time.Time
}

func (ps *pendingSync) check(dir rundir.Dir, p *plan.Plan, log *slog.Logger) bool {
	var worst float64
	var lastAt time.Time
	for _, n := range p.Nodes {
		st, err := dir.ReadSyncStatus(n.Name)
		if err != nil || st.Generation < ps.gen {
			return false
		}
		worst = max(worst, st.Ms)
		if st.At.After(lastAt) {
			lastAt = st.At
		}
	}
	// From the endpoints write to the last node's applied rules.
	log.Info("sync done", "generation", ps.gen, "nodes", len(p.Nodes),
		"ms", lastAt.Sub(ps.since).Milliseconds(), "slowestApplyMs", worst)
	return true
}

// logEndpointChanges logs every endpoint whose readiness differs between two states.
func logEndpointChanges(log *slog.Logger, old, cur []kubeproxy.ServicePort) {
	readyOf := func(ports []kubeproxy.ServicePort) map[string]bool {
		m := map[string]bool{}
		for _, sp := range ports {
			for _, ep := range sp.Endpoints {
				if ep.Ready {
					m[sp.ServicePortName()+"|"+ep.Pod+"|"+ep.String()] = true
				}
			}
		}
		return m
	}
	a, b := readyOf(old), readyOf(cur)
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if !a[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if a[k] == b[k] {
			continue
		}
		parts := strings.SplitN(k, "|", 3)
		msg := "endpoint added"
		if !b[k] {
			msg = "endpoint removed"
		}
		log.Info(msg, "service", parts[0], "pod", parts[1], "endpoint", parts[2])
	}
}

// softFailures is how many probe failures in a row, other than a refused connection or a
// bad answer, make a ready pod not ready (kubelet's failureThreshold is 3 too): a loaded
// machine may stall a probe past its timeout without the pod being gone.
const softFailures = 3

// hardFailure says whether a probe error proves the pod is not serving: the connection
// was refused (nothing listens: the process died) or it answered with an error status.
func hardFailure(err error) bool {
	var se *rundir.ProbeStatusError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &se) || errors.Is(err, rundir.ErrNotRunning)
}

type nodeResult struct {
	node   string
	ready  bool
	reason string
}

// nodeLoop watches every node's link to the fabric and reports changes.
func nodeLoop(ctx context.Context, interval time.Duration, p *plan.Plan, out chan<- nodeResult, log *slog.Logger) {
	nodes := p.Nodes
	h := kernel.NewHandles()
	defer h.Close()
	lastRepair := time.Now()
	last := map[string]bool{}
	for _, n := range nodes {
		last[n.Name] = true
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, n := range nodes {
			up, err := h.LinkUp(n.Netns, plan.NodeIface)
			reason := "eth0 is down"
			if err != nil {
				up, reason = false, err.Error()
			}
			// A node whose link is up gets its planned routes back (at once when it
			// comes up, else checked every second).
			if up && (!last[n.Name] || time.Since(lastRepair) >= time.Second) {
				if added, err := repairNode(h, p, n); err != nil {
					log.Error("repair node", "node", n.Name, "err", err)
				} else if len(added) > 0 {
					log.Warn("node had lost routes: added them back", "node", n.Name, "routes", added)
				}
			}
			if up != last[n.Name] {
				last[n.Name] = up
				select {
				case out <- nodeResult{node: n.Name, ready: up, reason: reason}:
				case <-ctx.Done():
					return
				}
			}
		}
		if time.Since(lastRepair) >= time.Second {
			lastRepair = time.Now()
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// probePod runs the pod's readiness probe from its node's namespace, as kubelet does.
func probePod(ctx context.Context, pod plan.Pod, nodeNetns string, timeout time.Duration) error {
	return rundir.ProbeFrom(ctx, nodeNetns, pod, timeout)
}
