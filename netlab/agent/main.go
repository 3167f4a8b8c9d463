package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/netlabdev/netlab/netlab/ingressagent"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/privs"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// Roles are the agents Main runs: the whole of the netlab-agent binary (cmd/netlab-agent),
// and what `netlab agent <role>` hands to Main for them. It is supervise.AgentRoles, the
// list by which up and the supervisor choose that binary (a test holds them equal).
var Roles = []string{"kube-proxy", "controller", "lb", "dns", "supervisor", "ingress"}

// Main runs one agent from its command line, `agent <role> --lab LAB ...` (the words
// netlab up gives it after the binary's name), until SIGTERM or SIGINT, and returns the
// exit code: 2 for a bad command line, 1 for an agent that failed. An agent that lives in
// a lab namespace refuses to run anywhere else (a hand-started one must never touch the
// host's network) and keeps only the capabilities its role needs.
func Main(args []string, stderr io.Writer) int {
	name := filepath.Base(os.Args[0]) // netlab-agent, or netlab for `netlab agent <role>`
	if len(args) < 2 || args[0] != "agent" || !slices.Contains(Roles, args[1]) {
		fmt.Fprintf(stderr, "usage: %s agent {%s} --lab LAB ... (started by netlab up)\n", name, strings.Join(Roles, "|"))
		return 2
	}
	role := args[1]
	fs := flag.NewFlagSet(name+" agent "+role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lab, dir, node, pod string
	fs.StringVar(&lab, "lab", "", "lab name")
	if role != "lb" {
		fs.StringVar(&dir, "dir", "", "lab runtime directory (default /run/netlab/LAB)")
	}
	var run func(context.Context, *slog.Logger) error
	switch role {
	case "kube-proxy":
		fs.StringVar(&node, "node", "", "node name")
		run = func(ctx context.Context, log *slog.Logger) error {
			return RunKubeProxy(ctx, KubeProxyConfig{Lab: lab, Node: node, Dir: dir}, log)
		}
	case "controller":
		var cfg ControllerConfig
		fs.DurationVar(&cfg.Interval, "interval", 0, "probe interval (at most 500ms; default 250ms)")
		run = func(ctx context.Context, log *slog.Logger) error {
			cfg.Lab, cfg.Dir = lab, dir
			return RunController(ctx, cfg, log)
		}
	case "lb":
		var state string
		fs.StringVar(&state, "state", "", "state file (default: the lab's runtime directory)")
		run = func(ctx context.Context, log *slog.Logger) error {
			p, err := rundir.ForLab(lab).ReadPlanView(rundir.LBPlan)
			if err != nil {
				return err
			}
			cfg := LBConfig{Plan: p, StatePath: state}
			if cfg.StatePath == "" {
				cfg.StatePath = rundir.ForLab(lab).LBState()
			}
			return RunLB(ctx, cfg, log)
		}
	case "dns":
		var cfg DNSConfig
		fs.StringVar(&pod, "pod", "", "pod name")
		fs.StringVar(&cfg.Node, "node", "", "node name")
		fs.StringVar(&cfg.IP, "ip", "", "pod IP")
		fs.IntVar(&cfg.Port, "port", 53, "DNS port (UDP and TCP)")
		fs.IntVar(&cfg.ReadyPort, "ready-port", 8181, "readiness port (GET /ready)")
		run = func(ctx context.Context, log *slog.Logger) error {
			cfg.Lab, cfg.Pod, cfg.Dir = lab, pod, dir
			return RunDNS(ctx, cfg, log)
		}
	case "ingress":
		// A SIGHUP (apply's "read the plan again") that comes before the agent listens for
		// it must not end the agent, which is its default action: the first load reads the
		// plan as it is anyway.
		signal.Ignore(syscall.SIGHUP)
		var cfg ingressagent.IngressConfig
		var procs int
		fs.IntVar(&procs, "procs", 0, "Go processors for the proxy (GOMAXPROCS; default: the GOMAXPROCS environment variable, or half the CPUs, at least 1)")
		fs.StringVar(&node, "node", "", "node name")
		fs.StringVar(&cfg.Config, "config", "", "configuration file, re-read on SIGHUP (default DIR/plan.json)")
		fs.StringVar(&cfg.CADir, "ca-dir", "", "lab CA directory (default DIR/ca)")
		fs.StringVar(&cfg.ClassName, "class", "", "IngressClass served (default netlab)")
		fs.IntVar(&cfg.HTTPPort, "http-port", 0, "HTTP port (default 80)")
		fs.IntVar(&cfg.HTTPSPort, "https-port", 0, "HTTPS port (default 443)")
		fs.IntVar(&cfg.MetricsPort, "metrics-port", 0, "Prometheus metrics port (default 10254)")
		fs.DurationVar(&cfg.UpstreamTimeout, "upstream-timeout", 0, "wait for an upstream's response headers before 504 (default 30s)")
		var workers string
		var worker int
		fs.StringVar(&workers, "workers", "", "worker processes serving the node's proxy ports, each on one Go processor: a number from 1 to 64, or auto (one per CPU); default 1")
		fs.IntVar(&worker, "worker", 0, "internal: this process is worker N of the node's ingress, started by its agent with a control connection on descriptor 3")
		run = func(ctx context.Context, log *slog.Logger) error {
			n, err := ingressagent.ParseWorkers(workers)
			if err != nil {
				return err
			}
			runtime.GOMAXPROCS(ingressagent.WorkerProcs(procs, max(n, worker)))
			cfg.Lab, cfg.Node, cfg.Dir, cfg.Workers = lab, node, dir, n
			if worker > 0 {
				ctl, err := net.FileConn(os.NewFile(3, "ingress-control"))
				if err != nil {
					return fmt.Errorf("ingress worker %d: control connection: %w", worker, err)
				}
				return ingressagent.RunIngressWorker(ctx, cfg, worker, ctl, log)
			}
			return ingressagent.RunIngress(ctx, cfg, log)
		}
	case "supervisor":
		run = func(ctx context.Context, log *slog.Logger) error {
			if err := plan.CheckLabName(lab); err != nil {
				return err
			}
			return supervise.Run(ctx, supervise.Config{Lab: lab, Dir: rundir.Resolve(lab, dir)}, log, NotifyReady)
		}
	}
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: agent %s: unexpected arguments %q\n", name, role, fs.Args())
		return 2
	}
	// Where the agent must run: its lab object's namespace; the controller and the
	// supervisor live in the root namespace and change nothing there.
	object := map[string]string{"kube-proxy": node, "lb": "lb", "dns": pod, "ingress": node}[role]
	if _, inNetns := map[string]bool{"kube-proxy": true, "lb": true, "dns": true, "ingress": true}[role]; inNetns {
		ns := plan.NetnsName(lab, object)
		if lab == "" || object == "" || !kernel.InNetns(ns) {
			fmt.Fprintf(stderr, "%s: agent %s must run inside namespace %s (netlab up starts it there)\n", name, role, ns)
			return 1
		}
		if err := Confine([]string{"agent", role}); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
	}
	// An ingress agent writes its log beside its access lines, to its standard output: its
	// standard error is the Go runtime's (a file of its own; see supervise.IngressGODEBUG).
	logOut := stderr
	if role == "ingress" {
		logOut = os.Stdout
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	log := Logger(logOut)
	if err := run(ctx, log); err != nil {
		if role == "ingress" {
			log.Error("agent failed", "error", err.Error()) // the log stays JSON lines
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return 1
	}
	return 0
}

// Confine leaves an agent inside a lab namespace only the capabilities its role needs
// (privs.ForAgent of args, its command line from "agent"), with NoNewPrivs. netlab starts
// it already confined to them; started any other way, it executes itself again, keeping
// its readiness and hold pipes, to get there.
func Confine(args []string) error {
	keep, restrict := privs.ForAgent(args)
	if !restrict {
		return nil
	}
	var fds []int
	if fd, err := strconv.Atoi(os.Getenv(ReadyFDEnv)); err == nil && fd >= 3 {
		fds = append(fds, fd)
	}
	if fd := ready.HoldFD(); fd >= 0 {
		fds = append(fds, fd)
	}
	if err := privs.Restrict(keep, ready.ExecEnv(os.Environ()), fds...); err != nil {
		return fmt.Errorf("agent %s: drop privileges: %w", args[1], err)
	}
	return nil
}

// Logger writes JSON lines to w (the agent's log file); durations are written as Go
// durations ("1.5s"), not nanoseconds, so the log reads as it is.
func Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}}))
}
