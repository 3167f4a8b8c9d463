package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// RunDir holds every lab's runtime files, root-only.
const RunDir = "/run/netlab"

// EtcNetns is where `ip netns exec` finds per-namespace /etc files.
const EtcNetns = "/etc/netns"

// Dir is a lab's runtime directory.
func Dir(lab string) string { return filepath.Join(RunDir, lab) }

// PlanPath is where up keeps the lab's plan for agents, status and inspection.
func PlanPath(lab string) string { return filepath.Join(Dir(lab), "plan.json") }

// LogRoot holds every lab's agent logs, one directory per lab. They outlive the lab's
// runtime directory: down leaves them for `netlab logs` and `netlab export logs`, the next
// up of that name (or `down --purge`) removes them. Beside Root, not in it, so that no
// log directory is taken for a lab; in /run, in memory where /run is a tmpfs, as the
// runtime files (an ingress writes a line per request).
const LogRoot = supervise.LogRoot

// LogDir holds a lab's agent logs and the scenario it came from.
func LogDir(lab string) string { return supervise.LogDir(lab) }

// LogPath is an agent's log file.
func LogPath(lab, role, name string) string { return supervise.LogPath(LogDir(lab), role, name) }

// LockPath is the lock file up, down and drills hold while they change a lab.
func LockPath(lab string) string { return supervise.LockPath(RunDir, lab) }

// LeavingPath marks a pod whose termination is graceful (apply, scale, rollout): its
// agent, on SIGTERM, keeps serving until killed instead of exiting.
func LeavingPath(lab, pod string) string { return filepath.Join(Dir(lab), "leaving", pod) }

// Leaving says whether pod of lab is being terminated gracefully.
func Leaving(lab, pod string) bool {
	_, err := os.Stat(LeavingPath(lab, pod))
	return err == nil
}

// EndpointsFileName is the endpoints controller's output in the lab's runtime directory:
// every Service port with its endpoints and their readiness, as kube-proxy reads them.
const EndpointsFileName = "endpoints.json"

// EndpointsPath is where the controller of lab writes the endpoints.
func EndpointsPath(lab string) string { return filepath.Join(Dir(lab), EndpointsFileName) }

// ReadEndpoints reads an endpoints file written by the controller.
func ReadEndpoints(path string) (*kubeproxy.EndpointsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read endpoints: %w", err)
	}
	var f kubeproxy.EndpointsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &f, nil
}

// ErrNoLab is returned when no lab of that name is up.
var ErrNoLab = errors.New("no such lab")

// ErrAmbiguous is returned when no name was given and several labs are up.
var ErrAmbiguous = errors.New("say which with --name")

// LoadPlan reads the plan a running lab was built from.
func LoadPlan(lab string) (*plan.Plan, error) {
	p, err := ReadPlan(PlanPath(lab))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: %w", lab, ErrNoLab)
	}
	return p, err
}

// ReadPlan reads a plan file.
func ReadPlan(path string) (*plan.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var p plan.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &p, nil
}

// Labs lists the labs that have anything on this machine: a namespace or a runtime dir.
func Labs() ([]string, error) {
	seen := map[string]bool{}
	nss, err := kernel.ListNetns("nl-")
	if err != nil {
		return nil, err
	}
	for _, ns := range nss {
		if !netnsNameRE.MatchString(ns) {
			continue
		}
		if lab, _, ok := strings.Cut(strings.TrimPrefix(ns, "nl-"), "-"); ok {
			seen[lab] = true
		}
	}
	ents, _ := os.ReadDir(RunDir)
	for _, e := range ents {
		if e.IsDir() {
			seen[e.Name()] = true
		}
	}
	out := make([]string, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	sort.Strings(out)
	return out, nil
}

// Resolve picks the lab a command means: the given name, else the only lab that is up.
func Resolve(name string) (string, error) {
	if name != "" {
		// Every verb's lab name becomes a path and a namespace prefix: checked here.
		if err := plan.CheckLabName(name); err != nil {
			return "", err
		}
		return name, nil
	}
	labs, err := Labs()
	if err != nil {
		return "", err
	}
	switch len(labs) {
	case 0:
		return "", fmt.Errorf("no lab is up (netlab up starts one): %w", ErrNoLab)
	case 1:
		return labs[0], nil
	default:
		return "", fmt.Errorf("%d labs are up (%s): %w", len(labs), strings.Join(labs, ", "), ErrAmbiguous)
	}
}

// lock serialises up and down of one lab across processes.
type lock struct{ f *os.File }

func lockLab(lab string) (*lock, error) {
	if err := os.MkdirAll(RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", RunDir, err)
	}
	path := LockPath(lab)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lab %s: %w", lab, err)
	}
	// A down that held the lock may have removed the file while we waited: our lock is
	// then on an orphan inode, and a newcomer could lock a new file. Lock what is there.
	var held, now syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &held) != nil || syscall.Stat(path, &now) != nil || held.Ino != now.Ino {
		f.Close()
		return lockLab(lab)
	}
	return &lock{f: f}, nil
}

// unlock releases the lock; with remove it also deletes the lock file (after down) and
// /run/netlab when nothing else is in it.
func (l *lock) unlock(remove bool) {
	if remove {
		os.Remove(l.f.Name())
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	if remove {
		os.Remove(RunDir) // only succeeds when empty
	}
}

// LBStatePath is where the lab's lb agent publishes its state.
func LBStatePath(lab string) string { return filepath.Join(Dir(lab), lb.StateFile) }

// Hint is a netlab command line for the user to run next, e.g. Hint("demo", "logs
// ingress node-1"): it carries --name when the lab is not the only one up, so it works
// as printed.
func Hint(lab, command string) string {
	verb, rest, _ := strings.Cut(command, " ")
	if labs, err := Labs(); err == nil && len(labs) == 1 && labs[0] == lab {
		return "netlab " + command
	}
	return strings.TrimSpace("netlab " + verb + " --name " + lab + " " + rest)
}
