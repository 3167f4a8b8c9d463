package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netlabdev/netlab/netlab/iptables"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftnl"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// KubeProxyConfig configures a node's kube-proxy agent. The agent runs inside the node's
// namespace, so iptables commands it runs act on that node only.
type KubeProxyConfig struct {
	Lab, Node string
	// Dir is the lab's runtime directory (default rundir.ForLab(Lab)).
	Dir string
	// Poll is how often endpoints.json is checked for a change (default 50 ms) when
	// inotify cannot tell (rundir.Watch); with it, a change wakes the agent at once.
	Poll time.Duration
	// FullSyncPeriod forces a full rewrite now and then (default 5 min), as kube-proxy
	// does, in case someone changed the node's rules by hand.
	FullSyncPeriod time.Duration
	// CheckPeriod is how often the agent checks that the built-in chains still jump to
	// its chains (default 1 s); a missing jump (a flushed table, a deleted rule) makes the
	// next sync a full one. Every endpoint change checks too.
	CheckPeriod time.Duration
	// WaitEndpoints bounds the wait for the controller's first endpoints.json (default
	// 20 s); after it the agent programs every Service without endpoints.
	WaitEndpoints time.Duration
}

type kubeProxy struct {
	cfg    KubeProxyConfig
	dir    rundir.Dir
	log    *slog.Logger
	syncer *RuleSyncer
	ports  atomic.Pointer[[]kubeproxy.ServicePort]
	gen    int64
	// udp: what the rules did with UDP at the last conntrack clean-up (clearStaleUDP).
	udp *kubeproxy.UDPServing
	// udpRetry: the last clean-up failed; the rules are synced but their generation is
	// not reported until a clean-up succeeds (the loop tries again each tick).
	udpRetry bool
}

// RuleSyncer applies one node's Service rules in the namespace its commands run in: a
// full sync writes the whole rendering (removing stale chains) with any missing jump
// rules from the built-in chains; later syncs write only the chains that changed since the last one.
type RuleSyncer struct {
	node     kubeproxy.Node
	last     *kubeproxy.Snapshot // of the complete rendering the kernel holds, for incremental syncs
	lastFull time.Time
	// nftables mode: table ip kube-proxy through netlink (see kubeproxy_nft.go).
	nft      bool
	nftModel *nftables.Model
	// nftConn stays open between syncs (see nftnl.Conn); it belongs to the namespace of
	// the first sync.
	nftConn *nftnl.Conn
	// nftSynced: the kernel holds the model's table as of the last Update.
	nftSynced bool
	// nftKnown is the namespace's nftables state right after the last sync (zero:
	// unknown); nftRecord the file it is recorded in for a successor (SetRecord).
	nftKnown      nftnl.State
	nftRecord     string
	nftRecordFile *os.File // open on nftRecord once written
	// presaved, when set, yields the namespace's rules read ahead (Presave), for the
	// next full sync in iptables mode.
	presaved chan presavedRules
}

type presavedRules struct {
	b   []byte
	err error
}

// Presave reads the namespace's iptables rules now, in the background, for the next full
// sync (iptables mode; nothing in nftables mode): kube-proxy, the only writer of its
// node's rules, reads them while it waits for the controller's first endpoints instead of
// after, when up waits for its sync. A sync that fails on them reads them again next time.
//
// A namespace with no table yet (a node's, right after up made it) is read without a
// process: there is nothing to read (kernel.IPTablesEmptyHere).
func (r *RuleSyncer) Presave() {
	if r.nft {
		return
	}
	r.presaved = make(chan presavedRules, 1)
	if kernel.IPTablesEmptyHere() {
		r.presaved <- presavedRules{b: []byte{}}
		return
	}
	go func() {
		b, err := kernel.SaveHere(context.Background(), false, "")
		r.presaved <- presavedRules{b, err}
	}()
}

// SyncStats describes one sync.
type SyncStats struct {
	Full bool
	// Kept: a full sync (nftables mode) found the table exactly as the last sync — this
	// syncer's or a predecessor's — left it, nothing having committed in the namespace
	// since, and wrote only what changed since then.
	Kept  bool
	Bytes int // of iptables-restore input (0: nothing changed)
	Took  time.Duration
}

// NewRuleSyncer returns a syncer for node in iptables mode.
func NewRuleSyncer(node kubeproxy.Node) *RuleSyncer { return &RuleSyncer{node: node} }

// LastFull is when the last full sync succeeded.
func (r *RuleSyncer) LastFull() time.Time { return r.lastFull }

// Sync makes the kernel's rules those of ports; full forces a whole rewrite (it is also
// made when the syncer has no trustworthy last state, e.g. after a failure).
func (r *RuleSyncer) Sync(ports []kubeproxy.ServicePort, full bool) (SyncStats, error) {
	if r.nft {
		return r.syncNFT(ports, full)
	}
	start := time.Now()
	next := kubeproxy.Render(r.node, ports, nil)
	var input []byte
	var snap *kubeproxy.Snapshot
	if full || r.last == nil {
		var save []byte
		var err error
		have := false
		if r.presaved != nil {
			pre := <-r.presaved
			r.presaved = nil
			save, have = pre.b, pre.err == nil
		}
		if !have {
			save, err = kernel.SaveHere(context.Background(), false, "")
		}
		if err != nil {
			r.last = nil
			return SyncStats{Full: true, Took: time.Since(start)}, err
		}
		dump, err := iptables.Parse(save)
		if err != nil {
			r.last = nil
			return SyncStats{Full: true, Took: time.Since(start)}, err
		}
		// The chains and any missing jump to them from the built-in chains: one
		// transaction, so a packet never meets a jump to a chain that is not there yet.
		input = kubeproxy.Render(r.node, ports, dump.ChainNames("nat"))
		input = kubeproxy.AppendJumps(input, kubeproxy.MissingJumps(dump))
		input = kubeproxy.AppendCanaries(input, kubeproxy.MissingCanaries(dump))
		snap = kubeproxy.TakeSnapshot(next)
		full = true
	} else {
		input, snap = kubeproxy.IncrementalFrom(r.last, next)
	}
	st := SyncStats{Full: full, Bytes: len(input)}
	if input != nil {
		if err := kernel.RestoreHere(context.Background(), input); err != nil {
			r.last = nil
			st.Took = time.Since(start)
			return st, err
		}
	}
	if full {
		r.lastFull = time.Now()
	}
	r.last = snap
	st.Took = time.Since(start)
	return st, nil
}

// RunKubeProxy keeps the node's iptables rules equal to what kube-proxy would write for
// the lab's Services and the controller's endpoints: one iptables-restore --noflush per
// change (incremental after the first, full every FullSyncPeriod or after a failure),
// the jump rules from built-in chains restored with the first sync, and the
// healthCheckNodePort of every externalTrafficPolicy: Local Service served.
func RunKubeProxy(ctx context.Context, cfg KubeProxyConfig, log *slog.Logger) error {
	dir := rundir.Resolve(cfg.Lab, cfg.Dir)
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.FullSyncPeriod <= 0 {
		cfg.FullSyncPeriod = 5 * time.Minute
	}
	if cfg.WaitEndpoints <= 0 {
		cfg.WaitEndpoints = 20 * time.Second
	}
	if cfg.CheckPeriod <= 0 {
		cfg.CheckPeriod = time.Second
	}
	p, err := dir.ReadPlanView(rundir.KubeProxyPlan)
	if err != nil {
		return err
	}
	node, err := p.ProxyNode(cfg.Node)
	if err != nil {
		return err
	}
	if node.NFAcct {
		// kube-proxy's counters, in this (the node's) namespace; without them it writes
		// its rules without the nfacct matches, and so does the agent.
		if err := kernel.EnsureNFAcctHere(kubeproxy.NFAcctInvalidDropped, kubeproxy.NFAcctLocalhostNodePorts); err != nil {
			log.Warn("no nfacct counters: the rules are written without them", "node", cfg.Node, "err", err)
			node.NFAcct = false
		}
	}
	syncer, err := NewRuleSyncerMode(node, p.KubeProxy.Mode)
	if err != nil {
		return err
	}
	defer syncer.Close()
	// Beside the sync status: a restarted agent finds there what its predecessor left.
	syncer.SetRecord(filepath.Join(dir.Path(), rundir.SyncDir, cfg.Node+".nftables"))
	k := &kubeProxy{cfg: cfg, dir: dir, log: log.With("node", cfg.Node), syncer: syncer}

	syncer.Presave()
	epPath := dir.Endpoints()
	// The controller's writes wake the agent (inotify); the poll stays as the fallback
	// where inotify is missing, and as the pace of the rule checks.
	watch := rundir.Watch(ctx, dir.Path(), filepath.Base(epPath))
	var ef *kubeproxy.EndpointsFile
	var stamp rundir.Stamp // of the file as it was before the read, so no later write is missed
	deadline := time.Now().Add(cfg.WaitEndpoints)
	for {
		stamp = rundir.FileStamp(epPath)
		if ef, err = dir.ReadEndpoints(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			k.log.Warn("no endpoints from the controller yet: every Service starts without endpoints", "err", err)
			ef = &kubeproxy.EndpointsFile{Ports: p.ServicePorts(func(string) bool { return false })}
			break
		}
		// Started beside the pods, kube-proxy waits here for the controller's first
		// endpoints, which the end of up waits for: a shorter poll than the steady one
		// (a stat of one file).
		select {
		case <-ctx.Done():
			return nil
		case <-watch.C:
		case <-time.After(min(cfg.Poll, 10*time.Millisecond)):
		}
	}
	k.ports.Store(&ef.Ports)
	k.gen = ef.Generation
	if err := k.sync(true); err != nil {
		return fmt.Errorf("first sync: %w", err)
	}
	stopHC, err := k.serveHealthChecks(ctx, ef.Ports)
	if err != nil {
		return err
	}
	defer stopHC()
	NotifyReady()

	poll := cfg.Poll
	if watch.Active() {
		poll = max(poll, cfg.CheckPeriod)
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	failed := false
	check := newRuleCheck(p.NFTables())
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			k.log.Info("kube-proxy stopping")
			return nil
		case <-tick.C:
		case <-watch.C:
		}
		st := rundir.FileStamp(epPath)
		full := failed || time.Since(k.syncer.LastFull()) > cfg.FullSyncPeriod
		// Rules changed behind our back (a flush, a deleted jump): a full resync, also
		// when an incremental one was due, since it would not restore the jumps.
		if !full && (st != stamp || time.Since(lastCheck) >= cfg.CheckPeriod) {
			lastCheck = time.Now()
			switch miss, err := check.missing(); {
			case err != nil:
				k.log.Warn("check rules", "err", err)
			case len(miss) > 0:
				k.log.Warn("rules changed behind kube-proxy's back: full resync", "missing", miss)
				full = true
			}
		}
		if st == stamp && !full && !k.syncer.StaleDue() && !k.udpRetry {
			continue
		}
		if st != stamp {
			stamp = st // taken before the read: a write after it shows up next tick
			nf, err := dir.ReadEndpoints()
			if err != nil {
				k.log.Warn("read endpoints", "err", err)
				stamp = rundir.FileStamp("") // try again next tick
				continue
			}
			old := *k.ports.Load()
			logNodeEndpointChanges(k.log, old, nf.Ports)
			k.ports.Store(&nf.Ports)
			k.gen = nf.Generation
		}
		if err := k.sync(full); err != nil {
			k.log.Error("sync failed", "err", err)
			failed = true
			continue
		}
		failed = false
	}
}

// sync applies the current endpoints and reports the result.
func (k *kubeProxy) sync(full bool) error {
	ports := *k.ports.Load()
	st, err := k.syncer.Sync(ports, full)
	if err != nil {
		k.writeStatus(st, err)
		return err
	}
	k.report(st, ports)
	return nil
}

// report publishes a sync of ports that succeeded. The generation is reported once the
// UDP flows to endpoints that left are cleared too: whoever waits for it (apply, tests)
// may send a datagram at once, and a stale conntrack entry would still carry it to the
// gone pod. A clean-up that fails twice leaves the status as it was and udpRetry set:
// the loop calls sync again each tick until one succeeds.
func (k *kubeProxy) report(st SyncStats, ports []kubeproxy.ServicePort) {
	err := k.clearStaleUDP(ports)
	if err != nil { // once more at once: an interrupted dump is the usual cause
		err = k.clearStaleUDP(ports)
	}
	if err != nil {
		if !k.udpRetry {
			k.log.Warn("clear stale UDP conntrack entries: the generation is reported once they are", "generation", k.gen, "err", err)
		}
		k.udpRetry = true
		return
	}
	if k.udpRetry {
		k.log.Info("stale UDP conntrack entries cleared after a failure", "generation", k.gen)
	}
	k.udpRetry = false
	k.writeStatus(st, nil)
	k.log.Info("sync done", "ms", float64(st.Took.Microseconds())/1000, "full", st.Full, "kept", st.Kept, "generation", k.gen,
		"bytes", st.Bytes, "servicePorts", len(ports))
}

func (k *kubeProxy) writeStatus(s SyncStats, err error) {
	st := kubeproxy.SyncStatus{Node: k.cfg.Node, Generation: k.gen, Full: s.Full,
		Ms: float64(s.Took.Microseconds()) / 1000, At: time.Now().UTC()}
	if err != nil {
		st.Error, st.Generation = err.Error(), 0
	}
	if werr := k.dir.WriteSyncStatus(st); werr != nil {
		k.log.Warn("write sync status", "err", werr)
	}
}

// logNodeEndpointChanges logs, per service port, the ready endpoints when they change.
func logNodeEndpointChanges(log *slog.Logger, old, cur []kubeproxy.ServicePort) {
	readySet := func(sp kubeproxy.ServicePort) []string {
		var out []string
		for _, ep := range sp.Endpoints {
			if ep.Ready {
				out = append(out, ep.String())
			}
		}
		slices.Sort(out)
		return out
	}
	before := map[string][]string{}
	for _, sp := range old {
		before[sp.ServicePortName()+"/"+sp.Protocol] = readySet(sp)
	}
	for _, sp := range cur {
		now := readySet(sp)
		if !slices.Equal(before[sp.ServicePortName()+"/"+sp.Protocol], now) {
			log.Info("endpoints changed", "service", sp.ServicePortName(), "protocol", sp.Protocol, "ready", now)
		}
	}
}

// healthCheckResponse is kube-proxy's health check body.
type healthCheckResponse struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

// HealthCheckHandler answers kube-proxy's healthCheckNodePort for Service svc ("ns/name")
// on node: 200 with the count of local ready endpoints, 503 when there is none.
func HealthCheckHandler(svc, node string, ports func() []kubeproxy.ServicePort) http.Handler {
	ns, name, _ := strings.Cut(svc, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var resp healthCheckResponse
		resp.Service.Namespace, resp.Service.Name = ns, name
		resp.LocalEndpoints = kubeproxy.LocalReadyEndpoints(ports(), svc, node)
		resp.ServiceProxyHealthy = true
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(resp.LocalEndpoints))
		if resp.LocalEndpoints == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			w.WriteHeader(http.StatusOK)
		}
		// The body as kube-proxy writes it: indented with tabs, no final newline.
		body, _ := json.MarshalIndent(resp, "", "\t")
		_, _ = w.Write(body)
	})
}

// serveHealthChecks listens on every healthCheckNodePort of an ETP Local Service.
func (k *kubeProxy) serveHealthChecks(ctx context.Context, ports []kubeproxy.ServicePort) (func(), error) {
	svcs := map[int32]string{}
	for _, sp := range ports {
		if sp.ExternalLocal && sp.HealthCheckNodePort != 0 {
			svcs[sp.HealthCheckNodePort] = sp.ServiceName()
		}
	}
	var servers []*http.Server
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	cur := func() []kubeproxy.ServicePort { return *k.ports.Load() }
	for port, svc := range svcs {
		ln, err := listenTCP(net.JoinHostPort("", strconv.Itoa(int(port))))
		if err != nil {
			stop()
			return nil, fmt.Errorf("health check port %d of %s: %w", port, svc, err)
		}
		srv := &http.Server{Handler: HealthCheckHandler(svc, k.cfg.Node, cur), ReadHeaderTimeout: 5 * time.Second,
			BaseContext: func(net.Listener) context.Context { return ctx }}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				k.log.Error("health check server", "port", port, "err", err)
			}
		}()
		k.log.Info("serving health check node port", "service", svc, "port", port)
	}
	return stop, nil
}
