// Package supervise starts a lab's agents and keeps them running, as kubelet and systemd
// do: every agent that dies is started again with an exponential back-off, its restarts
// counted. It knows a lab only by its runtime directory and plan; it does not import lab.
//
// Who watches whom: the supervisor (`netlab agent supervisor`, one per lab, in the root
// namespace) watches every agent of the plan, the endpoints controller included; the
// endpoints controller watches the supervisor and starts a new one when it dies. A new
// supervisor adopts the running agents from their pid files.
package supervise

import (
	"bufio"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/privs"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// ReadyFDEnv names the environment variable holding an agent's readiness pipe.
const ReadyFDEnv = ready.FDEnv

// Supervisor is the supervisor's own process record: role and name.
var Supervisor = plan.Process{Role: "supervisor", Name: "supervisor"}

// SupervisorProcess returns the supervisor of lab as a process to start.
func SupervisorProcess(lab string) plan.Process {
	pr := Supervisor
	pr.Args = []string{"agent", "supervisor", "--lab", lab}
	return pr
}

// Record is an agent's pid file: which process runs it and how often it was restarted.
// Only whoever starts the agent writes it, holding the lab's lock.
type Record struct {
	PID int `json:"pid"`
	// Start is the process's start time (clock ticks since boot), so a reused pid is
	// never taken for the agent.
	Start    string `json:"start"`
	Restarts int    `json:"restarts"`
	// Started is when this process was started (RFC 3339).
	Started time.Time `json:"started"`
}

// Alive says whether the recorded process still runs.
func (r Record) Alive() bool {
	return r.PID > 0 && r.Start != "" && kernel.AliveSince(r.PID, r.Start)
}

// ReadRecord reads an agent's pid file; for a pod without one, its entry in the pods'
// wave record (d.PodWave()), if it has one.
func ReadRecord(d rundir.Dir, role, name string) (Record, error) {
	var r Record
	b, err := os.ReadFile(d.PIDFile(role, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && role == "pod" {
			if wr, ok := waveRecord(d, name); ok {
				return wr, nil
			}
		}
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode %s: %w", d.PIDFile(role, name), err)
	}
	return r, nil
}

// WaveRecords reads the pods' wave record: each pod's record by name (none: nil).
func WaveRecords(d rundir.Dir) (map[string]Record, error) {
	b, err := os.ReadFile(d.PodWave())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var recs map[string]Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("decode %s: %w", d.PodWave(), err)
	}
	return recs, nil
}

// WriteWaveRecords writes the pods' wave record at once (up, after starting the wave).
func WriteWaveRecords(d rundir.Dir, recs map[string]Record) error {
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	path := d.PodWave()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return rundir.WriteFileAtomic(path, b, 0o600)
}

// waves caches the wave records read, by file, while the file stays the same (it is only
// ever replaced whole): the supervisor, the controller and status look up every pod.
var waves struct {
	sync.Mutex
	m map[string]waveFile
}

type waveFile struct {
	ino, size uint64
	mtime     syscall.Timespec
	recs      map[string]Record
}

func waveRecord(d rundir.Dir, pod string) (Record, bool) {
	path := d.PodWave()
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return Record{}, false
	}
	waves.Lock()
	defer waves.Unlock()
	w, ok := waves.m[path]
	if !ok || w.ino != st.Ino || w.size != uint64(st.Size) || w.mtime != st.Mtim {
		recs, err := WaveRecords(d)
		if err != nil {
			return Record{}, false
		}
		if waves.m == nil {
			waves.m = map[string]waveFile{}
		}
		w = waveFile{ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim, recs: recs}
		waves.m[path] = w
	}
	r, ok := w.recs[pod]
	return r, ok
}

// WriteRecord replaces an agent's pid file at once.
func WriteRecord(d rundir.Dir, role, name string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := d.PIDFile(role, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return rundir.WriteFileAtomic(path, b, 0o600)
}

// Stopped says whether an agent is stopped on purpose (rundir's StoppedMark).
func Stopped(d rundir.Dir, role, name string) bool {
	_, err := os.Stat(d.StoppedMark(role, name))
	return err == nil
}

// Start starts one agent detached (its own session) inside its namespace, its output
// appended to its log file, and records it in its pid file with restarts. The returned
// channel yields nil once the agent reported ready, or an error if it exited first.
func Start(d rundir.Dir, pr plan.Process, binary string, restarts int) (int, <-chan error, error) {
	rec, done, err := StartRecord(d, pr, binary, restarts)
	return rec.PID, done, err
}

// StartRecord is Start, returning the record it wrote (pid and start time).
func StartRecord(d rundir.Dir, pr plan.Process, binary string, restarts int) (Record, <-chan error, error) {
	return startRecord(d, pr, binary, restarts, nil, true)
}

// StartUnrecorded is StartRecord without the pid file: the caller records the agent,
// with others started with it (WriteWaveRecords), before anything may look for it. A
// thousand pods' pid files were a thousand new files in up's pods' wave.
func StartUnrecorded(d rundir.Dir, pr plan.Process, binary string) (Record, <-chan error, error) {
	return startRecord(d, pr, binary, 0, nil, false)
}

// StartHeld is StartRecord for an agent that is to wait at its hold point
// (ready.WaitRelease) until release is called: it can start, and make what does not
// depend on the others, while they start. release is safe to call more than once, and
// must be called (up calls it on every return).
func StartHeld(d rundir.Dir, pr plan.Process, binary string, restarts int) (rec Record, done <-chan error, release func(), err error) {
	hr, hw, err := os.Pipe()
	if err != nil {
		return Record{}, nil, func() {}, err
	}
	defer hr.Close() // the agent holds its own copy
	var once sync.Once
	release = func() { once.Do(func() { hw.Close() }) }
	rec, done, err = startRecord(d, pr, binary, restarts, hr, true)
	if err != nil {
		release()
	}
	return rec, done, release, err
}

// IngressGODEBUG is the Go runtime setting the ingress agents (and their workers, which
// inherit it) run with: a scheduler trace every 2^31-1 ms (24.8 days), that is never in a
// lab's life, for its side effect: the runtime's system monitor (sysmon) then never enters
// its deep sleep. A Go process whose processors all go idle parks sysmon; the next system
// call that enters the scheduler's syscall state (accept4, setsockopt, close: three per
// connection with `Connection: close`) wakes it and resets its period to 20 µs, so that
// for every burst of work after an idle moment sysmon wakes every 20 µs until it has
// seen 50 quiet ticks: thousands of wake-ups a second in an ingress worker that is busy
// half the time (a worker process sees half the connections), about a fifth of its CPU
// and 2–3 context switches per request. Kept out of deep sleep, sysmon backs off to its
// 10 ms tick and stays there. See docs/design-notes.md, "The ingress and Go's system
// monitor", and docs/performance.md, "L7 path, ninth pass: Connection: close".
const IngressGODEBUG = "schedtrace=2147483647"

// WithGODEBUG returns env with setting (name=value) added to its GODEBUG, unless GODEBUG
// already names that setting (the user's own choice stands; GODEBUG=schedtrace=0 turns
// IngressGODEBUG off). Of several GODEBUG entries the last counts, as os/exec keeps it.
func WithGODEBUG(env []string, setting string) []string {
	name, _, _ := strings.Cut(setting, "=")
	i := -1
	for j, e := range env {
		if strings.HasPrefix(e, "GODEBUG=") {
			i = j
		}
	}
	if i < 0 {
		return append(slices.Clone(env), "GODEBUG="+setting)
	}
	v := strings.TrimPrefix(env[i], "GODEBUG=")
	for _, kv := range strings.Split(v, ",") {
		// The runtime takes each name=value as it is, spaces included.
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return env
		}
	}
	out := slices.Clone(env)
	if v == "" {
		out[i] = "GODEBUG=" + setting
	} else {
		out[i] = env[i] + "," + setting
	}
	return out
}

func startRecord(d rundir.Dir, pr plan.Process, binary string, restarts int, hold *os.File, record bool) (Record, <-chan error, error) {
	if err := os.MkdirAll(d.Logs(), 0o700); err != nil {
		return Record{}, nil, err
	}
	logf, err := os.OpenFile(d.Log(pr.Role, pr.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return Record{}, nil, fmt.Errorf("agent log: %w", err)
	}
	defer logf.Close()
	errf := logf
	if pr.Role == "ingress" {
		// The runtime's own output (a crash's trace; the scheduler's line that
		// IngressGODEBUG prints at the start on a host up for longer than 24.8 days) goes
		// to a file of its own: the agent writes its log and access lines to its standard
		// output, and that stream holds JSON lines only.
		if errf, err = os.OpenFile(d.RuntimeLog(pr.Role, pr.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return Record{}, nil, fmt.Errorf("agent runtime log: %w", err)
		}
		defer errf.Close()
	}
	netlab := binary
	if netlab == "" {
		if netlab, err = NetlabBinary(); err != nil {
			return Record{}, nil, err
		}
	}
	if binary, err = AgentBinary(netlab, pr); err != nil {
		return Record{}, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return Record{}, nil, err
	}
	cmd := exec.Command(binary, pr.Args...)
	cmd.Stdout, cmd.Stderr = logf, errf
	cmd.ExtraFiles = []*os.File{w}
	env := make([]string, 0, len(os.Environ())+3)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, ReadyFDEnv+"=") && !strings.HasPrefix(e, ready.HoldFDEnv+"=") && !strings.HasPrefix(e, NetlabBinaryEnv+"=") {
			env = append(env, e)
		}
	}
	env = append(env, ReadyFDEnv+"=3", NetlabBinaryEnv+"="+netlab)
	if pr.Role == "ingress" {
		env = WithGODEBUG(env, IngressGODEBUG)
	}
	// Every agent starts quietly (ready.QuietStart: a timer slack until it reports ready;
	// a pod also on one Go processor), unless its binary cannot end a quiet start (built
	// with cgo) or it is an ingress that starts worker processes (--workers): they would
	// inherit the slack before it reports and never end it.
	quiet := quietStart(pr) && builtWithoutCgo(binary)
	if quiet {
		env = ready.QuietStart(env, pr.Role == "pod")
	}
	if hold != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, hold)
		env = append(env, ready.HoldFDEnv+"=4")
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Every agent is forked from a thread of its own, which the runtime ends after: with
	// the quiet start's timer slack, or with this process's own (ready.StarterThread: not
	// the start's of a starter that still starts quietly itself, the supervisor's first
	// round), which the agent keeps. An agent that drops capabilities is forked from a
	// thread confined to the ones it keeps, so that it starts with them: it would otherwise
	// drop them itself by executing itself again, a second process start (a thousand of
	// them in a big lab).
	keep, restrict := privs.ForAgent(pr.Args)
	err = kernel.StartConfined(pr.Netns, cmd, func() error {
		if quiet {
			ready.QuietStartThread()
		} else {
			ready.StarterThread()
		}
		if restrict {
			return privs.ConfineThread(keep)
		}
		return nil
	})
	w.Close()
	if err != nil {
		r.Close()
		return Record{}, nil, fmt.Errorf("start %s agent %s: %w", pr.Role, pr.Name, err)
	}
	pid := cmd.Process.Pid
	rec := Record{PID: pid, Start: kernel.StartTime(pid), Restarts: restarts, Started: time.Now().UTC()}
	if record {
		if err := WriteRecord(d, pr.Role, pr.Name, rec); err != nil {
			return rec, nil, fmt.Errorf("record %s agent %s: %w", pr.Role, pr.Name, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		defer r.Close()
		line, _ := bufio.NewReader(r).ReadString('\n')
		if strings.TrimSpace(line) == "READY" {
			done <- nil
		} else {
			done <- fmt.Errorf("exited before ready (pid %d)", pid)
		}
		// Reap the child if it ends while we still run; detached agents outlive us.
		go func() { _ = cmd.Wait() }()
	}()
	return rec, done, nil
}

// ErrLocked is returned by TryLock when someone else (up, down, a drill) holds the lab.
var ErrLocked = errors.New("lab is locked")

// ErrGone is returned by TryLock when the lab is being removed or gone.
var ErrGone = errors.New("lab is gone")

// Lock is a held lab lock.
type Lock struct{ f *os.File }

// TryLock takes the lab's lock file (d.Lock()) without waiting and without creating it:
// a lab whose lock file or plan is gone is being taken down, and nothing may be started
// in it.
func TryLock(d rundir.Dir) (*Lock, error) {
	lockPath, planPath := d.Lock(), d.Plan()
	f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrGone
		}
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	var held, now syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &held) != nil || syscall.Stat(lockPath, &now) != nil || held.Ino != now.Ino {
		f.Close()
		return nil, ErrGone
	}
	if _, err := os.Stat(planPath); err != nil {
		f.Close()
		return nil, ErrGone
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

// quietStart says whether pr may start quietly: every agent but an ingress that starts
// worker processes (--workers N, --workers=N, or the flag package's one-dash forms).
func quietStart(pr plan.Process) bool {
	if pr.Role != "ingress" {
		return true
	}
	for _, a := range pr.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "workers" {
			return false
		}
	}
	return true
}

// builtWithoutCgo says whether the Go program at path was built with CGO_ENABLED=0, as
// `make build` builds the agents: only such a program can set every thread's timer slack
// back when it ends a quiet start (syscall.AllThreadsSyscall). Read from the binary's
// build information once per file version; a file it cannot read is taken as cgo.
func builtWithoutCgo(path string) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false
	}
	key := cgoKey{path, st.Dev, st.Ino, st.Size, st.Mtim, st.Ctim}
	cgoCache.Lock()
	defer cgoCache.Unlock()
	if v, ok := cgoCache.m[key]; ok {
		return v
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		// Not cached: a read that failed for want of a descriptor or memory is asked again
		// at the next start (a file that is no Go program costs a read each time: none is).
		return false
	}
	v := false
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			v = s.Value == "0"
		}
	}
	if cgoCache.m == nil {
		cgoCache.m = map[cgoKey]bool{}
	}
	cgoCache.m[key] = v
	return v
}

// cgoKey is one version of a file: its path, device and inode, size, and modification
// and change times.
type cgoKey struct {
	path       string
	dev, ino   uint64
	size       int64
	mtim, ctim syscall.Timespec
}

var cgoCache struct {
	sync.Mutex
	m map[cgoKey]bool
}
