package rundir

import (
	"os"
	"path/filepath"
)

// Root holds every lab's runtime directory, root-only.
const Root = "/run/netlab"

// LogRoot holds every lab's agent logs, one directory per lab. They outlive the lab's
// runtime directory: down leaves them for `netlab logs` and `netlab export logs`; the
// next up of that name (or `down --purge`) removes them. Beside Root, not in it, so that
// no log directory is taken for a lab; in /run, in memory where /run is a tmpfs, as the
// runtime files (an ingress writes a line per request).
const LogRoot = "/run/netlab-logs"

// EtcNetns is where `ip netns exec` finds per-namespace /etc files.
const EtcNetns = "/etc/netns"

// EtcNetnsMark records that netlab created EtcNetns, so down removes only its own.
var EtcNetnsMark = filepath.Join(Root, ".created-etc-netns")

// File and directory names inside a lab's runtime directory.
const (
	PlanFile      = "plan.json"
	EndpointsFile = "endpoints.json"
	ReadinessFile = "readiness.json"
	// ReportedFile is up's list of the pods that reported they serve, for the endpoints
	// controller it starts next (see Reported).
	ReportedFile = "reported.json"
	LBStateFile  = "lb-state.json"
	SyncDir      = "kube-proxy"
	IngressDir   = "ingress"
	DNSDir       = "dns"
	CADir        = "ca"
	LeavingDir   = "leaving"
	PIDsDir      = "pids"
	// SupervisorFile is the supervisor's report: every agent's state and restarts.
	SupervisorFile = "supervisor.json"
	LogsDir        = "logs" // in At directories; a lab's logs are in LogRoot/<lab>
	// ScenarioFile is the copy of the scenario a lab was brought up from, kept with its
	// logs.
	ScenarioFile = "scenario.yaml"
)

// Dir is one lab's runtime directory, with its log directory beside it: every path of
// the lab comes from here.
type Dir struct{ path, logs string }

// ForLab is the runtime directory of the lab named lab, Root/<lab>, with its logs in
// LogRoot/<lab>.
func ForLab(lab string) Dir { return Dir{filepath.Join(Root, lab), filepath.Join(LogRoot, lab)} }

// At is a runtime directory somewhere else (an agent's --dir, a test's temporary
// directory), with its logs in path/logs.
func At(path string) Dir { return Dir{path, filepath.Join(path, LogsDir)} }

// Resolve is At(dir) when dir is set, else ForLab(lab): what an agent's --lab and --dir
// flags name.
func Resolve(lab, dir string) Dir {
	if dir != "" {
		return At(dir)
	}
	return ForLab(lab)
}

// Path is the directory itself.
func (d Dir) Path() string { return d.path }

// Plan is the plan up wrote for the agents, status and inspection.
func (d Dir) Plan() string { return filepath.Join(d.path, PlanFile) }

// Endpoints is the endpoints controller's output: every Service port with its endpoints
// and their readiness, as kube-proxy reads them.
func (d Dir) Endpoints() string { return filepath.Join(d.path, EndpointsFile) }

// IngressLoaded is where node's ingress agent reports the configuration it serves.
func (d Dir) IngressLoaded(node string) string {
	return filepath.Join(d.path, IngressDir, node+".json")
}

// DNSLoaded is where a cluster DNS pod's agent reports what its records come from.
func (d Dir) DNSLoaded(pod string) string { return filepath.Join(d.path, DNSDir, pod+".json") }

// SyncStatus is where node's kube-proxy agent reports its last sync.
func (d Dir) SyncStatus(node string) string { return filepath.Join(d.path, SyncDir, node+".json") }

// LBState is where the lb agent publishes its state for status and `netlab lb`.
func (d Dir) LBState() string { return filepath.Join(d.path, LBStateFile) }

// CA is the lab CA's directory (ca.crt, ca.key).
func (d Dir) CA() string { return filepath.Join(d.path, CADir) }

// Logs is the directory of the agents' log files.
func (d Dir) Logs() string { return d.logs }

// Log is an agent's log file.
func (d Dir) Log(role, name string) string {
	return filepath.Join(d.logs, role+"-"+name+".log")
}

// RuntimeLog is the file an agent's Go runtime writes to (its standard error) when the
// agent keeps that apart from its log: the ingress agents (supervise.IngressGODEBUG), whose
// log is JSON lines, one per access or event.
func (d Dir) RuntimeLog(role, name string) string {
	return filepath.Join(d.logs, role+"-"+name+".runtime.log")
}

// Scenario is the copy of the scenario the lab was brought up from.
func (d Dir) Scenario() string { return filepath.Join(d.logs, ScenarioFile) }

// Leaving marks pod as being terminated gracefully (apply, scale, rollout): its agent, on
// SIGTERM, keeps serving until killed instead of exiting.
func (d Dir) Leaving(pod string) string { return filepath.Join(d.path, LeavingDir, pod) }

// IsLeaving says whether pod is being terminated gracefully.
func (d Dir) IsLeaving(pod string) bool {
	_, err := os.Stat(d.Leaving(pod))
	return err == nil
}

// PIDFile is an agent's record (pid, start time, restarts), written by whoever starts
// the agent (up, apply, pod start, the supervisor) while holding the lab's lock.
func (d Dir) PIDFile(role, name string) string {
	return filepath.Join(d.path, PIDsDir, role+"-"+name+".json")
}

// PIDFiles lists the agents' records.
func (d Dir) PIDFiles() []string {
	files, _ := filepath.Glob(filepath.Join(d.path, PIDsDir, "*.json"))
	return files
}

// PodWave holds the records of the pods up started together (its pods' wave): one file
// for all of them instead of a PIDFile each. A pod's own PIDFile, once written (a restart,
// `netlab pod start`), takes precedence over its entry here.
func (d Dir) PodWave() string { return filepath.Join(d.path, PIDsDir, "pods.wave") }

// StoppedMark marks an agent stopped on purpose (`netlab pod kill`): the supervisor
// leaves it down until the mark is removed (`netlab pod start`).
func (d Dir) StoppedMark(role, name string) string {
	return filepath.Join(d.path, PIDsDir, role+"-"+name+".stopped")
}

// SupervisorReport is the supervisor's report of every agent.
func (d Dir) SupervisorReport() string { return filepath.Join(d.path, SupervisorFile) }

// Lock is the lock file beside the directory: LockPath(lab) for ForLab(lab), and beside
// an At directory for agents run on one by hand or by tests.
func (d Dir) Lock() string {
	return filepath.Join(filepath.Dir(d.path), "."+filepath.Base(d.path)+".lock")
}

// LockPath is the lock file of lab; it lives beside the lab's directory, so that down can
// remove the directory while holding the lock.
func LockPath(lab string) string { return filepath.Join(Root, "."+lab+".lock") }

// EtcNetnsDir is where `ip netns exec` finds the /etc files of namespace ns.
func EtcNetnsDir(ns string) string { return filepath.Join(EtcNetns, ns) }
