package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// ChangeOptions configure a live change (apply, scale, rollout restart).
type ChangeOptions struct {
	// DryRun computes and returns the changes and changes nothing.
	DryRun bool
	// Binary is the netlab executable new agents run (default: this executable).
	Binary string
	// ReadyTimeout bounds each wait: new pods ready, the endpoints and every node's rules
	// following (default 30 s).
	ReadyTimeout time.Duration
	Log          *slog.Logger
}

func (o *ChangeOptions) defaults() error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.Binary == "" {
		b, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the netlab binary: %w", err)
		}
		o.Binary = b
	}
	return nil
}

// Apply brings the running lab to the plan next computes from the lab's current plan
// (planbuild.BuildFrom of edited files; next must not modify it): the changes are computed by plan.Compare, refused
// ones change nothing, and the rest is carried out by a change (see change.step).
func Apply(ctx context.Context, labName string, next func(cur *plan.Plan) (*plan.Plan, error), o ChangeOptions) (plan.Changes, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	c, err := beginChange(labName, o)
	if err != nil {
		return nil, err
	}
	defer c.end()
	o.Log.Debug("change begun", "lab", labName, "ms", time.Since(start).Milliseconds())
	nw, err := next(c.cur)
	if err != nil {
		return nil, err
	}
	changes, err := plan.Compare(c.cur, nw)
	o.Log.Debug("changes computed", "ms", time.Since(start).Milliseconds())
	if err != nil || o.DryRun {
		return changes, err
	}
	if err := c.step(ctx, nw); err != nil {
		return changes, err
	}
	return changes, c.finish()
}

// Scale sets a Deployment's replicas: new pods continue its name sequence, the highest
// indexes leave first (gracefully).
func Scale(ctx context.Context, labName, deployment string, replicas int32, o ChangeOptions) (plan.Changes, error) {
	return Apply(ctx, labName, func(running *plan.Plan) (*plan.Plan, error) {
		cur := running.Clone()
		d, ok := cur.DeploymentByName("", deployment)
		if !ok {
			return nil, fmt.Errorf("lab %s has no deployment %q", labName, deployment)
		}
		d.Replicas = replicas
		if _, _, err := cur.Reconcile(); err != nil {
			return nil, err
		}
		return cur, nil
	}, o)
}

// RolloutRestart replaces every pod of a Deployment one at a time: a new pod (the next
// name of the sequence) is ready and in its Services on every node before an old one
// starts terminating. It returns when the last old pod is gone. progress, when set, is
// told each step.
func RolloutRestart(ctx context.Context, labName, deployment string, o ChangeOptions, progress func(string)) error {
	if err := o.defaults(); err != nil {
		return err
	}
	if progress == nil {
		progress = func(string) {}
	}
	c, err := beginChange(labName, o)
	if err != nil {
		return err
	}
	defer c.end()
	d, ok := c.cur.DeploymentByName("", deployment)
	if !ok {
		return fmt.Errorf("lab %s has no deployment %q", labName, deployment)
	}
	template := fmt.Sprintf("%s-restarted-%d", strings.SplitN(d.Template, "-", 2)[0], time.Now().UnixNano())
	var old []plan.Pod
	for _, pod := range c.cur.Pods {
		if d.Current(pod) {
			old = append(old, pod)
		}
	}
	if o.DryRun {
		return nil
	}
	for _, gone := range old {
		next := c.cur.Clone()
		nd, _ := next.DeploymentByName(d.Namespace, d.Name)
		nd.Template, nd.Pod.Template = template, template
		pod, err := next.NewPod(nd) // the leaving pod still holds its name and address here
		if err != nil {
			return errors.Join(err, c.finish())
		}
		next.RemovePod(gone.Name)
		next.AddPod(pod)
		next.RecomputeEndpoints()
		if err := c.step(ctx, next); err != nil {
			return errors.Join(err, c.finish())
		}
		progress(fmt.Sprintf("pod %s ready, pod %s terminating", pod.Name, gone.Name))
	}
	if len(old) == 0 { // nothing to replace: the template alone changes
		next := c.cur.Clone()
		nd, _ := next.DeploymentByName(d.Namespace, d.Name)
		nd.Template, nd.Pod.Template = template, template
		if err := c.step(ctx, next); err != nil {
			return err
		}
	}
	return c.finish()
}

// change is one live change in progress; it holds the lab's lock from beginChange to end.
type change struct {
	lab  string
	o    ChangeOptions
	lk   *rundir.Lock
	cur  *plan.Plan // what the stored plan says
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
	// Clients and VIP addresses the change removes, once the pods are gone (finish).
	goneClients []plan.Client
	goneVIPs    []string
}

func beginChange(labName string, o ChangeOptions) (*change, error) {
	if err := plan.CheckLabName(labName); err != nil {
		return nil, err
	}
	lk, err := rundir.LockLab(labName)
	if err != nil {
		return nil, err
	}
	cur, err := LoadPlan(labName)
	if err != nil {
		lk.Unlock(false)
		return nil, err
	}
	c := &change{lab: labName, o: o, lk: lk, cur: cur}
	if err := c.leftovers(); err != nil {
		lk.Unlock(false)
		return nil, err
	}
	return c, nil
}

func (c *change) end() { c.lk.Unlock(false) }

// leftovers finishes what a change killed half-way left: pods it was terminating are
// removed, and namespaces of the lab the plan does not know (pods it was creating) go.
func (c *change) leftovers() error {
	known := map[string]bool{}
	for _, ns := range c.cur.Namespaces() {
		known[ns] = true
	}
	all, err := kernel.ListNetns(plan.NetnsName(c.lab, ""))
	if err != nil {
		return err
	}
	var orphans []string
	for _, ns := range all {
		if !known[ns] {
			orphans = append(orphans, ns)
		}
	}
	if len(orphans) > 0 {
		c.o.Log.Info("removing what an interrupted change left", "namespaces", orphans)
		if err := removeNamespaces(orphans, true, c.o.Log); err != nil {
			return err
		}
	}
	leaving := false
	for _, pod := range c.cur.Pods {
		if pod.Terminating {
			leaving = true
			c.terminate(pod, 0)
		}
	}
	if leaving {
		return c.finish()
	}
	return nil
}

// step takes the lab from c.cur to next: pods of next that are new are created, started
// and waited for (ready, in their Services' endpoints, and programmed on every node),
// with next's Services, Ingresses and LB; only then do the pods next no longer has start
// terminating (they stay in the plan, terminating, until finish). A failure before the
// terminations restores the lab as it was.
func (c *change) step(ctx context.Context, next *plan.Plan) (err error) {
	cur := c.cur
	var added, removed []plan.Pod
	for _, pod := range next.Pods {
		if _, ok := cur.PodByName(pod.Name); !ok {
			added = append(added, pod)
		}
	}
	mid := next // ours from here on
	for _, pod := range cur.Pods {
		if _, ok := next.PodByName(pod.Name); ok {
			continue
		}
		if !pod.Terminating {
			removed = append(removed, pod)
		}
		mid.AddPod(pod)
	}
	mid.RecomputeEndpoints()
	newClients := missingClients(cur, mid)
	newVIPs := missingVIPs(cur, mid)
	lbChanged := !equalJSON(cur.LB, mid.LB)

	defer func() {
		if err == nil {
			return
		}
		c.o.Log.Warn("live change failed, restoring the lab as it was", "lab", c.lab, "err", err)
		if rerr := c.restore(cur, mid, added, newClients, newVIPs, lbChanged); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore: %w", rerr))
		}
	}()

	// Kernel objects first: a crash leaves namespaces that down (or the next change) finds.
	if err := c.createObjects(mid, added, newClients, newVIPs); err != nil {
		return err
	}
	c.o.Log.Debug("kernel objects made", "pods", len(added), "clients", len(newClients), "vips", len(newVIPs))
	if err := c.writePlan(mid); err != nil {
		return err
	}
	c.o.Log.Debug("plan written")
	if !equalJSON(cur.Hosts, mid.Hosts) || !equalJSON(cur.ResolvConfs, mid.ResolvConfs) {
		if err := writeHosts(ctx, mid, Options{}); err != nil {
			return err
		}
	}
	var reloaded []string
	if ingressInputsChanged(cur, mid) {
		reloaded = c.reloadIngress(mid)
	}
	if err := c.startPods(ctx, mid, added, newClients); err != nil {
		return err
	}
	if lbChanged {
		if err := c.restartLB(ctx, mid); err != nil {
			return err
		}
	}
	if err := c.waitFollowed(ctx, mid, added, nil); err != nil {
		return err
	}
	if err := c.waitIngressLoaded(ctx, reloaded, c.o.ReadyTimeout); err != nil {
		return err
	}
	c.o.Log.Debug("endpoints, every node's rules and ingress follow")
	c.cur = mid
	c.goneClients = append(c.goneClients, missingClients(mid, cur)...)
	c.goneVIPs = append(c.goneVIPs, missingVIPs(mid, cur)...)

	if len(removed) == 0 {
		return nil
	}
	// From here on the change goes forward: endpoints of the leaving pods turn
	// terminating at once, then each pod gets its preStop, SIGTERM and grace period.
	for i := range mid.Pods {
		if slices.ContainsFunc(removed, func(r plan.Pod) bool { return r.Name == mid.Pods[i].Name }) {
			mid.Pods[i].Terminating = true
			if err := markLeaving(c.lab, mid.Pods[i].Name); err != nil {
				c.o.Log.Warn("mark pod leaving", "pod", mid.Pods[i].Name, "err", err)
			}
		}
	}
	if werr := c.writePlan(mid); werr != nil {
		c.o.Log.Error("write plan", "err", werr)
	}
	if werr := c.waitFollowed(ctx, mid, nil, removed); werr != nil {
		c.o.Log.Warn("endpoints of leaving pods not yet terminating everywhere", "err", werr)
	}
	for _, pod := range removed {
		c.terminate(pod, time.Duration(pod.GraceSeconds)*time.Second)
	}
	return nil
}

// finish waits for every terminating pod to be gone, removes what was theirs and writes
// the plan without them; clients and VIPs the plan no longer has are removed too.
func (c *change) finish() error {
	c.wg.Wait()
	leaving := slices.ContainsFunc(c.cur.Pods, func(p plan.Pod) bool { return p.Terminating })
	if !leaving && len(c.goneClients) == 0 && len(c.goneVIPs) == 0 {
		return nil // the stored plan is already the final one
	}
	final := c.cur.Clone()
	var gone []plan.Pod
	for _, pod := range c.cur.Pods {
		if pod.Terminating {
			gone = append(gone, pod)
			final.RemovePod(pod.Name)
		}
	}
	final.RecomputeEndpoints()
	var errs []error
	c.mu.Lock()
	errs = append(errs, c.errs...)
	c.errs = nil
	c.mu.Unlock()
	h := kernel.NewHandles()
	defer h.Close()
	var nss []string
	for _, pod := range gone {
		nss = append(nss, pod.Netns)
	}
	for _, cl := range c.goneClients {
		nss = append(nss, cl.Netns)
		errs = append(errs, os.RemoveAll(rundir.EtcNetnsDir(cl.Netns)))
	}
	errs = append(errs, removeNamespaces(nss, true, c.o.Log))
	for _, pod := range gone {
		if node, ok := planNode(c.cur, pod.Node); ok {
			errs = append(errs, h.DelNeighbor(node.Netns, plan.BridgeCNI, plan.Addr(pod.IP)))
		}
		os.Remove(rundir.ForLab(c.lab).Leaving(pod.Name))
		errs = append(errs, os.RemoveAll(rundir.EtcNetnsDir(pod.Netns)))
	}
	for _, vip := range c.goneVIPs {
		errs = append(errs, h.DelAddr(c.cur.LB.Netns, plan.LBWanIface, vip))
	}
	c.goneClients, c.goneVIPs = nil, nil
	errs = append(errs, c.writePlan(final))
	c.cur = final
	return errors.Join(errs...)
}

// terminate ends a pod as the kubelet does, in the background: preStop (a sleep), then
// SIGTERM, then SIGKILL once grace (counted from the start) is over.
func (c *change) terminate(pod plan.Pod, grace time.Duration) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		start := time.Now()
		if d := time.Duration(pod.PreStopSleep) * time.Second; d > 0 && grace > 0 {
			c.o.Log.Info("preStop", "pod", pod.Name, "sleep", min(d, grace).String())
			time.Sleep(min(d, grace))
		}
		pids := kernel.PIDsIn([]string{pod.Netns})[pod.Netns]
		c.o.Log.Info("terminating pod", "pod", pod.Name, "pids", pids, "grace", grace.String())
		kernel.Terminate(pids, max(grace-time.Since(start), 0))
	}()
}

func markLeaving(labName, pod string) error {
	path := rundir.ForLab(labName).Leaving(pod)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o600)
}

// createObjects makes the namespaces, links, routes and neighbour entries of new pods and
// clients, and the LB's new VIP addresses.
func (c *change) createObjects(p *plan.Plan, pods []plan.Pod, clients []plan.Client, vips []string) error {
	var nss []string
	for _, pod := range pods {
		nss = append(nss, pod.Netns)
	}
	for _, cl := range clients {
		nss = append(nss, cl.Netns)
	}
	if err := forEach(len(nss), func(i int) error { return kernel.CreateNetns(nss[i]) }); err != nil {
		return err
	}
	mine := map[string]bool{}
	for _, ns := range nss {
		mine[ns] = true
	}
	h := kernel.NewHandles()
	defer h.Close()
	for _, ns := range nss {
		if err := h.LoUp(ns); err != nil {
			return err
		}
	}
	for _, l := range p.Links {
		if !mine[l.A.Netns] {
			continue
		}
		a := kernel.VethEnd{NS: l.A.Netns, Name: l.A.Name, MAC: l.A.MAC, MTU: l.A.MTU, Addrs: l.A.Addrs, Master: l.A.Master}
		b := kernel.VethEnd{NS: l.B.Netns, Name: l.B.Name, Addrs: l.B.Addrs, Master: l.B.Master, Hairpin: l.B.Master == plan.BridgeCNI}
		if err := h.AddVeth(a, b); err != nil {
			return err
		}
	}
	for _, r := range p.Routes {
		if mine[r.Netns] {
			if err := h.AddRouteOnlink(r.Netns, r.Dst, r.Via, r.Dev, r.Onlink); err != nil {
				return err
			}
		}
	}
	ips := map[string]bool{}
	for _, pod := range pods {
		ips[plan.Addr(pod.IP)] = true
	}
	for _, n := range p.Neighbors {
		if mine[n.Netns] || (n.Dev == plan.BridgeCNI && ips[n.IP]) {
			if err := h.AddNeighbor(n.Netns, n.Dev, n.IP, n.MAC); err != nil {
				return err
			}
		}
	}
	for _, s := range p.Sysctls {
		if mine[s.Netns] {
			if err := kernel.SetSysctl(s.Netns, s.Key, s.Value); err != nil {
				return err
			}
		}
	}
	for _, vip := range vips {
		if err := h.AddAddr(p.LB.Netns, plan.LBWanIface, vip); err != nil {
			return err
		}
	}
	return nil
}

// startPods starts the agents of new pods and waits for each to report ready and to
// answer its readiness probe from its node.
func (c *change) startPods(ctx context.Context, p *plan.Plan, pods []plan.Pod, _ []plan.Client) error {
	var procs []plan.Process
	for _, pr := range p.Processes {
		if pr.Role == "pod" && slices.ContainsFunc(pods, func(x plan.Pod) bool { return x.Name == pr.Name }) {
			procs = append(procs, pr)
		}
	}
	if len(procs) == 0 {
		return nil
	}
	o := Options{Binary: c.o.Binary, ReadyTimeout: c.o.ReadyTimeout, Log: c.o.Log}
	if err := startWave(ctx, c.lab, procs, o, time.Now().Add(c.o.ReadyTimeout)); err != nil {
		return err
	}
	return forEach(len(pods), func(i int) error {
		var last error
		ok, err := pollUntil(ctx, time.Now().Add(c.o.ReadyTimeout), 50*time.Millisecond, func() bool {
			last = rundir.Probe(ctx, p, pods[i])
			return last == nil
		})
		if err == nil && !ok {
			err = last
		}
		if err != nil {
			return fmt.Errorf("pod %s not ready: %w", pods[i].Name, err)
		}
		return nil
	})
}

// restartLB replaces the LB agent so that it reads the new virtual services, scheduler,
// persistence and health checks.
func (c *change) restartLB(ctx context.Context, p *plan.Plan) error {
	var pr *plan.Process
	for i := range p.Processes {
		if p.Processes[i].Role == "lb" {
			pr = &p.Processes[i]
		}
	}
	var pids []int
	for _, pid := range kernel.PIDsIn([]string{p.LB.Netns})[p.LB.Netns] {
		if argv := kernel.Cmdline(pid); len(argv) > 2 && argv[1] == "agent" && argv[2] == "lb" {
			pids = append(pids, pid)
		}
	}
	kernel.Terminate(pids, 2*time.Second)
	if pr == nil {
		return nil
	}
	o := Options{Binary: c.o.Binary, ReadyTimeout: c.o.ReadyTimeout, Log: c.o.Log}
	return startWave(ctx, c.lab, []plan.Process{*pr}, o, time.Now().Add(c.o.ReadyTimeout))
}

// reloadIngress tells every node's ingress agent to read the plan again (SIGHUP), and
// returns the nodes it told.
func (c *change) reloadIngress(p *plan.Plan) []string {
	var told []string
	for _, n := range p.Nodes {
		for _, pid := range kernel.PIDsIn([]string{n.Netns})[n.Netns] {
			// The node's agent only: it tells its workers (--worker) itself.
			if IsAgent(kernel.Cmdline(pid), "ingress") {
				if syscall.Kill(pid, syscall.SIGHUP) == nil && !slices.Contains(told, n.Name) {
					told = append(told, n.Name)
				}
			}
		}
	}
	return told
}

// waitIngressLoaded waits, at most within, until the ingress of every node in nodes
// reports that it routes by the plan file as it is now (the one this change, or its
// restore, wrote): a request sent when the change returns is routed by those Ingresses.
// A SIGHUP only asks; the agent loads when it gets to it.
func (c *change) waitIngressLoaded(ctx context.Context, nodes []string, within time.Duration) error {
	if len(nodes) == 0 {
		return nil
	}
	dir := rundir.ForLab(c.lab)
	want := rundir.FileStamp(dir.Plan()).String()
	deadline := time.Now().Add(within)
	for _, n := range nodes {
		var st *rundir.IngressLoaded
		ok, err := pollUntil(ctx, deadline, 10*time.Millisecond, func() bool {
			var err error
			st, err = dir.ReadIngressLoaded(n)
			return err == nil && st.Plan == want
		})
		if err != nil {
			return err
		}
		if ok && st.Error != "" {
			return fmt.Errorf("the ingress on %s could not load the new plan (%s): %s", n, want, st.Error)
		}
		if !ok {
			last := "nothing"
			if st != nil {
				last = fmt.Sprintf("plan %s at %s", st.Plan, st.At.Format(time.RFC3339Nano))
			}
			return fmt.Errorf("the ingress on %s did not load the plan (%s) within %s; it last loaded %s", n, want, within, last)
		}
	}
	return nil
}

// waitFollowed waits until the controller's endpoints hold every Service port of p, with
// the endpoints of the ready pods ready and those of the leaving ones terminating, until
// every node's kube-proxy has applied that generation, and until every ready DNS pod
// answers from it and from the plan as it is now.
func (c *change) waitFollowed(ctx context.Context, p *plan.Plan, ready, leaving []plan.Pod) error {
	want := p.ServicePorts(nil)
	isReady := map[string]bool{}
	for _, pod := range ready {
		isReady[pod.Name] = true
	}
	isLeaving := map[string]bool{}
	for _, pod := range leaving {
		isLeaving[pod.Name] = true
	}
	followed := func(ef *kubeproxy.EndpointsFile) bool {
		have := map[string]kubeproxy.ServicePort{}
		for _, sp := range ef.Ports {
			have[sp.ServicePortName()+"/"+sp.Protocol] = sp
		}
		for _, sp := range want {
			got, ok := have[sp.ServicePortName()+"/"+sp.Protocol]
			if !ok || got.ClusterIP != sp.ClusterIP || got.NodePort != sp.NodePort || len(got.Endpoints) != len(sp.Endpoints) {
				return false
			}
			for _, ep := range got.Endpoints {
				if (isReady[ep.Pod] && !ep.Ready) || (isLeaving[ep.Pod] && !ep.Terminating) {
					return false
				}
			}
		}
		return len(ef.Ports) == len(want)
	}
	deadline := time.Now().Add(c.o.ReadyTimeout)
	dir := rundir.ForLab(c.lab)
	var gen int64
	ok, err := pollUntil(ctx, deadline, 20*time.Millisecond, func() bool {
		ef, err := dir.ReadEndpoints()
		if err == nil && followed(ef) {
			gen = ef.Generation
			return true
		}
		return false
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the endpoints controller did not follow the change within %s", c.o.ReadyTimeout)
	}
	for _, n := range p.Nodes {
		ok, err := pollUntil(ctx, deadline, 20*time.Millisecond, func() bool {
			st, err := dir.ReadSyncStatus(n.Name)
			return err == nil && st.Generation >= gen
		})
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("kube-proxy on %s did not apply endpoints generation %d within %s", n.Name, gen, c.o.ReadyTimeout)
		}
	}
	return waitDNSLoaded(ctx, dir, p, gen, deadline)
}

// waitDNSLoaded waits until every DNS pod of p that the endpoints count ready reports
// that its records come from the plan file as it is now and from endpoints generation gen
// or a later one: a name looked up when the change returns is answered by the Services it
// made. A DNS pod that is not ready (or leaving) is out of kube-dns's endpoints, and not
// waited for.
func waitDNSLoaded(ctx context.Context, dir rundir.Dir, p *plan.Plan, gen int64, deadline time.Time) error {
	if p.DNS == nil {
		return nil
	}
	want := rundir.FileStamp(dir.Plan()).String()
	for _, pod := range p.Pods {
		if pod.Agent != plan.DNSAgent || pod.Terminating {
			continue
		}
		last := "nothing"
		ok, err := pollUntil(ctx, deadline, 10*time.Millisecond, func() bool {
			if ef, err := dir.ReadEndpoints(); err == nil && !ef.PodReady[pod.Name] {
				return true
			}
			st, err := dir.ReadDNSLoaded(pod.Name)
			if err != nil {
				return false
			}
			last = fmt.Sprintf("plan %s with endpoints generation %d at %s", st.Plan, st.Generation, st.At.Format(time.RFC3339Nano))
			return st.Plan == want && st.Generation >= gen
		})
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the DNS pod %s did not load the plan (%s) with endpoints generation %d in time; it last loaded %s",
				pod.Name, want, gen, last)
		}
	}
	return nil
}

// pollUntil looks at cond every interval until it holds (true) or deadline passes (false,
// after a last look); the error is ctx's when it ends first.
func pollUntil(ctx context.Context, deadline time.Time, every time.Duration, cond func() bool) (bool, error) {
	for {
		if cond() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(every):
		}
	}
}

// restoreWait bounds restore's wait for the ingress agents to load the old plan again.
const restoreWait = 10 * time.Second

// restore takes the lab back to cur after a failed step: new pods and clients go, new
// VIPs are removed, and the old plan, hosts files, ingress and LB come back.
func (c *change) restore(cur, mid *plan.Plan, added []plan.Pod, clients []plan.Client, vips []string, lbChanged bool) error {
	var errs []error
	var nss []string
	for _, pod := range added {
		nss = append(nss, pod.Netns)
	}
	for _, cl := range clients {
		nss = append(nss, cl.Netns)
		errs = append(errs, os.RemoveAll(rundir.EtcNetnsDir(cl.Netns)))
	}
	errs = append(errs, removeNamespaces(nss, true, c.o.Log))
	h := kernel.NewHandles()
	defer h.Close()
	for _, pod := range added {
		if node, ok := planNode(cur, pod.Node); ok {
			errs = append(errs, h.DelNeighbor(node.Netns, plan.BridgeCNI, plan.Addr(pod.IP)))
		}
	}
	for _, vip := range vips {
		errs = append(errs, h.DelAddr(cur.LB.Netns, plan.LBWanIface, vip))
	}
	errs = append(errs, c.writePlan(cur))
	for _, pod := range added {
		errs = append(errs, os.RemoveAll(rundir.EtcNetnsDir(pod.Netns)))
	}
	if !equalJSON(cur.Hosts, mid.Hosts) || !equalJSON(cur.ResolvConfs, mid.ResolvConfs) {
		errs = append(errs, writeHosts(context.Background(), cur, Options{}))
	}
	if ingressInputsChanged(cur, mid) {
		// The change fails "with the lab as it was" only once every ingress routes by the
		// old plan again; an ingress that could not load the new one may not load this one
		// either, hence a shorter bound than the change's.
		told := c.reloadIngress(cur)
		errs = append(errs, c.waitIngressLoaded(context.Background(), told, min(c.o.ReadyTimeout, restoreWait)))
	}
	if lbChanged {
		errs = append(errs, c.restartLB(context.Background(), cur))
	}
	c.cur = cur
	return errors.Join(errs...)
}

func (c *change) writePlan(p *plan.Plan) error { return rundir.ForLab(c.lab).WritePlan(p) }

func planNode(p *plan.Plan, name string) (plan.Node, bool) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return plan.Node{}, false
}

// missingClients lists the clients of b that a does not have.
func missingClients(a, b *plan.Plan) []plan.Client {
	var out []plan.Client
	for _, cl := range b.Clients {
		if !slices.ContainsFunc(a.Clients, func(x plan.Client) bool { return x.Name == cl.Name }) {
			out = append(out, cl)
		}
	}
	return out
}

// missingVIPs lists the VIP addresses (CIDR form) on the LB's wan side that b has and a
// has not.
func missingVIPs(a, b *plan.Plan) []string {
	have := map[string]bool{}
	for _, l := range a.Links {
		if l.A.Netns == a.LB.Netns && l.A.Name == plan.LBWanIface {
			for _, ad := range l.A.Addrs {
				have[ad] = true
			}
		}
	}
	var out []string
	for _, l := range b.Links {
		if l.A.Netns == b.LB.Netns && l.A.Name == plan.LBWanIface {
			for _, ad := range l.A.Addrs {
				if !have[ad] {
					out = append(out, ad)
				}
			}
		}
	}
	return out
}

// ingressInputsChanged: the ingress agents read Ingresses, Services (to resolve
// backends) and TLS material from the plan.
func ingressInputsChanged(a, b *plan.Plan) bool {
	strip := func(p *plan.Plan) []plan.Service {
		out := make([]plan.Service, len(p.Services))
		for i, s := range p.Services {
			s.Endpoints = nil
			out[i] = s
		}
		return out
	}
	return !equalJSON(a.Ingresses, b.Ingresses) || !equalJSON(a.TLS, b.TLS) || !equalJSON(strip(a), strip(b)) ||
		!equalJSON(a.Ingress, b.Ingress)
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
