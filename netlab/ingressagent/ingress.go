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
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rawio"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
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
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
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
func RunIngress(ctx context.Context, cfg IngressConfig, log *slog.Logger) error {
	if cfg.Lab == "" || cfg.Node == "" {
		return errors.New("ingress agent: --lab and --node are required")
	}
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
		cfg.AccessLog = &cappedLog{f: os.Stdout, max: accessLogCap}
	}
	log = log.With("agent", "ingress", "node", cfg.Node)

	ca, err := LoadOrCreateCA(cfg.CADir, "netlab "+cfg.Lab+" CA")
	if err != nil {
		return fmt.Errorf("ingress agent: %w", err)
	}
	// What was loaded is published with the version of the plan file read (its stamp
	// taken before the read: a rewrite during it shows as another version).
	loaded := func(stamp rundir.Stamp, routes int) {
		if err := dir.WriteIngressLoaded(rundir.IngressLoaded{Node: cfg.Node, Plan: stamp.String(), Routes: routes, At: time.Now().UTC()}); err != nil {
			log.Warn("write ingress status", "err", err)
		}
	}
	stamp := rundir.FileStamp(cfg.Config)
	conf, err := loadIngressConf(cfg, ca, log)
	if err != nil {
		return err
	}
	loaded(stamp, len(conf.table.Routes()))
	// The listeners are bound, and the health and metrics port served, before the ingress
	// waits to be let go on: the LB's first checks (GET /healthz, or a TCP connect to a
	// proxy port, which the kernel accepts into the backlog) then find this node serving
	// while the pods start; the proxy ports are served once the endpoints are in place.
	srvCfg := cfg.Server
	srvCfg.Logger = log
	type server interface {
		Shutdown(context.Context) error
	}
	// The node's listeners: bound first, served (srv set) once their server is made.
	type listener struct {
		name string
		port int
		ln   net.Listener // nil when disabled
		srv  server       // nil until served
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
	bind := func(name string, port int) (net.Listener, error) {
		if port < 0 {
			return nil, nil
		}
		// No TCP keep-alive probes on client connections (four setsockopt calls per
		// accepted connection): net/http's idle and read timeouts close dead ones.
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(cfg.ListenIP, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("ingress agent: listen %s: %w", name, err)
		}
		return ln, nil
	}
	for i := range ls {
		ln, err := bind(ls[i].name, ls[i].port)
		if err != nil {
			closeAll()
			return err
		}
		ls[i].ln = ln
	}
	errc := make(chan error, len(ls))
	serve := func(i int, srv server, run func(net.Listener) error) {
		l := &ls[i]
		l.srv = srv
		go func(name string, ln net.Listener) {
			if err := run(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("ingress agent: serve %s: %w", name, err)
			}
		}(l.name, l.ln)
	}
	metrics := ingress.NewMetrics()
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	// Go's profiler on the metrics port (node namespace only), as ingress-nginx offers
	// with --profiling: `go tool pprof http://NODE_IP:10254/debug/pprof/profile?seconds=5`
	// from inside the node, under load, is how the data path was tuned (docs/performance.md).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	if ls[lMetrics].ln != nil {
		metricsSrv := srvCfg.HTTP("", mux)
		serve(lMetrics, metricsSrv, metricsSrv.Serve)
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
	epGen := rundir.FileStamp(epPath)
	h, err := ingress.NewHandler(ingress.Options{
		Node:            cfg.Node,
		Resolve:         conf.resolve,
		Endpoints:       loadEndpointsResolver(epPath, log),
		UpstreamTimeout: cfg.UpstreamTimeout,
		AccessLog:       cfg.AccessLog,
		Logger:          log,
		Metrics:         metrics,
		WrapUpstream:    rawio.Wrap, // raw socket calls (netlab/rawio)
		// Kept from start: changing it needs a restart of the agent.
		TrustForwardedHeaders: conf.trustFwd,
	}, conf.table)
	if err != nil {
		closeAll()
		return err
	}
	certs := ingress.NewCertSelector(conf.certs)

	// Plain-HTTP clients get the ingress's own HTTP/1 connection loop (PlainServer) on
	// raw socket calls (netlab/rawio); TLS (and h2) clients net/http's server.
	if ls[lHTTP].ln != nil {
		plainSrv := srvCfg.Plain(h)
		serve(lHTTP, plainSrv, func(ln net.Listener) error { return plainSrv.Serve(rawio.Listener(ln)) })
	}
	if ls[lHTTPS].ln != nil {
		tlsSrv := srvCfg.HTTPS("", h, certs.TLSConfig())
		serve(lHTTPS, tlsSrv, func(ln net.Listener) error { return tlsSrv.ServeTLS(ln, "", "") })
	}
	addr := func(i int) string {
		if ls[i].ln == nil {
			return ""
		}
		return ls[i].ln.Addr().String()
	}
	addrs := IngressAddrs{HTTP: addr(lHTTP), HTTPS: addr(lHTTPS), Metrics: addr(lMetrics)}
	log.Info("ingress serving", "http", addrs.HTTP, "https", addrs.HTTPS, "metrics", addrs.Metrics,
		"routes", len(conf.table.Routes()), "certificates", strings.Join(conf.certs.Names(), ","), "ca", filepath.Join(cfg.CADir, rundir.CACertFile))
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}
	// SIGHUP is caught before readiness is reported: one sent right after `up` reloads.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ready.Notify()
	reload := func() {
		stamp := rundir.FileStamp(cfg.Config)
		next, err := loadIngressConf(cfg, ca, log)
		if err != nil {
			log.Error("reload failed; keeping the current configuration", "error", err)
			return
		}
		certs.Swap(next.certs)
		h.ReloadWith(next.table, next.resolve)
		loaded(stamp, len(next.table.Routes()))
		log.Info("reloaded", "routes", len(next.table.Routes()), "certificates", strings.Join(next.certs.Names(), ","))
	}
	// Pooled upstream connections are pinned (by the node's conntrack) to the pod the
	// ClusterIP picked when they were opened. When the Service's endpoints change, drop the
	// idle ones, so no new request rides a connection to a pod that is gone or unreachable.
	epPoll := 100 * time.Millisecond
	if watch.Active() {
		epPoll = time.Second
	}
	epTick := time.NewTicker(epPoll)
	defer epTick.Stop()
	endpointsChanged := func() {
		if g := rundir.FileStamp(epPath); g != epGen {
			epGen = g
			h.SetEndpoints(loadEndpointsResolver(epPath, log))
			h.CloseIdleConnections()
			log.Info("endpoints changed: idle upstream connections closed")
		}
	}
	var err2 error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-watch.C:
			endpointsChanged()
		case <-epTick.C:
			endpointsChanged()
		case <-hup:
			reload()
		case <-cfg.Reload:
			reload()
		case err2 = <-errc:
			break loop
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, l := range ls {
		if l.srv != nil {
			_ = l.srv.Shutdown(shutdownCtx)
		}
	}
	h.Close()
	return err2
}

// accessLogCap bounds an agent's log file (it lives in /run, in memory): a benchmark's
// million requests must not fill it.
const accessLogCap = 64 << 20

// cappedLog writes to a log file opened for appending and empties it when it outgrows max;
// writers sharing the file (the agent's own log lines) go on at its new end.
type cappedLog struct {
	mu     sync.Mutex
	f      *os.File
	max    int64
	writes int
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
	return c.f.Write(b)
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
	p, err := rundir.ReadPlanFile(cfg.Config)
	if err != nil {
		return nil, err
	}
	var ings []ingress.Ingress
	order := map[string]int{}
	for _, in := range p.Ingresses {
		if in.Created != 0 {
			order[in.Namespace+"/"+in.Name] = in.Created
		}
		var obj ingress.Ingress
		if err := json.Unmarshal(in.Object, &obj); err != nil {
			return nil, fmt.Errorf("ingress %s/%s in %s: %w", in.Namespace, in.Name, cfg.Config, err)
		}
		if obj.Namespace == "" {
			obj.Namespace = in.Namespace
		}
		ings = append(ings, obj)
	}
	table, warns := ingress.BuildWith(ings, ingress.BuildOptions{ClassName: cfg.ClassName, Upstream: p.Ingress.Upstream,
		Classes: p.Ingress.Classes, IgnoreWithoutClass: p.Ingress.IgnoreWithoutClass, Order: order})
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

// loadEndpointsResolver reads the endpoints controller's file and returns the ready
// endpoints of every Service port, for routes in the endpoints upstream mode. As
// kube-proxy does, a Service port without a ready endpoint falls back to its serving,
// terminating ones. An unreadable file gives a resolver without endpoints (503) and is
// logged; the next change of the file is read again.
func loadEndpointsResolver(path string, log *slog.Logger) ingress.EndpointsResolver {
	var f kubeproxy.EndpointsFile
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("endpoints unreadable; endpoints-mode routes answer 503 until it is rewritten", "file", path, "error", err)
	}
	type key struct {
		ns, name, portName string
		port               int32
	}
	byKey := map[key]*ingress.Backends{}
	known := map[[2]string]bool{}
	for _, sp := range f.Ports {
		if !strings.EqualFold(sp.Protocol, "TCP") && sp.Protocol != "" {
			continue
		}
		known[[2]string{sp.Namespace, sp.Name}] = true
		var ready, terminating []string
		for _, e := range sp.Endpoints {
			a := net.JoinHostPort(e.IP, strconv.Itoa(int(e.Port)))
			switch {
			case e.Ready:
				ready = append(ready, a)
			case e.ServingTerminating():
				terminating = append(terminating, a)
			}
		}
		if len(ready) == 0 {
			ready = terminating
		}
		bk := &ingress.Backends{Addrs: ready}
		byKey[key{sp.Namespace, sp.Name, "", sp.Port}] = bk
		if sp.PortName != "" {
			byKey[key{sp.Namespace, sp.Name, sp.PortName, 0}] = bk
		}
	}
	return func(ns, name string, port ingress.ServiceBackendPort) (*ingress.Backends, error) {
		k := key{ns, name, port.Name, 0}
		if port.Name == "" {
			k.port = port.Number
		}
		if b := byKey[k]; b != nil {
			return b, nil
		}
		if !known[[2]string{ns, name}] {
			return nil, fmt.Errorf("service %s/%s has no endpoints record", ns, name)
		}
		return nil, fmt.Errorf("service %s/%s has no port %s", ns, name, backendPortString(port))
	}
}
