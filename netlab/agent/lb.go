package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// coalesceWindow is how long the lb agent waits for more health transitions before it
// applies the rules once for all of them.
const coalesceWindow = 10 * time.Millisecond

// firstRoundWindow is coalesceWindow for the first round of checks (see RunLB's loop).
const firstRoundWindow = 100 * time.Millisecond

// LBConfig configures the lb agent, which lives in the LB namespace.
type LBConfig struct {
	Plan *plan.Plan
	// StatePath is where the agent publishes lb.State for status and `netlab lb`.
	StatePath string
	// ReadyWithin bounds how long the agent waits for its real servers before it reports
	// ready anyway (a LoadBalancer Service whose nodes have no local endpoint never gets
	// a healthy real server). Zero: interval × (rise+1) + 3 s.
	ReadyWithin time.Duration
	// Save and Restore reach iptables in the agent's namespace; nil runs iptables-save and
	// iptables-restore --noflush here (tests replace them).
	Save    func(ctx context.Context) ([]byte, error)
	Restore func(ctx context.Context, input []byte) error
	// Dial is the health checks' dialer; nil dials from this namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// LBBackendProbe ties one real server of one virtual service to the check that decides
// its health.
type LBBackendProbe struct {
	Service int // index into the services
	Backend int // index into that service's backends
	Probe   lb.Probe
}

// LBServices turns the plan's virtual services into lb ones (every node a real server,
// all down) and says which probe decides each backend: the node's healthCheckNodePort
// (HTTP) for externalTrafficPolicy: Local Services, otherwise the Lab's health check
// against the real server's own port (https for the ingress's TLS port when the check
// type is http).
func LBServices(p *plan.Plan) ([]lb.VirtualService, []LBBackendProbe, error) {
	hc := p.LB.HealthCheck
	var vss []lb.VirtualService
	var probes []LBBackendProbe
	for i, v := range p.LB.VIPs {
		pers, err := parseDur(v.Persistence)
		if err != nil {
			return nil, nil, fmt.Errorf("virtual service %s: persistence: %w", v.Name, err)
		}
		vs := lb.VirtualService{Name: v.Name, VIP: v.IP, Port: int(v.Port), Protocol: v.Protocol,
			Scheduler: v.Scheduler, Persistence: pers, SourceRanges: v.SourceRanges}
		for j, n := range p.Nodes {
			ip := plan.Addr(n.IP)
			vs.Backends = append(vs.Backends, lb.Backend{Name: n.Name, IP: ip, Port: int(v.NodePort), Weight: n.Weight})
			pr := lb.Probe{Type: lb.CheckTCP, Addr: hostPort(ip, int(v.NodePort))}
			switch {
			case v.CheckPort != 0:
				path := v.CheckPath
				if path == "" {
					path = "/healthz"
				}
				pr = lb.Probe{Type: lb.CheckHTTP, Addr: hostPort(ip, int(v.CheckPort)), Path: path}
			case v.Service == "" && hc.Ingress == "http" && p.Ingress.MetricsPort > 0:
				// keepalived's HTTP_GET of the ingress's health path: a hung proxy
				// fails it, where the kernel would still complete a TCP handshake.
				pr = lb.Probe{Type: lb.CheckHTTP, Addr: hostPort(ip, p.Ingress.MetricsPort), Path: "/healthz"}
			case hc.Type == lb.CheckHTTP && v.Protocol != lb.ProtoUDP:
				pr.Type, pr.Path = lb.CheckHTTP, hc.Path
				if v.Service == "" && strings.HasSuffix(v.Name, "https") {
					pr.Type = lb.CheckHTTPS
				}
			case v.Protocol == lb.ProtoUDP:
				// A TCP connect cannot probe a UDP port: the node itself is checked (its
				// ingress's metrics port), as cloud LBs check node health for UDP Services.
				pr.Addr = hostPort(ip, p.Ingress.MetricsPort)
			}
			probes = append(probes, LBBackendProbe{Service: i, Backend: j, Probe: pr})
		}
		vss = append(vss, vs)
	}
	if err := lb.Validate(vss); err != nil {
		return nil, nil, fmt.Errorf("load balancer plan: %w", err)
	}
	return vss, probes, nil
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

func parseDur(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// lbAgent is the running agent's state; mu guards everything below it.
type lbAgent struct {
	cfg     LBConfig
	log     *slog.Logger
	checker *lb.Checker
	probes  []LBBackendProbe

	mu      sync.Mutex
	vss     []lb.VirtualService
	state   lb.State
	lastErr map[string]string // probe key -> last failure
	// healthy is every backend's health as last applied, by lb.BackendKey: a backend
	// that leaves gets its conntrack entries expired once the rules no longer pick it.
	healthy map[string]bool
	// ExpireConntrack deletes a leaving backend's entries (nil: in this namespace).
	expire func(lb.VirtualService, lb.Backend) (uint, error)
	// presaved, when set, yields the namespace's rules for the first apply: read after the
	// start's apply, while the first checks run; nil in a fresh namespace (see RunLB).
	presaved chan savedRules
	// unapplied is the start's input (the WAN filter) when the LB's namespace was new:
	// it goes with the first apply (see RunLB).
	unapplied []byte
}

type savedRules struct {
	b   []byte
	err error
}

// lbStartGrace is how long the LB's first checks wait for a real server that does not
// answer yet: up lets the LB go on once the fabric is wired, while the ingress agents,
// started beside the links, may still be binding their ports (they bind them before they
// are let go on). A real server down at start is reported down this much later.
const lbStartGrace = time.Second

// RunLB health-checks every real server and reprograms the LB namespace with one
// iptables-restore --noflush on each health transition, until ctx ends.
func RunLB(ctx context.Context, cfg LBConfig, log *slog.Logger) error {
	if cfg.Plan == nil {
		return errors.New("lb agent: no plan")
	}
	vss, probes, err := LBServices(cfg.Plan)
	if err != nil {
		return err
	}
	hc := cfg.Plan.LB.HealthCheck
	interval, err1 := parseDur(hc.Interval)
	timeout, err2 := parseDur(hc.Timeout)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("lb agent: health check: %w", err)
	}
	if interval <= 0 {
		interval = time.Second
	}
	if timeout <= 0 || timeout > interval {
		timeout = interval
	}
	// A Save of the caller's (a test's) is always used; the default one is not needed in a
	// namespace with no table yet (below).
	defaultSave := cfg.Save == nil
	if cfg.Save == nil {
		cfg.Save = iptablesSave
	}
	if cfg.Restore == nil {
		cfg.Restore = iptablesRestore
	}
	if cfg.ReadyWithin == 0 {
		cfg.ReadyWithin = interval*time.Duration(max(hc.Rise, 1)+1) + 3*time.Second
	}
	a := &lbAgent{
		cfg: cfg, log: log, probes: probes, vss: vss, lastErr: map[string]string{},
		healthy: map[string]bool{}, expire: expireConntrack,
		checker: &lb.Checker{
			Config: lb.CheckConfig{Interval: interval, Timeout: timeout, Rise: hc.Rise, Fall: hc.Fall, FirstDecides: true,
				StartGrace: lbStartGrace},
			Dial: cfg.Dial, Logger: log,
		},
		state: lb.State{Inhibit: hc.Inhibit},
	}
	log.Info("lb agent starting", "lab", cfg.Plan.Lab, "services", len(vss), "interval", interval,
		"timeout", timeout, "rise", hc.Rise, "fall", hc.Fall, "inhibit", hc.Inhibit)
	// One read of the namespace's rules serves the first apply and the WAN filter's: the
	// first apply does not touch the filter's jump, which is all the filter looks for. A
	// namespace with no table yet (up's, new) has nothing to read: no iptables-save.
	// fresh: that, and held by up (the hold pipe, read before WaitRelease unsets it): no
	// client runs before up returns. An LB started any other way (the supervisor's
	// restart, after someone flushed the namespace's tables) writes the start's rules at
	// once, so that the WAN filter is back before its first checks.
	fresh := defaultSave && ready.HoldFD() >= 0 && kernel.IPTablesEmptyHere()
	var saved []byte
	if !fresh {
		var err error
		if saved, err = a.cfg.Save(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped (down, a rollback) while it read: not a failure
			}
			return fmt.Errorf("lb agent: read rules: %w", err)
		}
	}
	a.presaved = make(chan savedRules, 1)
	a.presaved <- savedRules{b: saved}
	if fresh {
		// A new namespace held by up has no rule to keep and none to read: the rules at
		// start, which would route the VIPs to no real server yet, and the WAN filter go
		// with the first checks' verdicts, in one restore from the rules as they are
		// (none), before the agent reports ready: two process starts (a restore, then a
		// read of its result) fewer in every up. The VIPs get no rule until then: the lab
		// is not up.
		a.unapplied = a.wanFilterInput(nil)
	} else {
		// The rules at start and what a cloud security group would let in from the
		// clients (and nothing else): one restore.
		if err := a.applyWith(ctx, "start", a.wanFilterInput(saved)); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while it applied
			}
			return err
		}
		// The first checks' verdicts are applied against the rules as they are now: read
		// them while the first checks run (the LB is the only writer of its namespace's
		// rules, and its last write was above), not after them.
		a.presaved = make(chan savedRules, 1)
		go func() {
			b, err := a.cfg.Save(ctx)
			a.presaved <- savedRules{b, err}
		}()
	}

	// Started beside the node agents, the LB waits here until up lets it go on, so that its
	// first checks, which decide each real server's state, find the nodes serving.
	if err := ready.WaitRelease(ctx); err != nil {
		return nil
	}

	var unique []lb.Probe
	seen := map[string]bool{}
	for _, bp := range probes {
		if !seen[bp.Probe.Key()] {
			seen[bp.Probe.Key()] = true
			unique = append(unique, bp.Probe)
		}
	}
	events := make(chan lb.Transition)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	checkDone := make(chan error, 1)
	if len(unique) > 0 {
		go func() { checkDone <- a.checker.Run(runCtx, unique, events) }()
	}

	readyBy := time.NewTimer(cfg.ReadyWithin)
	defer readyBy.Stop()
	publish := time.NewTicker(time.Second)
	defer publish.Stop()
	ready := false
	decided := map[string]bool{} // the probes that reported their first result
	markReady := func(why string) error {
		if !ready && a.unapplied != nil {
			// Ready with no apply yet (no real server to check, or none decided in
			// time): the start's rules first.
			if err := a.apply(ctx, "start"); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if !ready {
			ready = true
			log.Info("lb agent ready", "why", why)
			NotifyReady()
		}
		return nil
	}
	if len(unique) == 0 {
		if err := markReady("no real servers to check"); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			cancel()
			if len(unique) > 0 {
				<-checkDone
			}
			return nil
		case err := <-checkDone:
			if ctx.Err() != nil {
				return nil // the checks ended with the stop (both were ready at once)
			}
			if err == nil {
				err = errors.New("no error")
			}
			return fmt.Errorf("lb agent: health checks stopped: %w", err)
		case t := <-events:
			first := len(decided) < len(unique)
			a.transition(t)
			decided[t.Probe.Key()] = true
			why := "health " + t.Probe.Key()
			// Transitions that come together (a failed node takes all its probes down at
			// once; at start every probe decides) are applied in one restore; at start, as
			// soon as every probe has decided, waiting for the others up to
			// firstRoundWindow after the first (the healthy ones decide within a few ms of
			// each other, a busy machine spreads them over tens; one restore for them, not
			// one for those within 10 ms and one per straggler). A real server that does
			// not answer decides only after the start grace: the others are not held up
			// for it.
			window := coalesceWindow
			if first {
				window = firstRoundWindow
			}
			coalesce := time.NewTimer(window)
		drain:
			for !first || len(decided) < len(unique) {
				select {
				case t2 := <-events:
					a.transition(t2)
					decided[t2.Probe.Key()] = true
					why += ", " + t2.Probe.Key()
				case <-coalesce.C:
					break drain
				case <-ctx.Done():
					break drain
				}
			}
			coalesce.Stop()
			if a.unapplied != nil {
				why = "start, " + why
			}
			if err := a.apply(ctx, why); err != nil {
				if a.unapplied != nil {
					if ctx.Err() != nil {
						return nil // stopped (down, a rollback): not the apply's failure
					}
					return err // the start's rules, as the start's own apply
				}
				log.Error("apply rules", "err", err)
			}
			if a.allReady() {
				if err := markReady("real servers healthy"); err != nil {
					return err
				}
			}
		case <-readyBy.C:
			if !ready {
				log.Warn("not every real server is healthy; reporting ready anyway", "after", cfg.ReadyWithin)
				if err := markReady("timeout"); err != nil {
					return err
				}
			}
		case <-publish.C:
			a.publish()
			// A failed apply is retried each second until it succeeds.
			a.mu.Lock()
			failed := a.state.LastError != ""
			a.mu.Unlock()
			if failed {
				if err := a.apply(ctx, "retry after a failed apply"); err != nil {
					log.Error("apply rules", "err", err)
				}
			}
		}
	}
}

// transition applies a probe's new state to every backend it decides.
func (a *lbAgent) transition(t lb.Transition) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.Err != "" {
		a.lastErr[t.Probe.Key()] = t.Err
	}
	for _, bp := range a.probes {
		if bp.Probe.Key() != t.Probe.Key() {
			continue
		}
		vs := &a.vss[bp.Service]
		b := &vs.Backends[bp.Backend]
		b.Healthy = t.Up
		state, action := "down", "removed from rotation"
		if t.Up {
			state, action = "up", "back in rotation"
		} else if a.state.Inhibit {
			action = "weight 0 (inhibit)"
		}
		a.log.Info("real server "+state, "service", vs.Name, "vip", fmt.Sprintf("%s:%d", vs.VIP, vs.Port),
			"node", b.Name, "real", b.Addr(), "check", t.Probe.Key(), "at", t.At.Format(time.RFC3339Nano),
			"action", action, "err", t.Err)
	}
}

// allReady: every real server checked on its own port is up, and every service checked
// through healthCheckNodePorts has at least one up.
func (a *lbAgent) allReady() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	someUp := map[int]bool{}
	etpLocal := map[int]bool{}
	for _, bp := range a.probes {
		v := a.cfg.Plan.LB.VIPs[bp.Service]
		up := a.vss[bp.Service].Backends[bp.Backend].Healthy
		if v.CheckPort != 0 {
			etpLocal[bp.Service] = true
			someUp[bp.Service] = someUp[bp.Service] || up
			continue
		}
		if !up {
			return false
		}
	}
	for s := range etpLocal {
		if !someUp[s] {
			return false
		}
	}
	return true
}

// apply renders the current services against what the namespace holds and restores the
// result in one transaction, then publishes the state.
// The start's input, when it waits for the first apply (unapplied), goes with it.
func (a *lbAgent) apply(ctx context.Context, why string) error {
	if err := a.applyWith(ctx, why, a.unapplied); err != nil {
		return err
	}
	a.unapplied = nil
	return nil
}

// applyWith is apply with more input given to the same restore (the WAN filter's, at
// start): one process; each table's COMMIT still commits on its own.
func (a *lbAgent) applyWith(ctx context.Context, why string, more []byte) error {
	a.mu.Lock()
	vss := make([]lb.VirtualService, len(a.vss))
	for i, vs := range a.vss {
		vs.Backends = append([]lb.Backend(nil), vs.Backends...)
		vss[i] = vs
	}
	a.mu.Unlock()

	start := time.Now()
	var pre *savedRules
	if a.presaved != nil {
		r := <-a.presaved
		a.presaved, pre = nil, &r
	}
	try := func() error {
		var saved []byte
		var err error
		if pre != nil && pre.err == nil {
			saved = pre.b
		} else if saved, err = a.cfg.Save(ctx); err != nil {
			return fmt.Errorf("read rules: %w", err)
		}
		st, err := lb.ParseSave(saved)
		if err != nil {
			return err
		}
		input, err := lb.RenderApply(vss, st)
		if err != nil {
			return err
		}
		input = append(input, more...)
		if err := a.cfg.Restore(ctx, input); err != nil {
			return fmt.Errorf("apply rules: %w", err)
		}
		return nil
	}
	err := try()
	if err != nil && pre != nil && pre.err == nil {
		// The rules read early did not hold: read them again.
		pre = nil
		err = try()
	}
	a.mu.Lock()
	a.state.Applies++
	a.state.LastApply = time.Now()
	a.state.LastError = ""
	if err != nil {
		a.state.LastError = err.Error()
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	usable := 0
	for _, vs := range vss {
		for _, b := range vs.Backends {
			if b.Usable() {
				usable++
			}
		}
	}
	a.log.Info("rules applied", "why", why, "usableRealServers", usable, "took", time.Since(start).String())
	for _, vs := range vss {
		for _, b := range vs.Backends {
			k := lb.BackendKey(vs, b)
			was, known := a.healthy[k]
			a.healthy[k] = b.Healthy
			if !known || !was || b.Healthy || a.expire == nil {
				continue
			}
			n, err := a.expire(vs, b)
			if err != nil {
				a.log.Error("expire conntrack entries", "service", vs.Name, "real", b.Addr(), "err", err)
				continue
			}
			a.log.Info("conntrack entries expired", "service", vs.Name, "real", b.Addr(), "deleted", n)
		}
	}
	a.publish()
	return nil
}

// publish writes the state file (if configured).
func (a *lbAgent) publish() {
	if a.cfg.StatePath == "" {
		return
	}
	status := a.checker.Status()
	a.mu.Lock()
	st := a.state
	st.Updated = time.Now()
	st.Services = make([]lb.VirtualService, len(a.vss))
	for i, vs := range a.vss {
		vs.Backends = append([]lb.Backend(nil), vs.Backends...)
		st.Services[i] = vs
	}
	st.Probes = map[string]lb.ProbeState{}
	for _, bp := range a.probes {
		vs := a.vss[bp.Service]
		k := bp.Probe.Key()
		ps := lb.ProbeState{Probe: bp.Probe, Health: status[k]}
		if !ps.Health.Up {
			ps.Err = a.lastErr[k]
		}
		st.Probes[lb.BackendKey(vs, vs.Backends[bp.Backend])] = ps
	}
	a.mu.Unlock()
	if err := rundir.WriteLBStateFile(a.cfg.StatePath, st); err != nil {
		a.log.Warn("publish state", "err", err)
	}
}

// iptablesSave and iptablesRestore run in the agent's own namespace (the LB's).
func iptablesSave(ctx context.Context) ([]byte, error) {
	return kernel.SaveHere(ctx, false, "")
}

func iptablesRestore(ctx context.Context, input []byte) error {
	return kernel.RestoreHere(ctx, input)
}
