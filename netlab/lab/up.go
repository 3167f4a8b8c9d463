package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// Options of Up.
type Options struct {
	// Binary is the netlab executable the agents run (default: this executable).
	Binary string
	// Retain keeps what was made when Up fails, for debugging.
	Retain bool
	// ReadyTimeout bounds the wait for every agent to report ready (default 30 s).
	ReadyTimeout time.Duration
	Log          *slog.Logger
	// Scenario is the scenario text the plan came from, kept with the logs for
	// `netlab export logs`.
	Scenario []byte
	// started, when set, is told the pid of every agent launch starts.
	started func(pid int, pr plan.Process)
}

// startedHook, when set (by a test), is told the pid and process of every agent up starts.
var startedHook func(pid int, pr plan.Process)

// UpGCPercent is the GOGC an up runs with (see Up); every netlab command but an agent
// runs with it from its start to its end (cli.Execute), unless GOGC is set: none collects.
const UpGCPercent = 400

// ErrExists is returned by Up when the lab is already up.
var ErrExists = errors.New("lab already exists")

// saying is an error that says msg and is err for errors.Is, without repeating err's text.
type saying struct {
	msg string
	err error
}

func (s saying) Error() string { return s.msg }
func (s saying) Unwrap() error { return s.err }

// Up builds the lab of p and returns when every agent reports ready. On failure it removes
// everything it made (unless Retain) and returns the error.
func Up(ctx context.Context, p *plan.Plan, o Options) (err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.Binary == "" {
		if o.Binary, err = os.Executable(); err != nil {
			return fmt.Errorf("find the netlab binary: %w", err)
		}
	}
	if err := Preflight(); err != nil {
		return err
	}
	// An up allocates a few MB (the plan, its encoding, the starts' arguments and
	// environments): with the default GOGC its heap reached the runtime's first goal
	// near its end, and that one collection (marking the binary's large globals beside
	// the agents' start) cost more CPU than all the memory it would free is worth here.
	defer debug.SetGCPercent(debug.SetGCPercent(UpGCPercent))
	// Up's own threads run with the agents' start's timer slack until it returns (see
	// ready.QuietStarter): its runtime monitor woke every 20 µs through the whole up.
	defer ready.QuietStarter()()
	for _, pr := range p.Processes {
		if _, err := supervise.AgentBinary(o.Binary, pr); err != nil {
			return err // before anything is made
		}
	}
	lk, err := rundir.LockLab(p.Lab)
	if err != nil {
		return err
	}
	defer func() { lk.Unlock(false) }()
	if existing, _ := kernel.ListNetns(plan.NetnsName(p.Lab, "")); len(existing) > 0 {
		return saying{fmt.Sprintf("lab %s is already up (%d namespaces, e.g. %s): run `netlab down --name %s` first, or pick another --name",
			p.Lab, len(existing), existing[0], p.Lab), ErrExists}
	}
	// The logs a previous lab of this name left behind go now.
	if err := PurgeLogs(p.Lab); err != nil {
		return err
	}
	// Three steps run beside the ones that follow them, and are waited for before what
	// needs them; a failed up waits for them before it rolls back:
	//   - the runtime files (the plan, encoded and written: ~0.1 s at 1000 pods) beside
	//     the namespaces, before the agents, which read the plan, start;
	//   - the namespaces' hosts and resolv.conf files, which need no namespace, beside the
	//     namespaces and the links, before the agents are waited for: right after a down,
	//     on a file system that allocates inodes slowly then (see kernel.CreateNetnsAll),
	//     writing them takes longer than the links alone;
	//   - the log files of the pods that start after the fabric (createPodLogs), beside the
	//     links, before those pods start; a rolled-back up removes those still empty.
	// The agents are all started in the background right after the namespaces, beside the
	// links (agentStart.startAll), and waited for once the fabric is wired.
	var runtimeFiles, hosts, podLogs aside
	var podLogFiles []string // made by createPodLogs: read once podLogs is waited for
	writeHostsTimed := func(ctx context.Context, p *plan.Plan, o Options) error {
		t := time.Now()
		err := writeHosts(ctx, p, o)
		o.Log.Debug("hosts and resolv.conf files written", "ms", time.Since(t).Milliseconds())
		return err
	}
	defer func() {
		if err != nil {
			_ = runtimeFiles.wait(ctx, p, o)
			_ = hosts.wait(ctx, p, o)
			_ = podLogs.wait(ctx, p, o)
		}
		if err != nil && !o.Retain {
			o.Log.Warn("up failed, rolling back", "lab", p.Lab, "err", err)
			if derr := down(p.Lab, o.Log); derr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", derr))
			}
			// down keeps the logs for the post-mortem; an empty one made ahead is a pod
			// that never started (or said nothing): it would read as one that did.
			removeEmpty(podLogFiles)
		}
	}()
	start := time.Now()
	// One netlink handle per namespace for the links and the routes: the routes step
	// reuses the links step's handles and the ifindexes it chose, and closes them.
	h := kernel.NewHandles()
	defer h.Close()
	agents := &agentStart{wired: newGate()}
	defer agents.release()
	steps := []struct {
		name string
		fn   func(context.Context, *plan.Plan, Options) error
	}{
		{"runtime files started", runtimeFiles.start(writeRuntime)},
		{"hosts and resolv.conf files started", hosts.start(writeHostsTimed)},
		{"namespaces", createNamespaces},
		{"runtime files", runtimeFiles.wait},
		{"agents started", agents.startAll},
		{"pods' log files started", podLogs.start(func(context.Context, *plan.Plan, Options) (err error) {
			podLogFiles, err = createPodLogs(p)
			return err
		})},
		{"links", func(_ context.Context, p *plan.Plan, _ Options) error {
			return fabricFirst(func() error { return wireLinks(h, p) })
		}},
		{"routes and sysctls", func(_ context.Context, p *plan.Plan, _ Options) error {
			defer h.Close() // every fork copies the open descriptors
			return fabricFirst(func() error { return routesAndSysctls(h, p) })
		}},
		{"fabric wired", func(context.Context, *plan.Plan, Options) error {
			agents.yield.restore()
			agents.wired.open(true)
			return nil
		}},
		{"hosts and resolv.conf files", hosts.wait},
		{"agents", agents.waitAgents},
		{"pods' log files", podLogs.wait},
		{"conntrack sysctls", conntrackSysctls},
		{"readiness", func(ctx context.Context, p *plan.Plan, o Options) error {
			return verifyReadyUntil(ctx, p, o, start.Add(o.ReadyTimeout))
		}},
		{"supervisor", func(ctx context.Context, p *plan.Plan, o Options) error {
			return agents.sup.wait(ctx, p.Lab, o, time.Now().Add(o.ReadyTimeout), nil)
		}},
	}
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		t, cpu := time.Now(), selfCPU()
		if err := st.fn(ctx, p, o); err != nil {
			return fmt.Errorf("up %s: %s: %w", p.Lab, st.name, err)
		}
		o.Log.Debug("step done", "step", st.name, "ms", time.Since(t).Milliseconds(), "cpuMs", (selfCPU() - cpu).Milliseconds())
	}
	o.Log.Info("lab up", "lab", p.Lab, "nodes", len(p.Nodes), "pods", len(p.Pods), "ms", time.Since(start).Milliseconds())
	return nil
}

// aside runs a step's work beside the steps that follow its start, until its wait.
type aside struct{ done chan error }

// start returns the step that starts fn.
func (a *aside) start(fn func(context.Context, *plan.Plan, Options) error) func(context.Context, *plan.Plan, Options) error {
	return func(ctx context.Context, p *plan.Plan, o Options) error {
		a.done = make(chan error, 1)
		go func() { a.done <- fn(ctx, p, o) }()
		return nil
	}
}

// wait is the step that waits for fn and returns its error (nil when not started, or
// waited for already).
func (a *aside) wait(context.Context, *plan.Plan, Options) error {
	if a.done == nil {
		return nil
	}
	err := <-a.done
	a.done = nil
	return err
}

// selfCPU is the CPU time this process (every thread; not its children) has used: with
// the wall time of each step, on a shared machine, it tells up's own work from waiting.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Preflight checks what the lab needs from the machine, changing nothing.
func Preflight() error {
	var missing []string
	for _, bin := range []string{"iptables-restore", "iptables-save", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing commands: %s (run scripts/deps.sh)", strings.Join(missing, ", "))
	}
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		return errors.New("the kernel's bridge netfilter (br_netfilter) is not loaded: kube-proxy's rules need it " +
			"for traffic between pods of one node; load it with `sudo modprobe br_netfilter` (netlab does not load modules itself)")
	}
	return nil
}

func writeRuntime(_ context.Context, p *plan.Plan, o Options) error {
	d := rundir.ForLab(p.Lab)
	if err := os.MkdirAll(d.Path(), 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(d.Logs(), 0o700); err != nil {
		return err
	}
	if len(o.Scenario) > 0 {
		if err := os.WriteFile(d.Scenario(), o.Scenario, 0o600); err != nil {
			return err
		}
	}
	if err := os.Chmod(d.Path(), 0o700); err != nil {
		return err
	}
	return d.WritePlan(p)
}

// parallelism bounds the concurrent kernel calls and process starts of one up.
var parallelism = max(4, 2*runtime.NumCPU())

// forEach runs fn for every index with at most parallelism at once and returns every error.
func forEach(n int, fn func(i int) error) error {
	sem := make(chan struct{}, parallelism)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(i)
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func createNamespaces(_ context.Context, p *plan.Plan, _ Options) error {
	return kernel.CreateNetnsAll(p.Namespaces(), parallelism)
}

// wireLinks makes the links of p's new namespaces: the bridges one by one, then every
// loopback and veth in one kernel.Batch (a few netlink writes per namespace, not a round
// trip per request), then the VXLAN devices.
func wireLinks(h *kernel.Handles, p *plan.Plan) error {
	for _, sw := range p.Switches {
		if err := h.EnsureBridge(sw.Netns, sw.Bridge, "", nil); err != nil {
			return err
		}
	}
	for _, n := range p.Nodes {
		if err := h.EnsureBridge(n.Netns, plan.BridgeCNI, n.BridgeMAC, []string{n.Gateway}); err != nil {
			return err
		}
	}
	batch := h.NewBatch()
	for _, ns := range p.Namespaces() {
		batch.LoUp(ns)
	}
	for _, l := range p.Links {
		a := kernel.VethEnd{NS: l.A.Netns, Name: l.A.Name, MAC: l.A.MAC, MTU: l.A.MTU, Addrs: l.A.Addrs, Master: l.A.Master}
		b := kernel.VethEnd{NS: l.B.Netns, Name: l.B.Name, Addrs: l.B.Addrs, Master: l.B.Master, Hairpin: l.B.Master == plan.BridgeCNI}
		if err := batch.AddVeth(a, b); err != nil {
			return err
		}
	}
	if err := batch.Run(); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		if v := n.VTEP; v != nil {
			if err := h.AddVXLAN(kernel.VXLANDev{NS: n.Netns, Name: v.Dev, MAC: v.MAC, Addr: v.Addr,
				Local: plan.Addr(n.IP), VNI: v.VNI, Port: v.Port, MTU: v.MTU}); err != nil {
				return err
			}
		}
	}
	return nil
}

func routesAndSysctls(h *kernel.Handles, p *plan.Plan) error {
	batch := h.NewBatch()
	for _, r := range p.Routes {
		if err := batch.AddRoute(r.Netns, r.Dst, r.Via, r.Dev, r.Onlink); err != nil {
			return err
		}
	}
	for _, n := range p.Neighbors {
		if err := batch.AddNeighbor(n.Netns, n.Dev, n.IP, n.MAC); err != nil {
			return err
		}
	}
	for _, f := range p.FDB {
		if err := batch.AddFDB(f.Netns, f.Dev, f.MAC, f.Dst); err != nil {
			return err
		}
	}
	if err := batch.Run(); err != nil {
		return err
	}
	for _, s := range p.Sysctls {
		if strings.HasPrefix(s.Key, conntrackSysctl) {
			continue // conntrackSysctls, once the agents' rules have loaded conntrack
		}
		if err := kernel.SetSysctl(s.Netns, s.Key, s.Value); err != nil {
			return err
		}
	}
	return nil
}

// conntrackSysctl prefixes the sysctls that exist only once nf_conntrack is loaded.
const conntrackSysctl = "net.netfilter."

// conntrackSysctls sets them after the agents started: the LB's and kube-proxy's first
// iptables-restore has loaded conntrack by then, also on a kernel built with modules.
func conntrackSysctls(_ context.Context, p *plan.Plan, _ Options) error {
	for _, s := range p.Sysctls {
		if strings.HasPrefix(s.Key, conntrackSysctl) {
			if err := kernel.SetSysctl(s.Netns, s.Key, s.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyReadyUntil is up's last word: every pod answers its readiness probe from its node,
// and the LB has a healthy real server behind every ingress virtual service. An agent that
// reported ready after its grace period (a pod that never answered, a node the LB never
// reached) makes up fail here, naming what is not ready. What is not ready is looked at
// again every 200 ms until deadline (up's readiness bound): on a loaded machine a stall of
// a few seconds can make one round of the LB's or the controller's checks time out right
// after every agent reported ready, and the lab is whole again a moment later.
func verifyReadyUntil(ctx context.Context, p *plan.Plan, o Options, deadline time.Time) error {
	for {
		err := readyNow(ctx, p)
		if err == nil || ctx.Err() != nil || !time.Now().Before(deadline) {
			return err
		}
		o.Log.Debug("not ready yet, checking again", "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readyNow is one look of verifyReadyUntil's: nil when every pod and the LB are ready.
func readyNow(ctx context.Context, p *plan.Plan) error {
	// The controller reported ready once it had found every pod ready: its record says so
	// for each, and only a pod it does not call ready is probed again here (a thousand
	// probes at the end of a big up cost more than the rest of this step).
	rec, err := rundir.ForLab(p.Lab).ReadReadiness()
	if err == nil && !rec.Fresh(time.Now()) {
		rec = nil
	}
	errs := make([]error, len(p.Pods))
	_ = forEach(len(p.Pods), func(i int) error {
		if rec != nil {
			if pr, ok := rec.Pod(p.Pods[i].Name); ok && pr.Ready {
				return nil
			}
		}
		if err := rundir.Probe(ctx, p, p.Pods[i]); err != nil {
			errs[i] = fmt.Errorf("pod %s: %w", p.Pods[i].Name, err)
		}
		return nil
	})
	if st, err := rundir.ForLab(p.Lab).ReadLBState(); err == nil {
		for _, vs := range st.Services {
			if !strings.HasPrefix(vs.Name, "ingress-") {
				continue // a LoadBalancer Service may rightly have no healthy node (ETP Local)
			}
			healthy := 0
			for _, b := range vs.Backends {
				if b.Healthy {
					healthy++
				}
			}
			if healthy == 0 {
				errs = append(errs, fmt.Errorf("load balancer: no healthy node behind %s (%s:%d)", vs.Name, vs.VIP, vs.Port))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	return nil
}

// writeHosts writes the namespaces' /etc/netns/<ns>/hosts and resolv.conf files.
//
// A hosts file (the clients') is each namespace's own, rewritten in place, as it always
// was: a `netlab exec` session opened before a live change (which bind-mounted the file)
// sees the new Ingress hosts. The resolv.conf files, one per pod, say the same for every
// pod of a Kubernetes namespace: those share one file, each distinct content written once
// (to a new file renamed into place, so that a file other namespaces still link is never
// changed by netlab in place) and every other namespace's name a hard link of it (link
// beside, rename over). A live change never changes an existing pod's resolv.conf (the
// DNS settings cannot change live), so a session sees what it saw. At 1000 pods that is a
// few files instead of 1000, each of which, right after a down on a file system that
// allocates inodes slowly then (see kernel.CreateNetnsAll), cost up ~0.3 ms of CPU. (An
// edit of /etc/resolv.conf in place inside one pod, through `netlab exec`, now shows in
// every pod that shares the file.)
func writeHosts(_ context.Context, p *plan.Plan, _ Options) error {
	if len(p.Hosts) == 0 && len(p.ResolvConfs) == 0 {
		return nil
	}
	if _, err := os.Stat(rundir.EtcNetns); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(rundir.EtcNetns, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(rundir.EtcNetnsMark), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(rundir.EtcNetnsMark, nil, 0o600); err != nil {
			return err
		}
	}
	made := map[string]bool{}
	written := map[string]string{} // file name and content → the path written with it
	put := func(netns, name, content string) error {
		dir := rundir.EtcNetnsDir(netns)
		if !made[dir] {
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			made[dir] = true
		}
		path := filepath.Join(dir, name)
		key := name + "\x00" + content
		if first, ok := written[key]; ok {
			if err := os.Link(first, path); err == nil {
				return nil
			} else if !errors.Is(err, os.ErrExist) {
				return err
			}
			tmp := filepath.Join(dir, "."+name+".new")
			_ = os.Remove(tmp)
			if err := os.Link(first, tmp); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}
		if err := rundir.WriteFileAtomic(path, []byte(content), 0o644); err != nil {
			return err
		}
		written[key] = path
		return nil
	}
	for _, hf := range p.Hosts {
		dir := rundir.EtcNetnsDir(hf.Netns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		made[dir] = true
		path := filepath.Join(dir, "hosts")
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil && st.Nlink > 1 {
			// Shared with another namespace (by an earlier netlab): replaced, not written
			// through.
			if err := rundir.WriteFileAtomic(path, []byte(hf.Content), 0o644); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(path, []byte(hf.Content), 0o644); err != nil {
			return err
		}
	}
	for _, rc := range p.ResolvConfs {
		if err := put(rc.Netns, "resolv.conf", rc.Content); err != nil {
			return err
		}
	}
	return nil
}

// createPodLogs creates the log files of the pods that start only once the fabric is wired
// (launchPods: those past the first podsBeforeFabric), beside the links, so that their
// starts open files that exist. Creating a file allocates an inode, and right after a down
// on a file system that allocates inodes slowly then (ext4 steps over every recently freed
// one: a thousand log files removed by the down before) that took a 4×250 up ~0.4 s of CPU
// in the pods' starts, after the fabric, where every CPU is busy; beside the links, which
// one thread makes under the kernel's lock, a CPU is mostly idle. A start that comes first
// creates its file itself (O_CREATE, as here): either way the file is the same. It returns
// the files it made (not those a start made first), for a rolled-back up to remove those
// still empty.
func createPodLogs(p *plan.Plan) (made []string, err error) {
	d := rundir.ForLab(p.Lab)
	n := 0
	for _, pr := range p.Processes {
		if pr.Role != "pod" || earlyPod(pr) {
			continue
		}
		if n++; n <= podsBeforeFabric {
			continue
		}
		name := d.Log(pr.Role, pr.Name)
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // the pod's start was first
		}
		if err != nil {
			return made, err
		}
		f.Close()
		made = append(made, name)
	}
	return made, nil
}

// removeEmpty removes each of the files that is still empty (a file gone already, or one
// that cannot be read, is left as it is).
func removeEmpty(names []string) {
	for _, name := range names {
		if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			_ = os.Remove(name)
		}
	}
}

// agentStart is up's agents: all of them started in the background right after the
// namespaces (startAll), waited for once the fabric is wired (waitAgents).
type agentStart struct {
	ctl, ingress, nodes, lb, sup, pods *wave
	// dnsPods: the cluster DNS pods, started with the node agents (see launchAll).
	dnsPods *wave
	waves   []*wave
	// yield lowers the agents' CPU share until the fabric is wired (see yielding).
	yield yielding
	// wired opens when the fabric is wired (true) or up fails before (false): the pods
	// past the first podsBeforeFabric start only then (see launchPods).
	wired *gate
	// started yields launchAll's error, once; nil: not begun (at begun).
	started chan error
	begun   time.Time
	joined  bool
	err     error
}

// join waits for launchAll's launches.
func (a *agentStart) join() error {
	if a.started != nil && !a.joined {
		a.joined, a.err = true, <-a.started
	}
	return a.err
}

func (a *agentStart) launch(p *plan.Plan, o Options, procs []plan.Process, held bool) (*wave, error) {
	w, err := launch(p.Lab, procs, o, held)
	a.waves = append(a.waves, w)
	return w, err
}

// release lets every held agent go on: when up returns, whatever happened. It first waits
// for the launches, so that a failed up rolls back every process it started.
func (a *agentStart) release() {
	a.wired.open(false) // a pod still waiting for the fabric is not started
	_ = a.join()
	a.yield.restore()
	for _, w := range a.waves {
		w.release()
	}
}

// startAll starts every agent of the lab in the background, without waiting for any: the
// agents need only their namespace to start, and their start-up (each a process, most of
// up's CPU) then runs beside the links, which are made one at a time under RTNL. In order:
//   - kube-proxy in every node and the cluster DNS pods (earlyPod);
//   - three agents held at a point of their start-up (supervise.StartHeld) until what
//     they need is in place (waitAgents lets them go on):
//   - the endpoints controller, until every pod reported ready, the fabric is wired and
//     up wrote which pods reported, with their process (reported.json): it takes them as
//     ready instead of probing every pod before it can report ready;
//   - the ingress of every node, before it reads the endpoints, until the controller is
//     let go on; it then waits for the controller's first endpoints itself (in the
//     endpoints upstream mode it routes to them from its first request);
//   - the LB, before its first health checks, which decide each node's state: until
//     the fabric is wired (the ingress agents bind their ports and answer /healthz before
//     they are held), or, when it checks LoadBalancer Services through the nodes' rules,
//     until kube-proxy, the controller and the ingress are ready;
//   - the pods (launchPods): an echo pod listens on the wildcard address of its namespace,
//     so it can start, bind and report before its link exists. Up waits for them once
//     the fabric is wired, and lets the controller take them as ready only then: a pod is
//     reported ready to anyone only once its address and routes are in place;
//   - the supervisor, once every agent is started (it adopts them from their pid records
//     and restarts none while up holds the lab's lock).
func (a *agentStart) startAll(_ context.Context, p *plan.Plan, o Options) error {
	a.started, a.begun = make(chan error, 1), time.Now()
	o.started = func(pid int, pr plan.Process) {
		a.yield.lower(pid)
		if startedHook != nil {
			startedHook(pid, pr)
		}
	}
	go func() { a.started <- a.launchAll(p, o) }()
	return nil
}

func (a *agentStart) launchAll(p *plan.Plan, o Options) error {
	var ingress, nodes, controller, outside, dnsPods, pods []plan.Process
	for _, pr := range p.Processes {
		switch {
		case pr.Role == "pod" && earlyPod(pr):
			dnsPods = append(dnsPods, pr)
		case pr.Role == "pod":
			pods = append(pods, pr)
		case pr.Role == "ingress":
			ingress = append(ingress, pr)
		case pr.Role == "lb":
			outside = append(outside, pr)
		case pr.Role == "controller":
			controller = append(controller, pr)
		default:
			nodes = append(nodes, pr)
		}
	}
	var err error
	if a.dnsPods, err = a.launch(p, o, dnsPods, false); err != nil {
		return err
	}
	if a.ctl, err = a.launch(p, o, controller, true); err != nil {
		return err
	}
	if a.ingress, err = a.launch(p, o, ingress, true); err != nil {
		return err
	}
	if a.nodes, err = a.launch(p, o, nodes, false); err != nil {
		return err
	}
	if a.lb, err = a.launch(p, o, outside, true); err != nil {
		return err
	}
	a.pods, err = launchPods(p.Lab, pods, o, a.wired)
	a.waves = append(a.waves, a.pods)
	if err != nil {
		return err
	}
	a.sup, err = a.launch(p, o, []plan.Process{supervise.SupervisorProcess(p.Lab)}, false)
	return err
}

// earlyPod says whether a pod's process is started with the node agents rather than in
// the pods' wave: the cluster DNS pods, which run netlab-agent (its start-up, and reading
// the plan, cost several times an echo pod's) and have pid files of their own.
func earlyPod(pr plan.Process) bool {
	return pr.Role == "pod" && len(pr.Args) >= 2 && pr.Args[0] == "agent" && pr.Args[1] == "dns"
}

// waitAgents runs once the fabric is wired (links, routes, the hosts files): it waits for
// every agent startAll started to write READY on its readiness pipe, or names those that
// did not, letting the held ones go on as each may; the supervisor is waited for last
// (a.sup).
func (a *agentStart) waitAgents(ctx context.Context, p *plan.Plan, o Options) error {
	if err := a.join(); err != nil {
		return err
	}
	// The LB's checks of the ingress virtual services need the fabric and the ingress's
	// ports, which it binds (and answers /healthz on) before it is held: the LB goes on
	// now, and checks and applies its rules while the pods finish starting. The checks of
	// a LoadBalancer Service go through the nodes' rules: then it waits for them (below).
	if !lbChecksNodeRules(p) {
		a.lb.release()
	}
	deadline := time.Now().Add(o.ReadyTimeout)
	d := rundir.ForLab(p.Lab)
	t := time.Now()
	reported := rundir.Reported{Pods: map[string]rundir.ReportedPod{}}
	for _, w := range []*wave{a.pods, a.dnsPods} {
		if err := w.wait(ctx, p.Lab, o, deadline, reported.Pods); err != nil {
			return err
		}
	}
	// ms: waited here, once the fabric was wired, as before (bench-up.sh reads it);
	// launchedMs: since the pods began to start, beside the links.
	o.Log.Debug("pods ready", "pods", len(a.pods.agents), "ms", time.Since(t).Milliseconds(),
		"launchedMs", time.Since(a.begun).Milliseconds())
	if err := d.WriteReported(reported); err != nil {
		return err
	}
	// The ingress goes on with the controller and waits itself for the controller's first
	// endpoints, so that it starts serving while kube-proxy applies them.
	a.ctl.release()
	a.ingress.release()
	for _, w := range []*wave{a.nodes, a.ctl, a.ingress} {
		if err := w.wait(ctx, p.Lab, o, deadline, nil); err != nil {
			return err
		}
	}
	a.lb.release()
	if err := a.lb.wait(ctx, p.Lab, o, deadline, nil); err != nil {
		return err
	}
	// The controller read it before it reported ready.
	if err := os.Remove(d.Reported()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// lbChecksNodeRules says whether the LB health-checks a virtual service through the nodes'
// Service rules (a LoadBalancer Service's NodePort or healthCheckNodePort), not only the
// ingress's own port.
func lbChecksNodeRules(p *plan.Plan) bool {
	for _, v := range p.LB.VIPs {
		if v.Service != "" {
			return true
		}
	}
	return false
}

// A wave is agents started together, waited for together.
type wave struct {
	agents []waiting
	// waited and err: wait's result, which a second wait returns.
	waited bool
	err    error
}

type waiting struct {
	proc    plan.Process
	rec     supervise.Record
	done    <-chan error
	release func()
}

// release lets every held agent of the wave go on.
func (w *wave) release() {
	for _, a := range w.agents {
		if a.release != nil {
			a.release()
		}
	}
}

// startWave starts procs and waits for each to report ready.
func startWave(ctx context.Context, labName string, procs []plan.Process, o Options, deadline time.Time) error {
	w, err := launch(labName, procs, o, false)
	if err != nil {
		return err
	}
	return w.wait(ctx, labName, o, deadline, nil)
}

// launch starts procs, held (see supervise.StartHeld) when held is set. On an error the
// agents already started are in the wave, to be released.
func launch(labName string, procs []plan.Process, o Options, held bool) (*wave, error) {
	w := &wave{agents: make([]waiting, len(procs))}
	err := forEach(len(procs), func(i int) error {
		var err error
		a := waiting{proc: procs[i]}
		if held {
			a.rec, a.done, a.release, err = startHeldAgent(labName, procs[i], o.Binary)
		} else {
			a.rec, a.done, err = startAgent(labName, procs[i], o.Binary)
		}
		if o.started != nil && a.rec.PID > 0 {
			o.started(a.rec.PID, procs[i])
		}
		w.agents[i] = a
		return err
	})
	return w, err
}

// launchPods starts the pods' wave and records them all in one file (rundir's PodWave),
// not a pid file each: every agent that may look for them (the supervisor, the
// controller, down) reads it, and a pod's own pid file, written when it is started again,
// takes precedence. What was started is recorded also when a start failed, for the
// rollback.
//
// At most podsInFlight pods are started and not yet ready at a time. Each holds the read
// end of its readiness pipe open in this process until it reports, and every process
// started copies and then closes (at exec) every descriptor open here: with the whole
// wave in flight at 1000 pods that was a quarter of a second of CPU, growing with the
// square of the pods. Two CPUs are kept as busy by a few dozen pods starting at once as by
// a thousand. A pod slow to report holds its slot for at most a second.
//
// Only the first podsBeforeFabric pods start beside the links; the others wait until
// wired opens (nil: none wait), and are not started when it opens false (up failed).
func launchPods(labName string, procs []plan.Process, o Options, wired *gate) (*wave, error) {
	d := rundir.ForLab(labName)
	w := &wave{agents: make([]waiting, len(procs))}
	window := make(chan struct{}, podsInFlight)
	err := forEach(len(procs), func(i int) error {
		if wired != nil && i >= podsBeforeFabric && !wired.wait() {
			w.agents[i] = waiting{proc: procs[i]}
			return fmt.Errorf("pod %s not started: up failed before the fabric was wired", procs[i].Name)
		}
		slot := false
		select {
		case window <- struct{}{}:
			slot = true
		case <-time.After(time.Second):
		}
		free := func() {
			if slot {
				<-window
			}
		}
		a := waiting{proc: procs[i]}
		rec, done, err := supervise.StartUnrecorded(d, procs[i], o.Binary)
		a.rec = rec
		if o.started != nil && rec.PID > 0 {
			o.started(rec.PID, procs[i])
		}
		if err != nil {
			free()
			w.agents[i] = a
			return err
		}
		reported := make(chan error, 1)
		go func() {
			err := <-done
			free()
			reported <- err
		}()
		a.done = reported
		w.agents[i] = a
		return nil
	})
	recs := make(map[string]supervise.Record, len(procs))
	for _, a := range w.agents {
		if a.rec.PID > 0 {
			recs[a.proc.Name] = a.rec
		}
	}
	if werr := supervise.WriteWaveRecords(d, recs); werr != nil {
		err = errors.Join(err, fmt.Errorf("record the pods: %w", werr))
	}
	return w, err
}

// podsInFlight bounds the pods started and not yet ready (see launchPods).
var podsInFlight = max(32, 16*runtime.NumCPU())

// podsBeforeFabric bounds the pods started beside the links: every pod of a small lab (a
// 3×10 up's thirty), the first of a big one. Each new veth adds its device's sysfs
// entries under the sysfs tree's lock, which every process start takes to read (the Go
// runtime reads /sys/kernel/mm/transparent_hugepage at start): with a thousand pods
// starting beside them, niced and preempted while holding it, a 4×250 up's links took
// 15–25 s instead of 2 (an off-CPU profile: up's thread waiting in kernfs_add_one).
var podsBeforeFabric = 64

// A gate opens once, for good or not (newGate).
type gate struct {
	once sync.Once
	ch   chan struct{}
	ok   bool // written before ch closes, read after: the close orders them
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

// open opens the gate with ok; later calls change nothing.
func (g *gate) open(ok bool) {
	g.once.Do(func() {
		g.ok = ok
		close(g.ch)
	})
}

// wait waits until the gate opens and says how.
func (g *gate) wait() bool {
	<-g.ch
	return g.ok
}

// wait waits for each agent of the wave to report ready; with reported set, it notes
// there every agent that did, with its process. Once it returned, it returns the same.
func (wv *wave) wait(ctx context.Context, labName string, o Options, deadline time.Time,
	reported map[string]rundir.ReportedPod) error {
	if wv.waited {
		return wv.err
	}
	wv.err = wv.waitAll(ctx, labName, o, deadline, reported)
	wv.waited = ctx.Err() == nil
	return wv.err
}

func (wv *wave) waitAll(ctx context.Context, labName string, o Options, deadline time.Time,
	reported map[string]rundir.ReportedPod) error {
	ws := wv.agents
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var failed []string
	for i, w := range ws {
		select {
		case err := <-w.done:
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s %s: %v", w.proc.Role, w.proc.Name, err))
				continue
			}
			o.Log.Debug("agent ready", "role", w.proc.Role, "name", w.proc.Name)
			if reported != nil && w.rec.Start != "" {
				reported[w.proc.Name] = rundir.ReportedPod{PID: w.rec.PID, Start: w.rec.Start, At: time.Now().UTC()}
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			var names []string
			for _, rest := range ws[i:] {
				select {
				case err := <-rest.done:
					if err == nil {
						continue
					}
				default:
				}
				names = append(names, rest.proc.Role+" "+rest.proc.Name)
			}
			return fmt.Errorf("not ready after %s: %s (%s)", o.ReadyTimeout, strings.Join(names, ", "), logsHint(labName))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return fmt.Errorf("agents failed: %s (%s)", strings.Join(failed, "; "), logsHint(labName))
	}
	return nil
}

// StartAgent starts one agent detached inside its namespace, its output appended to its
// log file, and records it in its pid file (restart count kept). The returned channel
// yields nil once the agent reported ready, or an error if it exited first.
func StartAgent(lab string, pr plan.Process, binary string) (<-chan error, error) {
	_, done, err := startAgent(lab, pr, binary)
	return done, err
}

func startAgent(lab string, pr plan.Process, binary string) (supervise.Record, <-chan error, error) {
	restarts := 0
	if rec, err := supervise.ReadRecord(rundir.ForLab(lab), pr.Role, pr.Name); err == nil {
		restarts = rec.Restarts
	}
	return supervise.StartRecord(rundir.ForLab(lab), pr, binary, restarts)
}

func startHeldAgent(lab string, pr plan.Process, binary string) (supervise.Record, <-chan error, func(), error) {
	restarts := 0
	if rec, err := supervise.ReadRecord(rundir.ForLab(lab), pr.Role, pr.Name); err == nil {
		restarts = rec.Restarts
	}
	return supervise.StartHeld(rundir.ForLab(lab), pr, binary, restarts)
}
