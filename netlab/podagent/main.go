package podagent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/netlabdev/netlab/netlab/privs"
	"github.com/netlabdev/netlab/netlab/ready"
)

// The layout this binary relies on, kept equal to package rundir's and plan's by a test:
// it does not import them, so that a pod's process initialises only the standard library.
const (
	runRoot  = "/run/netlab" // rundir.Root
	leaving  = "leaving"     // rundir.LeavingDir
	netnsDir = "/run/netns"  // where ip netns (and netlab) mount named namespaces
)

// NetnsName is the namespace pod of lab lives in (plan.NetnsName).
func NetnsName(lab, pod string) string { return "nl-" + lab + "-" + pod }

// LeavingMark is the file that marks pod as being terminated gracefully in the lab's
// runtime directory dir (rundir's Leaving).
func LeavingMark(dir, pod string) string { return filepath.Join(dir, leaving, pod) }

// DefaultDir is a lab's runtime directory (rundir.ForLab(lab).Path()).
func DefaultDir(lab string) string { return filepath.Join(runRoot, lab) }

// Main is the netlab-pod command: the pod echo agent, started by `netlab up` inside the
// pod's namespace as `netlab-pod agent pod --lab L --pod P --node N --ip IP --port 8080/TCP
// ...` (the words "agent pod" are optional: they keep the command line the same as
// `netlab agent pod`, by which down and status recognise a lab's agents). It returns the
// exit code.
func Main(args []string, stderr io.Writer) int {
	if len(args) >= 2 && args[0] == "agent" && args[1] == "pod" {
		args = args[2:]
	}
	fs := flag.NewFlagSet("netlab-pod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var dir string
	var ports portFlags
	fs.StringVar(&cfg.Lab, "lab", "", "lab name")
	fs.StringVar(&cfg.Pod, "pod", "", "pod name")
	fs.StringVar(&cfg.Node, "node", "", "node name")
	fs.StringVar(&cfg.IP, "ip", "", "pod IP")
	fs.StringVar(&dir, "dir", "", "lab runtime directory (default /run/netlab/LAB)")
	fs.Var(&ports, "port", "PORT/PROTO to serve (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: netlab-pod [agent pod] --lab LAB --pod POD --node NODE --ip IP --port PORT/PROTO... (started by netlab up inside the pod's namespace)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if cfg.Lab == "" {
		problems = append(problems, "--lab is required")
	}
	if cfg.Pod == "" {
		problems = append(problems, "--pod is required")
	}
	if len(ports) == 0 {
		problems = append(problems, "at least one --port is required")
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "netlab-pod: %s\n", strings.Join(problems, "; "))
		return 2
	}
	// The agent listens on every address of the namespace it runs in: it refuses to run
	// anywhere but its pod's, so a hand-started one never serves on the host.
	ns := NetnsName(cfg.Lab, cfg.Pod)
	if !inNetns(ns) {
		fmt.Fprintf(stderr, "netlab-pod: agent pod must run inside namespace %s (netlab up starts it there)\n", ns)
		return 1
	}
	// Only the capabilities a pod needs (none; binding a port below 1024, that one), and
	// NoNewPrivs, as every agent in a lab namespace: the echo parses what clients send.
	// netlab starts it already confined to them (privs.ForAgent, asked with the same
	// command line); started any other way, it executes itself again, with the same
	// arguments, pid and readiness pipe, to get there.
	podArgs := []string{"agent", "pod"}
	for _, ps := range ports {
		podArgs = append(podArgs, "--port", strconv.Itoa(ps.Port)+"/"+ps.Protocol)
	}
	keep, _ := privs.ForAgent(podArgs)
	var fds []int
	if fd, err := strconv.Atoi(os.Getenv(ready.FDEnv)); err == nil && fd >= 3 {
		fds = append(fds, fd)
	}
	if err := privs.Restrict(keep, ready.ExecEnv(os.Environ()), fds...); err != nil {
		fmt.Fprintf(stderr, "netlab-pod: drop privileges: %v\n", err)
		return 1
	}
	if dir == "" {
		dir = DefaultDir(cfg.Lab)
	}
	cfg.Ports = ports
	cfg.ExitAtOnce = true // Main's caller exits when it returns
	// A graceful termination (apply, scale, rollout) marks the pod leaving before its
	// SIGTERM; any other SIGTERM (down, pod kill) ends the agent at once.
	mark := LeavingMark(dir, cfg.Pod)
	cfg.Leaving = func() bool { _, err := os.Stat(mark); return err == nil }
	killed := make(chan struct{})
	sigint := make(chan os.Signal, 1)
	signal.Notify(sigint, syscall.SIGINT)
	go func() { <-sigint; close(killed) }()
	cfg.Killed = killed
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := Run(ctx, cfg, Logger(stderr)); err != nil {
		fmt.Fprintf(stderr, "netlab-pod: %v\n", err)
		return 1
	}
	return 0
}

// Logger writes JSON lines (the agent's log file), durations as Go durations ("1.5s"),
// as every netlab agent does.
func Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}}))
}

type portFlags []PortSpec

func (p *portFlags) String() string { return fmt.Sprint(*p) }

func (p *portFlags) Set(s string) error {
	ps, err := ParsePortSpec(s)
	if err != nil {
		return err
	}
	*p = append(*p, ps)
	return nil
}

// inNetns says whether this process lives in the named namespace.
func inNetns(name string) bool {
	self, err1 := nsID("/proc/self/ns/net")
	want, err2 := nsID(filepath.Join(netnsDir, name))
	return err1 == nil && err2 == nil && self == want
}

func nsID(path string) ([2]uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return [2]uint64{}, err
	}
	if st.Ino == 0 {
		return [2]uint64{}, errors.New("no inode")
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, nil
}
