package ingressagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
	"golang.org/x/sys/unix"
)

// A node's ingress with several workers is nginx's model: worker processes, each on one Go
// processor, each with listeners of its own on the node's proxy ports (SO_REUSEPORT: the
// kernel spreads the connections over them), and a supervisor. The node's ingress agent is
// worker 1 and the supervisor: it starts workers 2..N as children, each with a control
// connection (a Unix socket pair, descriptor 3 in the child), over which it talks JSON
// lines with them:
//
//	to a worker:   serve (bind the ports and serve), reload (read the plan again),
//	               metrics (send a snapshot of the counts)
//	from a worker: loaded (the plan version it now routes by), serving, metrics
//
// A worker ends when its control connection does (its supervisor is gone: the parent-death
// signal says the same), and the supervisor starts a worker that ends again. The node's
// stamp (rundir.IngressLoaded, which apply waits for) is written once every worker has
// loaded the same plan version; /metrics sums every worker's counts; /healthz says 503
// while a worker that should serve does not. Access-log lines go to the one log file that
// every worker has as its output, opened for appending: each write is whole lines.

// Control operations.
const (
	opServe   = "serve"
	opReload  = "reload"
	opMetrics = "metrics"
	opLoaded  = "loaded"
	opServing = "serving"
)

// ctlMsg is one line on a control connection.
type ctlMsg struct {
	Op string `json:"op"`
	// serve: where to listen (the supervisor's listen address, and the ports it bound;
	// 0 for a port not served).
	Listen string `json:"listen,omitempty"`
	HTTP   int    `json:"http,omitempty"`
	HTTPS  int    `json:"https,omitempty"`
	// CPU, when set, is the CPU the worker runs on (cpus.go); each worker gets its own.
	CPU *int `json:"cpu,omitempty"`
	// loaded: the plan version (rundir.Stamp.String) and its number of routes, or why it
	// could not be loaded.
	Plan   string `json:"plan,omitempty"`
	Routes int    `json:"routes,omitempty"`
	Error  string `json:"error,omitempty"`
	// metrics: the worker's counts.
	Metrics *ingress.MetricsSnapshot `json:"metrics,omitempty"`
}

// ctlConn is one end of a control connection: whole lines out, one writer at a time.
type ctlConn struct {
	c   net.Conn
	mu  sync.Mutex
	enc *json.Encoder
	dec *json.Decoder
}

func newCtlConn(c net.Conn) *ctlConn {
	return &ctlConn{c: c, enc: json.NewEncoder(c), dec: json.NewDecoder(c)}
}

// ctlWriteLimit bounds a write on a control connection (a peer that stopped reading).
const ctlWriteLimit = 5 * time.Second

func (c *ctlConn) send(m ctlMsg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(ctlWriteLimit))
	return c.enc.Encode(m)
}

func (c *ctlConn) recv() (ctlMsg, error) {
	var m ctlMsg
	err := c.dec.Decode(&m)
	return m, err
}

// ParseWorkers reads the --workers value: a number from 1 to 64, or "auto" for one per
// CPU this process may run on; "" is 1.
func ParseWorkers(v string) (int, error) {
	switch v {
	case "":
		return 1, nil
	case "auto":
		return max(1, runtime.NumCPU()), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 64 {
		return 0, fmt.Errorf("--workers: must be a number from 1 to 64 or \"auto\", got %q", v)
	}
	return n, nil
}

// WorkerProcs is the GOMAXPROCS of an ingress process: IngressProcs(n), except that a
// node's ingress with several workers runs each on one Go processor unless told otherwise
// (flag, or the GOMAXPROCS environment variable), as nginx's workers are single-threaded.
func WorkerProcs(n, workers int) int {
	if n <= 0 && workers > 1 && os.Getenv("GOMAXPROCS") == "" {
		return 1
	}
	return IngressProcs(n)
}

// workerGroup is the supervisor's side: workers 2..n, their state, the node's stamp.
type workerGroup struct {
	cfg     IngressConfig
	dir     rundir.Dir
	n       int
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	command func(i int) *exec.Cmd
	cpus    []int // worker i's CPU is cpus[i-1] (cpus.go); nil: none pinned
	allowed []int // with cpus: the CPUs this process may run on, a worker's before its pin

	mu       sync.Mutex
	changed  chan struct{} // closed (and replaced) at every change of a worker's state
	procs    map[int]*workerProc
	plans    map[int]loadedPlan // what each worker (1..n) last loaded; gone while it is down
	written  string             // the plan version last written as the node's stamp
	serveMsg *ctlMsg            // the serve order, once the node serves
	// retired holds the counts of the workers that ended (each one's last snapshot):
	// the node's counters never go back when a worker ends and its successor starts from 0.
	retired *ingress.Metrics
}

type loadedPlan struct {
	plan   string
	routes int
	err    string // the load failed: the worker routes by the version before
}

// workerProc is one running worker.
type workerProc struct {
	i       int
	pid     int
	ctl     *ctlConn
	serving bool
	last    ingress.MetricsSnapshot // its latest counts (g.mu): the answers and the pushes
	scrape  sync.Mutex              // one metrics request at a time
	metrics chan struct{}           // an answer came
	done    chan struct{}           // closed when its control connection ends
}

// startWorkers starts workers 2..cfg.Workers and keeps them running until ctx ends or
// stop is called.
func startWorkers(ctx context.Context, cfg IngressConfig, dir rundir.Dir, cpus, allowed []int, log *slog.Logger) *workerGroup {
	g := &workerGroup{cfg: cfg, dir: dir, n: cfg.Workers, log: log, command: cfg.WorkerCommand, cpus: cpus, allowed: allowed,
		changed: make(chan struct{}), procs: map[int]*workerProc{}, plans: map[int]loadedPlan{}, retired: ingress.NewMetrics()}
	if g.command == nil {
		g.command = defaultWorkerCommand
	}
	g.ctx, g.cancel = context.WithCancel(ctx)
	for i := 2; i <= g.n; i++ {
		g.wg.Add(1)
		go g.keep(i)
	}
	return g
}

// defaultWorkerCommand is this program, with this process's arguments and --worker i;
// its output is this process's (the agent's log file, opened for appending).
func defaultWorkerCommand(i int) *exec.Cmd {
	return &exec.Cmd{Path: selfExe(), Args: append(slices.Clone(os.Args), "--worker", strconv.Itoa(i)),
		Stdout: os.Stdout, Stderr: os.Stderr}
}

// selfExe is this program's path while it is the file this process runs (so that the
// worker's name in ps and top is the agent's), else /proc/self/exe: a binary rebuilt or
// removed since the agent started is not started beside it.
func selfExe() string {
	if p, err := os.Executable(); err == nil {
		a, err1 := os.Stat(p)
		b, err2 := os.Stat("/proc/self/exe")
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			return p
		}
	}
	return "/proc/self/exe"
}

// changedLocked wakes whoever waits for a change; g.mu is held.
func (g *workerGroup) changedLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// keep runs worker i, and runs it again when it ends, until the group stops. A worker
// that keeps ending is started again after a growing pause (0.1 s to 5 s).
func (g *workerGroup) keep(i int) {
	defer g.wg.Done()
	const first, most = 100 * time.Millisecond, 5 * time.Second
	pause := first
	for g.ctx.Err() == nil {
		began := time.Now()
		w, cmd, err := g.spawn(i)
		if err == nil && g.ctx.Err() != nil {
			_ = w.ctl.c.Close() // the group stopped while it started: EOF ends it
		}
		if err == nil {
			g.attach(w)
			g.follow(w)
			err = cmd.Wait()
			g.detach(w)
		}
		if g.ctx.Err() != nil {
			return
		}
		if time.Since(began) > 10*time.Second {
			pause = first
		}
		pid := 0
		if w != nil {
			pid = w.pid
		}
		g.log.Error("ingress worker ended; starting it again", "worker", i, "pid", pid, "error", errString(err), "in", pause.String())
		select {
		case <-g.ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, most)
	}
}

func errString(err error) string {
	if err == nil {
		return "exited"
	}
	return err.Error()
}

// spawn starts worker i with its end of a new control connection as descriptor 3.
func (g *workerGroup) spawn(i int) (*workerProc, *exec.Cmd, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "ingress-control"), os.NewFile(uintptr(fds[1]), "ingress-control")
	defer theirs.Close()
	defer mine.Close()
	cmd := g.command(i)
	cmd.ExtraFiles = []*os.File{theirs}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A worker ends with its supervisor, even one killed (its control connection's end
	// says the same; this is the second way).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	// The readiness and hold pipes are the supervisor's.
	cmd.Env = slices.DeleteFunc(cmd.Env, func(e string) bool {
		return strings.HasPrefix(e, ready.FDEnv+"=") || strings.HasPrefix(e, ready.HoldFDEnv+"=")
	})
	// With pinned workers, a worker begins on every CPU this process may run on (worker
	// 1's threads, one of which starts it, are on worker 1's) and takes its own when told
	// to serve.
	var on []int
	g.mu.Lock()
	if len(g.cpus) > 0 {
		on = g.allowed
	}
	g.mu.Unlock()
	if err := startOn(cmd, on); err != nil {
		return nil, nil, fmt.Errorf("start worker %d: %w", i, err)
	}
	c, err := net.FileConn(mine)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	return &workerProc{i: i, pid: cmd.Process.Pid, ctl: newCtlConn(c), metrics: make(chan struct{}, 1), done: make(chan struct{})}, cmd, nil
}

// attach records a started worker; once the node serves, it is told to serve too.
func (g *workerGroup) attach(w *workerProc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.procs[w.i] = w
	if g.ctx.Err() != nil {
		_ = w.ctl.c.Close() // stop closed the others' before this one was here
	}
	if g.serveMsg != nil {
		_ = w.ctl.send(g.serveFor(w.i))
	}
	g.changedLocked()
}

// detach forgets an ended worker and what it had loaded.
func (g *workerGroup) detach(w *workerProc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.procs[w.i] == w {
		delete(g.procs, w.i)
		delete(g.plans, w.i)
		_ = g.retired.Add(w.last)
		w.last = ingress.MetricsSnapshot{}
	}
	g.changedLocked()
}

// follow reads worker w's messages until its control connection ends.
func (g *workerGroup) follow(w *workerProc) {
	defer close(w.done)
	defer w.ctl.c.Close()
	for {
		m, err := w.ctl.recv()
		if err != nil {
			return
		}
		switch m.Op {
		case opLoaded:
			g.loaded(w.i, loadedPlan{m.Plan, m.Routes, m.Error})
		case opServing:
			g.mu.Lock()
			w.serving = true
			g.changedLocked()
			g.mu.Unlock()
		case opMetrics: // an answer, or the worker's own push every second
			if m.Metrics != nil {
				g.mu.Lock()
				if g.procs[w.i] == w {
					w.last = *m.Metrics
				}
				g.mu.Unlock()
				select {
				case w.metrics <- struct{}{}:
				default:
				}
			}
		}
	}
}

// loaded records that worker i read plan version lp.plan, and writes the node's stamp
// once every worker has read the same version (with the first error, if one could not
// load it). A worker that reports another version than worker 1's, while worker 1's is
// the file's as it is now, is told to read it again: one that started while a reload was
// sent, before it was attached, would miss it.
func (g *workerGroup) loaded(i int, lp loadedPlan) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.plans[i] = lp
	g.changedLocked()
	if p1, ok := g.plans[1]; ok && i != 1 && lp.plan != p1.plan && p1.plan == rundir.FileStamp(g.cfg.Config).String() {
		if w := g.procs[i]; w != nil {
			_ = w.ctl.send(ctlMsg{Op: opReload})
		}
	}
	if len(g.plans) < g.n {
		return
	}
	first := g.plans[1]
	var errs []string
	for _, p := range g.plans {
		if p.plan != first.plan {
			return
		}
		if p.err != "" && !slices.Contains(errs, p.err) {
			errs = append(errs, p.err)
		}
	}
	st := rundir.IngressLoaded{Node: g.cfg.Node, Plan: first.plan, Routes: first.routes, Error: strings.Join(errs, "; ")}
	if key := st.Plan + "\x00" + st.Error; key != g.written {
		st.At = time.Now().UTC()
		if err := g.dir.WriteIngressLoaded(st); err != nil {
			g.log.Warn("write ingress status", "err", err)
			return
		}
		g.written = key
	}
}

// release tells every worker to serve on the ports the supervisor bound (and every
// worker started later), and waits until all of them serve, at most limit.
func (g *workerGroup) release(ctx context.Context, serve ctlMsg, limit time.Duration) {
	g.mu.Lock()
	g.serveMsg = &serve
	for _, w := range g.procs {
		_ = w.ctl.send(g.serveFor(w.i))
	}
	g.mu.Unlock()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		missing := g.notServingLocked()
		ch := g.changed
		g.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-deadline.C:
			g.log.Warn("ingress workers not serving yet", "workers", fmt.Sprint(missing), "after", limit.String())
			return
		}
	}
}

// unpin leaves every worker on every CPU: worker 1 could not be pinned, and a node half
// pinned would send the connections handled on worker 1's CPU to any worker.
func (g *workerGroup) unpin() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cpus = nil
}

// serveFor is the serve order for worker i: the node's, with worker i's CPU; g.mu is held
// and the node serves.
func (g *workerGroup) serveFor(i int) ctlMsg {
	m := *g.serveMsg
	if i-1 < len(g.cpus) {
		cpu := g.cpus[i-1]
		m.CPU = &cpu
	}
	return m
}

// notServingLocked lists the workers (2..n) that do not serve; g.mu is held.
func (g *workerGroup) notServingLocked() []int {
	var out []int
	for i := 2; i <= g.n; i++ {
		if w := g.procs[i]; w == nil || !w.serving {
			out = append(out, i)
		}
	}
	return out
}

// unhealthy says why the node's ingress is not healthy ("" when it is): once it serves,
// every worker must.
func (g *workerGroup) unhealthy() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.serveMsg == nil {
		return ""
	}
	if missing := g.notServingLocked(); len(missing) > 0 {
		return fmt.Sprintf("ingress workers %v of %d not serving", missing, g.n)
	}
	return ""
}

// reload tells every running worker to read the plan again.
func (g *workerGroup) reload() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.procs {
		_ = w.ctl.send(ctlMsg{Op: opReload})
	}
}

// scrapeLimit bounds the wait for a worker's metrics.
const scrapeLimit = 2 * time.Second

// snapshots asks every running worker for its counts and returns what the node counted
// besides worker 1: the ended workers' counts and every running worker's latest (its
// answer, or its last push when it does not answer in time). Each worker's counts are in
// one place at a time (running, or retired when it ends), so the node's sum never goes back.
func (g *workerGroup) snapshots() []ingress.MetricsSnapshot {
	g.mu.Lock()
	ws := make([]*workerProc, 0, len(g.procs))
	for _, w := range g.procs {
		ws = append(ws, w)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.scrape.Lock()
			defer w.scrape.Unlock()
			select {
			case <-w.metrics: // a push, or a late answer to an earlier scrape
			default:
			}
			if w.ctl.send(ctlMsg{Op: opMetrics}) != nil {
				return
			}
			t := time.NewTimer(scrapeLimit)
			defer t.Stop()
			select {
			case <-w.metrics:
			case <-w.done:
			case <-t.C:
				g.log.Warn("ingress worker sent no metrics; its last counts are served", "worker", w.i, "after", scrapeLimit.String())
			}
		}()
	}
	wg.Wait()
	return g.counted()
}

// counted is what the node counted besides worker 1: the ended workers' counts and every
// running worker's latest.
func (g *workerGroup) counted() []ingress.MetricsSnapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []ingress.MetricsSnapshot{g.retired.Snapshot()}
	for _, w := range g.procs {
		out = append(out, w.last)
	}
	return out
}

// tellStop tells every worker to end (their control connections close; a worker being
// started is closed as it is attached) and starts no other.
func (g *workerGroup) tellStop() {
	g.cancel()
	g.mu.Lock()
	for _, w := range g.procs {
		_ = w.ctl.c.Close()
	}
	g.mu.Unlock()
}

// stopLimit bounds the wait for the workers' end: longer than their own drain (5 s).
const stopLimit = 7 * time.Second

// stop ends every worker and waits for them; one still there after stopLimit is killed.
func (g *workerGroup) stop() {
	g.tellStop()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(stopLimit):
	}
	g.mu.Lock()
	for _, w := range g.procs {
		_ = syscall.Kill(w.pid, syscall.SIGKILL)
	}
	g.mu.Unlock()
	<-done
}

// RunIngressWorker is worker i (2..N) of a node's ingress, started by the node's ingress
// agent (RunIngress with Workers above one) with ctl, its control connection. It loads
// the plan, says so, and when told to serve binds the proxy ports (SO_REUSEPORT) and serves
// them as worker 1 does: reloads when told, follows the endpoints itself, and answers
// metrics requests with its counts. It ends when ctx or its control connection ends.
func RunIngressWorker(ctx context.Context, cfg IngressConfig, i int, ctl net.Conn, log *slog.Logger) error {
	if cfg.Lab == "" || cfg.Node == "" {
		return errors.New("ingress worker: --lab and --node are required")
	}
	cfg, dir := ingressDefaults(cfg)
	log = log.With("agent", "ingress", "node", cfg.Node, "worker", i)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := newCtlConn(ctl)
	defer ctl.Close()

	ca, err := LoadOrCreateCA(cfg.CADir, "netlab "+cfg.Lab+" CA")
	if err != nil {
		return fmt.Errorf("ingress worker: %w", err)
	}
	loaded := func(stamp rundir.Stamp, routes int, lerr error) {
		if err := c.send(ctlMsg{Op: opLoaded, Plan: stamp.String(), Routes: routes, Error: errText(lerr)}); err != nil {
			log.Warn("tell the supervisor", "error", err)
		}
	}
	stamp := rundir.FileStamp(cfg.Config)
	conf, err := loadIngressConf(cfg, ca, log)
	if err != nil {
		loaded(stamp, 0, err)
		return err
	}
	loaded(stamp, len(conf.table.Routes()), nil)
	metrics := ingress.NewMetrics()
	ops := make(chan ctlMsg, 8)
	go func() {
		defer cancel() // the supervisor is gone
		for {
			m, err := c.recv()
			if err != nil {
				return
			}
			if m.Op == opMetrics {
				s := metrics.Snapshot()
				_ = c.send(ctlMsg{Op: opMetrics, Metrics: &s})
				continue
			}
			select {
			case ops <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	// Until told to serve: reloads as told.
	var serve ctlMsg
wait:
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ops:
			switch m.Op {
			case opReload:
				stamp := rundir.FileStamp(cfg.Config)
				next, err := loadIngressConf(cfg, ca, log)
				if err != nil {
					log.Error("reload failed; keeping the current configuration", "error", err)
					loaded(stamp, 0, err)
					continue
				}
				conf = next
				loaded(stamp, len(conf.table.Routes()), nil)
			case opServe:
				serve = m
				break wait
			}
		}
	}
	port := func(p int) int {
		if p == 0 {
			return -1
		}
		return p
	}
	httpLn, err := bindPort("http", serve.Listen, port(serve.HTTP), true)
	if err != nil {
		return err
	}
	httpsLn, err := bindPort("https", serve.Listen, port(serve.HTTPS), true)
	if err != nil {
		if httpLn != nil {
			httpLn.Close()
		}
		return err
	}
	if serve.CPU != nil {
		undo, err := pinWorker(*serve.CPU, httpLn, httpsLn)
		if err != nil {
			log.Warn("serving on any CPU", "error", err)
			serve.CPU = nil
		}
		defer undo()
	}
	epPath := dir.Endpoints()
	watch := rundir.Watch(ctx, filepath.Dir(epPath), filepath.Base(epPath))
	px, err := newProxy(cfg, ca, conf, metrics, i, epPath, watch, loaded, log)
	if err != nil {
		for _, ln := range []net.Listener{httpLn, httpsLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return err
	}
	srvCfg := cfg.Server
	srvCfg.Logger = log
	errc := make(chan error, 2)
	px.serve(srvCfg, httpLn, httpsLn, errc)
	if err := c.send(ctlMsg{Op: opServing}); err != nil {
		log.Warn("tell the supervisor", "error", err)
	}
	log.Info("ingress worker serving", "pid", os.Getpid(), "http", serve.HTTP, "https", serve.HTTPS, "cpu", cpuText(serve.CPU))
	reloads := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-ops:
				if m.Op != opReload {
					continue
				}
				select {
				case reloads <- struct{}{}:
				default:
				}
			}
		}
	}()
	// The counts go to the supervisor every second too: it serves them if this worker is
	// slow to answer a scrape, and keeps them when it ends.
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s := metrics.Snapshot()
				_ = c.send(ctlMsg{Op: opMetrics, Metrics: &s})
			}
		}
	}()
	err = px.run(ctx, nil, reloads, func() {}, errc)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	px.shutdown(shutdownCtx)
	return err
}
