package ingressagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rawio"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
	"golang.org/x/sys/unix"
)

// Ingress agent defaults (the Lab's spec.ingress defaults).
const (
	DefaultIngressHTTPPort    = 80
	DefaultIngressHTTPSPort   = 443
	DefaultIngressMetricsPort = 10254
)

// IngressConfig configures a node's ingress agent.
type IngressConfig struct {
	Lab, Node string
	// Dir is the lab's runtime directory (default rundir.ForLab(Lab)).
	Dir string
	// Config is the file the routing configuration is read from, at start and on every
	// SIGHUP (default <Dir>/plan.json).
	Config string
	// CADir holds the lab CA, created on first use (default <Dir>/ca, mode 0700).
	CADir string
	// ClassName is the IngressClass served (default "netlab").
	ClassName string
	// Ports of the node to listen on (defaults 80, 443, 10254); -1 disables one.
	HTTPPort, HTTPSPort, MetricsPort int
	// ListenIP restricts the listeners to one address (default: every address of the
	// node's namespace).
	ListenIP string
	// UpstreamTimeout bounds the wait for an upstream's response headers (default 30 s).
	UpstreamTimeout time.Duration
	// Server hardens the listeners (zero: ingress.DefaultServer).
	Server ingress.Server
	// AccessLog receives the JSON access log (default stdout).
	AccessLog io.Writer
	// Reload, when set, triggers a reload like SIGHUP does (tests).
	Reload <-chan struct{}
	// Ready, when set, is called once every listener is bound (tests); ready.Notify is
	// always called too.
	Ready func(IngressAddrs)
	// Workers is how many processes serve the node's proxy ports (nginx's
	// worker_processes); 0 and 1 are this process alone. With more, this process is worker
	// 1 and starts the others with WorkerCommand.
	Workers int
	// WorkerCommand makes the command of worker i (2..Workers); its control descriptor is
	// added as descriptor 3. Default: this program with this process's arguments and
	// --worker i, its output to this process's (tests run their own binary).
	WorkerCommand func(i int) *exec.Cmd
}

// IngressAddrs are the bound listener addresses.
type IngressAddrs struct{ HTTP, HTTPS, Metrics string }

// IngressProcs is the GOMAXPROCS the ingress agent runs with: n when above 0, else
// the GOMAXPROCS environment variable when set, else half the processors Go would use,
// at least one. In a lab the proxy shares the host's CPUs with the clients, the pods and
// the kernel's packet path, which takes about half of every request's CPU; with fewer Ps
// than busy CPUs the Go scheduler stops waking idle Ps to steal work that one P finishes
// anyway (futex and nanosleep calls, context switches per request), and a P goes back to
// the netpoller as an nginx worker goes back to epoll_wait (docs/performance.md).
func IngressProcs(n int) int {
	if n > 0 {
		return n
	}
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// errText is err's text, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ingressWaitEndpoints bounds a held ingress's wait, once released, for the controller's
// first endpoints.
const ingressWaitEndpoints = 20 * time.Second

// waitForFile waits for path to exist until limit passes or ctx ends, and says whether
// it does: it looks again at every change w reports in the file's directory (a poll of
// pollEvery is the safety net, and the pace where inotify is missing).
func waitForFile(ctx context.Context, path string, limit time.Duration, w *rundir.Watcher) bool {
	pollEvery := 5 * time.Millisecond
	if w.Active() {
		pollEvery = time.Second
	}
	return waitForFileEvery(ctx, path, limit, w, pollEvery, nil)
}

// waitForFileEvery is waitForFile polling every pollEvery; looked, when set, is closed
// after the first look at the file (tests).
func waitForFileEvery(ctx context.Context, path string, limit time.Duration, w *rundir.Watcher, pollEvery time.Duration, looked chan<- struct{}) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	for {
		_, err := os.Stat(path)
		if looked != nil {
			close(looked)
			looked = nil
		}
		if err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			_, err := os.Stat(path)
			return err == nil
		case <-w.C:
		case <-poll.C:
		}
	}
}

// RunIngress is the node's ingress controller: an L7 proxy on the node's HTTP and HTTPS
// ports that routes by the lab's Ingress objects to the Services' ClusterIP:port (so
// kube-proxy on this node picks the pod), terminates TLS with certificates from the
// lab's kubernetes.io/tls Secrets or issued by the lab CA, and serves Prometheus metrics.
// SIGHUP re-reads the configuration file and swaps routes and certificates without
// dropping a connection; a configuration that fails to load keeps the old one.
//
// With cfg.Workers above one it is worker 1 of that many processes serving the node's
// ports, and their supervisor (workers.go): it starts the others, restarts one that
// dies, hands them its reloads, serves the metrics of all of them summed, and reports a
// plan loaded only once every worker has loaded it.
func RunIngress(ctx context.Context, cfg IngressConfig, log *slog.Logger) error {
	if cfg.Lab == "" || cfg.Node == "" {
		return errors.New("ingress agent: --lab and --node are required")
	}
	cfg, dir := ingressDefaults(cfg)
	log = log.With("agent", "ingress", "node", cfg.Node)
	groupLog := log // the supervisor's lines name the worker they are about
	multi := cfg.Workers > 1
	if multi {
		log = log.With("worker", 1)
	}

	ca, err := LoadOrCreateCA(cfg.CADir, "netlab "+cfg.Lab+" CA")
	if err != nil {
		return fmt.Errorf("ingress agent: %w", err)
	}
	var group *workerGroup
	// With a worker per CPU, worker i runs on the i-th CPU (cpus.go): the list is taken
	// before this process runs on one of them (each worker is started on all of them, then
	// takes its own: startOn, serveFor).
	var cpus, allowed []int
	if multi {
		off, err := affinityOff()
		if err != nil {
			log.Warn("workers' CPU affinity", "err", err)
		}
		if allowed, err = allowedCPUs(); err == nil {
			cpus = workerCPUs(cfg.Workers, allowed, off)
		} else {
			log.Warn("workers not pinned: cannot read the CPUs this process may run on", "err", err)
		}
	}
	// What was loaded is published with the version of the plan file read (its stamp
	// taken before the read: a rewrite during it shows as another version); with workers,
	// once all of them have loaded the same version. A version that failed to load is
	// published with its error: a change waiting for it fails at once.
	loaded := func(stamp rundir.Stamp, routes int, lerr error) {
		if group != nil {
			group.loaded(1, loadedPlan{stamp.String(), routes, errText(lerr)})
			return
		}
		if err := dir.WriteIngressLoaded(rundir.IngressLoaded{Node: cfg.Node, Plan: stamp.String(), Routes: routes, Error: errText(lerr), At: time.Now().UTC()}); err != nil {
			log.Warn("write ingress status", "err", err)
		}
	}
	stamp := rundir.FileStamp(cfg.Config)
	conf, err := loadIngressConf(cfg, ca, log)
	if err != nil {
		loaded(stamp, 0, err)
		return err
	}
	if multi {
		// The other workers start now, beside this one's wait to be let go on: their
		// start-up (the binary's, the plan's and the certificates' load) is off the path.
		group = startWorkers(ctx, cfg, dir, cpus, allowed, groupLog)
		defer group.stop()
	}
	loaded(stamp, len(conf.table.Routes()), nil)
	// The listeners are bound, and the health and metrics port served, before the ingress
	// waits to be let go on: the LB's first checks (GET /healthz, or a TCP connect to a
	// proxy port, which the kernel accepts into the backlog) then find this node serving
	// while the pods start; the proxy ports are served once the endpoints are in place.
	srvCfg := cfg.Server
	srvCfg.Logger = log
	// The node's listeners: bound first, served once their server is made.
	type listener struct {
		name string
		port int
		ln   net.Listener // nil when disabled
	}
	const lHTTP, lHTTPS, lMetrics = 0, 1, 2
	ls := [3]listener{{name: "http", port: cfg.HTTPPort}, {name: "https", port: cfg.HTTPSPort}, {name: "metrics", port: cfg.MetricsPort}}
	closeAll := func() {
		for _, l := range ls {
			if l.ln != nil {
				l.ln.Close()
			}
		}
	}
	for i := range ls {
		// The proxy ports are shared with the other workers (SO_REUSEPORT); the metrics
		// port is this process's alone.
		ln, err := bindPort(ls[i].name, cfg.ListenIP, ls[i].port, multi && i != lMetrics)
		if err != nil {
			closeAll()
			return err
		}
		ls[i].ln = ln
	}
	errc := make(chan error, len(ls))
	metrics := ingress.NewMetrics()
	mux := http.NewServeMux()
	if group != nil {
		mux.Handle("/metrics", ingress.MergedHandler(metrics, group.snapshots))
	} else {
		mux.Handle("/metrics", metrics.Handler())
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if group != nil {
			if why := group.unhealthy(); why != "" {
				http.Error(w, why, http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	// Go's profiler on the metrics port (node namespace only), as ingress-nginx offers
	// with --profiling: `go tool pprof http://NODE_IP:10254/debug/pprof/profile?seconds=5`
	// from inside the node, under load, is how the data path was tuned (docs/performance.md).
	// With workers it profiles worker 1.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	var metricsSrv *http.Server
	if ls[lMetrics].ln != nil {
		metricsSrv = srvCfg.HTTP("", mux)
		go serveListener(errc, "metrics", ls[lMetrics].ln, metricsSrv.Serve)
	}

	// Started beside the pods, the ingress waits here, its configuration loaded, until up
	// lets it go on with the controller, and then for the controller's first endpoints:
	// in the endpoints upstream mode it routes to them from its first request.
	held := ready.HoldFD() >= 0
	if err := ready.WaitRelease(ctx); err != nil {
		closeAll()
		return nil
	}
	epPath := dir.Endpoints()
	// The controller's writes wake the agent (inotify), as they wake kube-proxy: the watch
	// is made before the first look at the file, so no write after it is missed. A poll
	// stays, slower, as the safety net, and at its old pace where inotify is missing.
	watch := rundir.Watch(ctx, filepath.Dir(epPath), filepath.Base(epPath))
	if held {
		// Up lets it go on with the controller, which writes its first endpoints while
		// kube-proxy and the ingress start: they are waited for here.
		if !waitForFile(ctx, epPath, ingressWaitEndpoints, watch) {
			if ctx.Err() != nil {
				closeAll()
				return nil
			}
			log.Warn("no endpoints from the controller yet: starting without them", "after", ingressWaitEndpoints.String())
		}
	}
	worker := 0
	if multi {
		worker = 1
	}
	px, err := newProxy(cfg, ca, conf, metrics, worker, epPath, watch, loaded, log)
	if err != nil {
		closeAll()
		return err
	}
	var cpu *int
	if len(cpus) > 0 {
		undo, err := pinWorker(cpus[0], ls[lHTTP].ln, ls[lHTTPS].ln)
		if err != nil {
			log.Warn("serving on any CPU, every worker", "error", err)
			if group != nil {
				group.unpin() // before the serve order: none of the others pins either
			}
		} else {
			cpu = &cpus[0]
		}
		defer undo()
	}
	px.serve(srvCfg, ls[lHTTP].ln, ls[lHTTPS].ln, errc)
	addr := func(i int) string {
		if ls[i].ln == nil {
			return ""
		}
		return ls[i].ln.Addr().String()
	}
	addrs := IngressAddrs{HTTP: addr(lHTTP), HTTPS: addr(lHTTPS), Metrics: addr(lMetrics)}
	if group != nil {
		// The others bind the same ports (those this one got, when it asked for any) and
		// serve; readiness waits for them, as bounded as the wait for the endpoints.
		group.release(ctx, ctlMsg{Op: opServe, Listen: cfg.ListenIP, HTTP: portOf(ls[lHTTP].ln), HTTPS: portOf(ls[lHTTPS].ln)}, ingressWaitEndpoints)
	}
	log.Info("ingress serving", "http", addrs.HTTP, "https", addrs.HTTPS, "metrics", addrs.Metrics, "workers", max(1, cfg.Workers), "cpu", cpuText(cpu),
		"routes", len(conf.table.Routes()), "certificates", strings.Join(conf.certs.Names(), ","), "ca", filepath.Join(cfg.CADir, rundir.CACertFile))
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}
	// SIGHUP is caught before readiness is reported: one sent right after `up` reloads.
	// Until here it was ignored (agent.Main: its default action would end the agent), so a
	// SIGHUP sent since the first load is lost: a plan written since then is read now.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if rundir.FileStamp(cfg.Config) != stamp {
		px.reload()
		if group != nil {
			group.reload()
		}
	}
	ready.Notify()
	onReload := func() {}
	if group != nil {
		onReload = group.reload
	}
	err = px.run(ctx, hup, cfg.Reload, onReload, errc)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if group != nil {
		group.tellStop() // the other workers drain beside this one
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shutdownCtx)
	}
	px.shutdown(shutdownCtx)
	return err
}

// ingressDefaults fills in cfg's defaults and returns it with the lab's directory.
func ingressDefaults(cfg IngressConfig) (IngressConfig, rundir.Dir) {
	dir := rundir.Resolve(cfg.Lab, cfg.Dir)
	if cfg.Config == "" {
		cfg.Config = dir.Plan()
	}
	if cfg.CADir == "" {
		cfg.CADir = dir.CA()
	}
	if cfg.ClassName == "" {
		cfg.ClassName = ingress.DefaultClassName
	}
	defPort := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	defPort(&cfg.HTTPPort, DefaultIngressHTTPPort)
	defPort(&cfg.HTTPSPort, DefaultIngressHTTPSPort)
	defPort(&cfg.MetricsPort, DefaultIngressMetricsPort)
	if cfg.AccessLog == nil {
		cfg.AccessLog = newCappedLog(os.Stdout, accessLogCap)
	}
	return cfg, dir
}

// bindPort listens on ip:port (nil for a port below 0); reuse sets SO_REUSEPORT, so that
// every worker of the node has a listener of its own on the port and the kernel spreads
// the connections over them.
func bindPort(name, ip string, port int, reuse bool) (net.Listener, error) {
	if port < 0 {
		return nil, nil
	}
	// No TCP keep-alive probes on client connections (four setsockopt calls per
	// accepted connection): net/http's idle and read timeouts close dead ones.
	lc := net.ListenConfig{KeepAlive: -1}
	// Plain TCP, as nginx listens: Go (1.24 on) makes a listener MPTCP where the kernel has
	// it, and every connection of a TCP client then takes MPTCP's fallback through the
	// subflow listener; the socket options a listener is given (SO_INCOMING_CPU, cpus.go)
	// do not reach that subflow's reuseport group either.
	lc.SetMultipathTCP(false)
	if reuse {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("ingress agent: listen %s: %w", name, err)
	}
	return ln, nil
}

// portOf is the port ln listens on (0 for none).
func portOf(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	return ln.Addr().(*net.TCPAddr).Port
}

// serveListener runs a server's serve function on ln and reports its failure on errc.
func serveListener(errc chan<- error, name string, ln net.Listener, run func(net.Listener) error) {
	if err := run(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		errc <- fmt.Errorf("ingress agent: serve %s: %w", name, err)
	}
}

// proxy is one worker's data path: the handler, its certificates, its servers on the
// proxy ports, and what follows the plan and the endpoints.
type proxy struct {
	cfg    IngressConfig
	ca     *ingress.CA
	log    *slog.Logger
	h      *ingress.Handler
	certs  *ingress.CertSelector
	srvs   []interface{ Shutdown(context.Context) error }
	epPath string
	epGen  rundir.Stamp
	eps    *endpointsView
	// unsynced is the view before the first endpoints change this node's kube-proxy has
	// not synced yet (nil: none): when it has, the change is marked again (see
	// endpointsChanged).
	unsynced *endpointsView
	dir      rundir.Dir
	watch    *rundir.Watcher
	loaded   func(rundir.Stamp, int, error)
}

func newProxy(cfg IngressConfig, ca *ingress.CA, conf *ingressConf, metrics *ingress.Metrics, worker int, epPath string,
	watch *rundir.Watcher, loaded func(rundir.Stamp, int, error), log *slog.Logger) (*proxy, error) {
	epGen := rundir.FileStamp(epPath)
	eps := readEndpoints(epPath, nil, log)
	h, err := ingress.NewHandler(ingress.Options{
		Node:            cfg.Node,
		Worker:          worker,
		Resolve:         conf.resolve,
		Endpoints:       eps.resolve,
		UpstreamTimeout: cfg.UpstreamTimeout,
		AccessLog:       cfg.AccessLog,
		Logger:          log,
		Metrics:         metrics,
		WrapUpstream:    rawio.Wrap, // raw socket calls (netlab/rawio)
		// Kept from start: changing it needs a restart of the agent.
		TrustForwardedHeaders: conf.trustFwd,
	}, conf.table)
	if err != nil {
		return nil, err
	}
	return &proxy{cfg: cfg, ca: ca, log: log, h: h, certs: ingress.NewCertSelector(conf.certs), epPath: epPath, epGen: epGen, eps: eps, dir: rundir.Resolve(cfg.Lab, cfg.Dir), watch: watch, loaded: loaded}, nil
}

// serve starts the proxy's servers on its listeners (either may be nil). Plain-HTTP
// clients get the ingress's own HTTP/1 connection loop (PlainServer) on raw socket calls
// (netlab/rawio); TLS (and h2) clients net/http's server.
func (p *proxy) serve(srvCfg ingress.Server, httpLn, httpsLn net.Listener, errc chan<- error) {
	if httpLn != nil {
		plainSrv := srvCfg.Plain(p.h)
		p.srvs = append(p.srvs, plainSrv)
		go serveListener(errc, "http", httpLn, func(ln net.Listener) error { return plainSrv.Serve(rawio.Listener(ln)) })
	}
	if httpsLn != nil {
		tlsSrv := srvCfg.HTTPS("", p.h, p.certs.TLSConfig())
		p.srvs = append(p.srvs, tlsSrv)
		go serveListener(errc, "https", httpsLn, func(ln net.Listener) error { return tlsSrv.ServeTLS(ln, "", "") })
	}
}

// reload reads the plan again and swaps routes and certificates; a plan that fails to
// load keeps the current ones.
func (p *proxy) reload() {
	stamp := rundir.FileStamp(p.cfg.Config)
	next, err := loadIngressConf(p.cfg, p.ca, p.log)
	if err != nil {
		p.log.Error("reload failed; keeping the current configuration", "error", err)
		p.loaded(stamp, 0, err)
		return
	}
	p.certs.Swap(next.certs)
	p.h.ReloadWith(next.table, next.resolve)
	p.loaded(stamp, len(next.table.Routes()), nil)
	p.log.Info("reloaded", "routes", len(next.table.Routes()), "certificates", strings.Join(next.certs.Names(), ","))
}

// endpointsChanged follows the controller's endpoints file. Pooled upstream connections
// are pinned (by the node's conntrack) to the pod the ClusterIP picked when they were
// opened, or lead to the pod the endpoints mode picked. When a Service's endpoints change,
// the connections that may lead to a pod that is gone, unready or terminating are marked
// stale: the idle ones are closed at once and the busy ones when their exchange ends (see
// endpointsView.stale and the pool's marks); those to the other Services and pods stay,
// and so does their round-robin. The ingress reads the file before the node's kube-proxy
// has synced its rules, so a connection dialled to a ClusterIP in between may still reach
// a pod just taken out: once kube-proxy reports the file's generation, the same change is
// marked again.
func (p *proxy) endpointsChanged() {
	if g := rundir.FileStamp(p.epPath); g != p.epGen {
		p.epGen = g
		prev, next := p.eps, readEndpoints(p.epPath, p.eps, p.log)
		p.eps = next
		p.h.SetEndpoints(next.resolve)
		n := p.h.CloseIdleConnectionsTo(func(addr string) bool { return prev.stale(next, addr) })
		p.log.Info("endpoints changed: stale upstream connections marked", "idleClosed", n, "generation", next.generation)
		if p.unsynced == nil {
			p.unsynced = prev
		}
	}
	if p.unsynced == nil {
		return
	}
	if st, err := p.dir.ReadSyncStatus(p.cfg.Node); err == nil && st.Generation >= p.eps.generation {
		prev, next := p.unsynced, p.eps
		p.unsynced = nil
		n := p.h.CloseIdleConnectionsTo(func(addr string) bool { return prev.stale(next, addr) })
		p.log.Info("kube-proxy synced the endpoints: stale upstream connections marked again", "idleClosed", n, "generation", st.Generation)
	}
}

// run follows the endpoints and reloads on every SIGHUP from hup and every receive from
// reloads (then calls onReload) until ctx ends or a server fails (its error returned).
func (p *proxy) run(ctx context.Context, hup <-chan os.Signal, reloads <-chan struct{}, onReload func(), errc <-chan error) error {
	epPoll := 100 * time.Millisecond
	if p.watch.Active() {
		epPoll = time.Second
	}
	epTick := time.NewTicker(epPoll)
	defer epTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.watch.C:
			p.endpointsChanged()
		case <-epTick.C:
			p.endpointsChanged()
		case <-hup:
			p.reload()
			onReload()
		case <-reloads:
			p.reload()
			onReload()
		case err := <-errc:
			return err
		}
	}
}

// shutdown stops the servers (letting requests in flight finish until ctx ends) and the
// handler.
func (p *proxy) shutdown(ctx context.Context) {
	for _, s := range p.srvs {
		_ = s.Shutdown(ctx)
	}
	p.h.Close()
}

// accessLogCap bounds an agent's log file (it lives in /run, in memory): a benchmark's
// million requests must not fill it.
const accessLogCap = 64 << 20

// cappedLog writes to a log file opened for appending and empties it when it outgrows max;
// writers sharing the file (the agent's own log lines) go on at its new end.
//
// To a regular file on a tmpfs (a Debian /run), each write is a raw write(2) (raw set): the
// access log's batched writer is then no longer a caller on the data path that enters the
// runtime's system-call state, where sysmon may hand the worker's one P to another thread
// and a sysmon in deep sleep is woken (its 20 µs ticks follow); a tmpfs write is a copy
// into memory. Anywhere else os.File's write: on a disk an append can wait for the
// journal (seconds, under other writers: docs/design-notes.md, "Diagnosing a failed
// integration test"), and a pipe or a terminal for its reader; the P must then go on
// without the writer.
type cappedLog struct {
	mu     sync.Mutex
	f      *os.File
	raw    syscall.RawConn // f's, when f is a regular file
	max    int64
	writes int
}

func newCappedLog(f *os.File, max int64) *cappedLog {
	c := &cappedLog{f: f, max: max}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && onTmpfs(f) {
		c.raw, _ = f.SyscallConn()
	}
	return c
}

// onTmpfs says whether f's file system keeps its files in memory (tmpfs).
func onTmpfs(f *os.File) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &st) == nil && st.Type == unix.TMPFS_MAGIC
}

func (c *cappedLog) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writes++; c.writes%1024 == 0 {
		if fi, err := c.f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > c.max {
			_ = c.f.Truncate(0)
			fmt.Fprintf(c.f, "{\"msg\":\"log emptied at %d MiB\"}\n", c.max>>20)
		}
	}
	if c.raw == nil {
		return c.f.Write(b)
	}
	return rawWrite(c.raw, b)
}

// rawWrite writes all of b to a regular file with raw write(2) calls (a short write only
// with an error).
func rawWrite(rc syscall.RawConn, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n := 0
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
			switch {
			case e == syscall.EINTR:
			case e != 0:
				werr = os.NewSyscallError("write", e)
				return true
			case m == 0:
				werr = io.ErrShortWrite
				return true
			default:
				n += int(m)
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// ingressConf is one loaded configuration: what a reload swaps.
type ingressConf struct {
	table    *ingress.Table
	resolve  ingress.Resolver
	certs    *ingress.CertStore
	trustFwd bool
}

// loadIngressConf reads the plan file and builds routes, the Service resolver and the
// certificates. Warnings (ignored classes, shadowed rules, missing Secrets) are logged.
func loadIngressConf(cfg IngressConfig, ca *ingress.CA, log *slog.Logger) (*ingressConf, error) {
	p, err := rundir.ReadPlanView(cfg.Config, rundir.IngressPlan)
	if err != nil {
		return nil, err
	}
	table, warns, err := routesOf(p, cfg)
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		log.Warn(w)
	}
	certs, warns, err := ingress.BuildCertStore(ca, table, planSecrets(p), nil, defaultCertHosts(p, cfg.Node)...)
	if err != nil {
		return nil, fmt.Errorf("ingress agent: certificates: %w", err)
	}
	for _, w := range warns {
		log.Warn(w)
	}
	return &ingressConf{table: table, resolve: serviceResolver(p), certs: certs, trustFwd: p.Ingress.UseForwardedHeaders}, nil
}

// routesOf builds the routing table of the plan's Ingresses, with its warnings.
func routesOf(p *plan.Plan, cfg IngressConfig) (*ingress.Table, []string, error) {
	var ings []ingress.Ingress
	order := map[string]int{}
	for _, in := range p.Ingresses {
		if in.Created != 0 {
			order[in.Namespace+"/"+in.Name] = in.Created
		}
		var obj ingress.Ingress
		if err := json.Unmarshal(in.Object, &obj); err != nil {
			return nil, nil, fmt.Errorf("ingress %s/%s in %s: %w", in.Namespace, in.Name, cfg.Config, err)
		}
		if obj.Namespace == "" {
			obj.Namespace = in.Namespace
		}
		ings = append(ings, obj)
	}
	table, warns := ingress.BuildWith(ings, ingress.BuildOptions{ClassName: cfg.ClassName, Upstream: p.Ingress.Upstream,
		Classes: p.Ingress.Classes, IgnoreWithoutClass: p.Ingress.IgnoreWithoutClass, Order: order})
	return table, warns, nil
}

// planSecrets turns the plan's TLS material back into kubernetes.io/tls Secrets.
func planSecrets(p *plan.Plan) []ingress.Secret {
	var out []ingress.Secret
	for _, e := range p.TLS {
		ns, name, ok := strings.Cut(e.Secret, "/")
		if !ok || len(e.Cert) == 0 {
			continue
		}
		out = append(out, ingress.Secret{
			ObjectMeta: ingress.ObjectMeta{Namespace: ns, Name: name},
			Type:       ingress.SecretTypeTLS,
			Data:       map[string][]byte{ingress.TLSCertKey: e.Cert, ingress.TLSPrivateKeyKey: e.Key},
		})
	}
	return out
}

// defaultCertHosts names the default certificate: the node, its IP and the ingress VIP,
// so that https://<VIP>/ and https://<node IP>/ validate against the lab CA.
func defaultCertHosts(p *plan.Plan, node string) []string {
	hosts := []string{node}
	for _, n := range p.Nodes {
		if n.Name == node {
			if ip, _, ok := strings.Cut(n.IP, "/"); ok {
				hosts = append(hosts, ip)
			}
		}
	}
	if p.LB.VIP != "" {
		hosts = append(hosts, strings.SplitN(p.LB.VIP, "/", 2)[0])
	}
	return hosts
}

// serviceResolver maps an Ingress backend to the Service's ClusterIP:port, the port
// given by number or by name.
func serviceResolver(p *plan.Plan) ingress.Resolver {
	type key struct{ ns, name string }
	svcs := map[key]plan.Service{}
	for _, s := range p.Services {
		svcs[key{s.Namespace, s.Name}] = s
	}
	return func(ns, name string, port ingress.ServiceBackendPort) (string, error) {
		s, ok := svcs[key{ns, name}]
		if !ok {
			return "", fmt.Errorf("service %s/%s not found", ns, name)
		}
		if s.ClusterIP == "" || s.ClusterIP == "None" {
			return "", fmt.Errorf("service %s/%s has no cluster IP", ns, name)
		}
		for _, sp := range s.Ports {
			if (port.Name != "" && sp.Name == port.Name) || (port.Name == "" && sp.Port == port.Number) {
				return net.JoinHostPort(s.ClusterIP, strconv.Itoa(int(sp.Port))), nil
			}
		}
		return "", fmt.Errorf("service %s/%s has no port %s", ns, name, backendPortString(port))
	}
}

func backendPortString(p ingress.ServiceBackendPort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// endpointsView is what the ingress took from one read of the endpoints controller's
// file: the resolver of the endpoints mode (ready endpoints per Service port; as
// kube-proxy does, a port without a ready endpoint falls back to its serving, terminating
// ones) and, to tell which pooled upstream connections a change leaves stale, what each
// upstream address leads to.
type endpointsView struct {
	resolve  ingress.EndpointsResolver
	backends map[endpointsKey]*ingress.Backends
	// via is, per Service port's ClusterIP:port (the service mode's upstream), the rank of
	// each of its endpoints ("podIP:port"): 2 ready, 1 serving while terminating (one that
	// is neither, like one that left, ranks 0: absent).
	// kube-proxy may have pinned a connection to any endpoint that was ready (or, with none
	// ready, serving), so a connection is stale when one of them lost rank or left.
	via map[string]map[string]int
	// generation is the file's: the second mark waits for the node's kube-proxy to have it.
	generation int64
	// picked holds every endpoint ("podIP:port") the endpoints mode may pick.
	picked map[string]bool
}

type endpointsKey struct {
	ns, name, portName string
	port               int32
}

// readEndpoints reads the endpoints controller's file. A Service port whose endpoints are
// those prev had keeps prev's Backends, so its round-robin goes on where it was. An
// unreadable file gives a view without endpoints (503 in the endpoints mode) and is
// logged; the next change of the file is read again.
func readEndpoints(path string, prev *endpointsView, log *slog.Logger) *endpointsView {
	var f kubeproxy.EndpointsFile
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("endpoints unreadable; endpoints-mode routes answer 503 until it is rewritten", "file", path, "error", err)
	}
	v := &endpointsView{backends: map[endpointsKey]*ingress.Backends{}, via: map[string]map[string]int{}, picked: map[string]bool{}, generation: f.Generation}
	known := map[[2]string]bool{}
	for _, sp := range f.Ports {
		if !strings.EqualFold(sp.Protocol, "TCP") && sp.Protocol != "" {
			continue
		}
		known[[2]string{sp.Namespace, sp.Name}] = true
		var ready, terminating []string
		rank := map[string]int{}
		for _, e := range sp.Endpoints {
			a := net.JoinHostPort(e.IP, strconv.Itoa(int(e.Port)))
			switch {
			case e.Ready:
				ready = append(ready, a)
				rank[a] = 2
			case e.ServingTerminating():
				terminating = append(terminating, a)
				rank[a] = 1
			}
		}
		if len(ready) == 0 {
			ready = terminating
		}
		for _, a := range ready {
			v.picked[a] = true
		}
		if sp.ClusterIP != "" && sp.ClusterIP != "None" {
			v.via[net.JoinHostPort(sp.ClusterIP, strconv.Itoa(int(sp.Port)))] = rank
		}
		k := endpointsKey{sp.Namespace, sp.Name, "", sp.Port}
		bk := &ingress.Backends{Addrs: ready}
		if prev != nil {
			if old := prev.backends[k]; old != nil && slices.Equal(old.Addrs, ready) {
				bk = old
			}
		}
		v.backends[k] = bk
		if sp.PortName != "" {
			v.backends[endpointsKey{sp.Namespace, sp.Name, sp.PortName, 0}] = bk
		}
	}
	v.resolve = func(ns, name string, port ingress.ServiceBackendPort) (*ingress.Backends, error) {
		k := endpointsKey{ns, name, port.Name, 0}
		if port.Name == "" {
			k.port = port.Number
		}
		if b := v.backends[k]; b != nil {
			return b, nil
		}
		if !known[[2]string{ns, name}] {
			return nil, fmt.Errorf("service %s/%s has no endpoints record", ns, name)
		}
		return nil, fmt.Errorf("service %s/%s has no port %s", ns, name, backendPortString(port))
	}
	return v
}

// stale says whether a pooled connection to addr may lead somewhere next no longer sends
// requests: a ClusterIP:port one of whose endpoints left or lost rank (ready → serving
// while terminating → neither; kube-proxy may have pinned the connection to it), an
// endpoint the endpoints mode no longer picks (gone, not ready, or terminating while others
// are ready), or an address neither view knows. A new endpoint, or the same endpoints in
// another order, leaves connections as they are.
func (v *endpointsView) stale(next *endpointsView, addr string) bool {
	if old, ok := v.via[addr]; ok {
		now, ok := next.via[addr]
		if !ok {
			return true
		}
		for a, r := range old {
			if now[a] < r {
				return true
			}
		}
		return false
	}
	return !(v.picked[addr] && next.picked[addr])
}
