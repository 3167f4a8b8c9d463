package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"golang.org/x/sys/unix"
)

// Back-off between restarts of an agent that keeps dying, kubelet's CrashLoopBackOff
// shape on a lab's time scale: the first restart at once, then 1 s, 2 s, 4 s, ... up to
// 30 s; an agent that ran for a minute starts over at once (kubelet: 10 s doubling to
// 5 min, reset after 10 min).
const (
	BackoffBase  = time.Second
	BackoffCap   = 30 * time.Second
	BackoffReset = time.Minute
)

// Backoff is the wait before the restart that follows failures consecutive deaths.
func Backoff(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := BackoffBase
	for i := 1; i < failures && d < BackoffCap; i++ {
		d *= 2
	}
	return min(d, BackoffCap)
}

// States of an agent as the supervisor sees it.
const (
	StateRunning  = "Running"
	StateStarting = "Starting"
	StateBackOff  = "CrashLoopBackOff"
	StateStopped  = "Stopped" // by `netlab pod kill`, until `netlab pod start`
	StateFailed   = "Failed"  // the last start failed; retried after the back-off
	StateUnknown  = "NotStarted"
)

// AgentState is one agent in the supervisor's report.
type AgentState struct {
	Role     string    `json:"role"`
	Name     string    `json:"name"`
	State    string    `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	Message  string    `json:"message,omitempty"`
	NextTry  time.Time `json:"nextTry,omitzero"`
}

// Report is the supervisor's status file.
type Report struct {
	Time   time.Time    `json:"time"`
	PID    int          `json:"pid"`
	Agents []AgentState `json:"agents"`
}

// ReadReport reads the supervisor's report of the lab in dir.
func ReadReport(d rundir.Dir) (*Report, error) {
	b, err := os.ReadFile(d.SupervisorReport())
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Config configures a supervisor.
type Config struct {
	Lab      string
	Dir      rundir.Dir // the lab's runtime and log directories; its lock beside it
	Binary   string     // netlab executable (default: $NETLAB_BINARY, else this one)
	Interval time.Duration
}

type watched struct {
	pr       plan.Process
	pidfd    int
	pid      int
	failures int
	nextTry  time.Time
	state    string
	msg      string
	restarts int
	ready    <-chan error
}

// Run watches every agent of the lab's plan and restarts those that die, until ctx ends
// or the lab goes away. ready is called once every running agent has been adopted.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func()) error {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	defer unix.Close(epfd)
	// The end of ctx (SIGTERM from down) wakes the wait at once, not at its next timeout:
	// down waits for the supervisor to exit before it ends the other agents.
	stopfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	defer unix.Close(stopfd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stopfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stopfd)}); err != nil {
		return fmt.Errorf("epoll add: %w", err)
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			_, _ = unix.Write(stopfd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		case <-stopped:
		}
	}()
	agents := map[string]*watched{}
	byFD := map[int]*watched{}
	defer func() {
		for fd := range byFD {
			unix.Close(fd)
		}
	}()
	var planMod time.Time
	gone := 0
	notified := false
	lastReport := ""
	events := make([]unix.EpollEvent, 64)
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Learn the agents: the plan may change under live changes (apply, scale).
		st, err := os.Stat(cfg.Dir.Plan())
		if err != nil {
			if gone++; gone >= 2 {
				log.Info("lab is gone, supervisor exits", "lab", cfg.Lab)
				return nil
			}
		} else if gone = 0; !st.ModTime().Equal(planMod) {
			if p, err := cfg.Dir.ReadPlanView(rundir.SupervisorPlan); err == nil {
				planMod = st.ModTime()
				keep := map[string]bool{}
				for _, pr := range p.Processes {
					k := pr.Role + "/" + pr.Name
					keep[k] = true
					if w := agents[k]; w != nil {
						w.pr = pr
					} else {
						agents[k] = &watched{pr: pr, pidfd: -1, state: StateUnknown}
					}
				}
				for k, w := range agents {
					if !keep[k] {
						if w.pidfd >= 0 {
							delete(byFD, w.pidfd)
							unix.Close(w.pidfd)
						}
						delete(agents, k)
					}
				}
			}
		}
		now := time.Now()
		keys := make([]string, 0, len(agents))
		for k := range agents {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w := agents[k]
			if w.ready != nil {
				select {
				case err := <-w.ready:
					w.ready = nil
					if err == nil {
						w.state, w.msg = StateRunning, ""
					} else {
						w.msg = err.Error()
					}
				default:
				}
			}
			if w.pidfd >= 0 {
				continue
			}
			rec, err := ReadRecord(cfg.Dir, w.pr.Role, w.pr.Name)
			if err != nil {
				continue // never started (yet): not ours to start
			}
			w.restarts = rec.Restarts
			if rec.Alive() {
				if fd, err := unix.PidfdOpen(rec.PID, 0); err == nil {
					if rec.Alive() { // the pid is still the agent's after opening
						ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
						if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err == nil {
							w.pidfd, w.pid = fd, rec.PID
							byFD[fd] = w
							if w.ready == nil {
								w.state, w.msg = StateRunning, ""
							}
							continue
						}
					}
					unix.Close(fd)
				}
			}
			w.pid = 0
			if Stopped(cfg.Dir, w.pr.Role, w.pr.Name) {
				w.state, w.msg, w.nextTry = StateStopped, "", time.Time{}
				continue
			}
			if w.nextTry.IsZero() {
				if !rec.Started.IsZero() && now.Sub(rec.Started) >= BackoffReset {
					w.failures = 0
				}
				w.failures++
				w.nextTry = now.Add(Backoff(w.failures - 1))
				if w.failures > 1 {
					w.state = StateBackOff
					log.Warn("agent died, restart after back-off", "role", w.pr.Role, "name", w.pr.Name,
						"restarts", rec.Restarts, "backoff", Backoff(w.failures-1).String())
				}
				// A first death is told once the agent is started again: while down holds
				// the lab's lock and removes it, its agents end and none is restarted.
			}
			if now.Before(w.nextTry) {
				continue
			}
			if err := restart(cfg, w); err == nil && w.pid != 0 {
				log.Warn("agent died, restarted", "role", w.pr.Role, "name", w.pr.Name, "restarts", w.restarts, "pid", w.pid)
			} else if err != nil {
				if errors.Is(err, ErrGone) {
					log.Info("lab is being removed, supervisor exits", "lab", cfg.Lab)
					return nil
				}
				if errors.Is(err, ErrLocked) {
					continue // up, down or a drill holds the lab; try on the next tick
				}
				w.failures++
				w.state, w.msg = StateFailed, err.Error()
				w.nextTry = now.Add(Backoff(w.failures - 1))
				log.Error("restart failed", "role", w.pr.Role, "name", w.pr.Name, "err", err,
					"retry_in", Backoff(w.failures-1).String())
			}
		}
		if r := report(agents); r != lastReport {
			if err := writeReport(cfg.Dir, agents); err != nil {
				log.Error("write report", "err", err)
			} else {
				lastReport = r
			}
		}
		if !notified {
			notified = true
			if ready != nil {
				ready()
			}
		}
		n, err := unix.EpollWait(epfd, events, int(cfg.Interval/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("epoll wait: %w", err)
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			w := byFD[fd]
			if w == nil {
				continue
			}
			delete(byFD, fd)
			_ = unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, fd, nil)
			unix.Close(fd)
			w.pidfd = -1
			w.nextTry = time.Time{}
			if ws := w.state; ws == StateRunning || ws == StateStarting {
				w.state = "Exited"
			}
			// Reap it if it is our child (a no-op for an agent adopted from up).
			var wst unix.WaitStatus
			_, _ = unix.Wait4(w.pid, &wst, unix.WNOHANG, nil)
		}
	}
}

// restart starts the agent again under the lab's lock, unless someone else started it
// or stopped it on purpose in the meantime.
func restart(cfg Config, w *watched) error {
	lk, err := TryLock(cfg.Dir)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	rec, err := ReadRecord(cfg.Dir, w.pr.Role, w.pr.Name)
	if err == nil && rec.Alive() {
		return nil // adopted on the next tick
	}
	if Stopped(cfg.Dir, w.pr.Role, w.pr.Name) {
		return nil
	}
	// A live change (apply, scale, rollout) may have let the pod go since the death was
	// seen: only what the plan still runs, and not as leaving, is started again.
	p, err := cfg.Dir.ReadPlanView(rundir.SupervisorPlan)
	if err != nil {
		return ErrGone
	}
	if !stillRuns(p, w.pr, cfg.Dir) {
		return nil
	}
	if w.pr.Netns != "" && !kernel.NetnsExists(w.pr.Netns) {
		return fmt.Errorf("namespace %s is missing", w.pr.Netns)
	}
	pid, ready, err := Start(cfg.Dir, w.pr, cfg.Binary, rec.Restarts+1)
	if err != nil {
		return err
	}
	w.pid, w.ready, w.restarts = pid, ready, rec.Restarts+1
	w.state, w.msg, w.nextTry = StateStarting, "", time.Time{}
	return nil
}

// stillRuns says whether the plan still has the process, and (for a pod) not leaving.
func stillRuns(p *plan.Plan, pr plan.Process, d rundir.Dir) bool {
	found := false
	for _, q := range p.Processes {
		if q.Role == pr.Role && q.Name == pr.Name {
			found = true
		}
	}
	if !found {
		return false
	}
	if pr.Role == "pod" {
		for _, pod := range p.Pods {
			if pod.Name == pr.Name && pod.Terminating {
				return false
			}
		}
		if d.IsLeaving(pr.Name) {
			return false
		}
	}
	return true
}

func states(agents map[string]*watched) []AgentState {
	out := make([]AgentState, 0, len(agents))
	for _, w := range agents {
		a := AgentState{Role: w.pr.Role, Name: w.pr.Name, State: w.state, PID: w.pid, Restarts: w.restarts, Message: w.msg}
		if w.state == StateBackOff || w.state == StateFailed {
			a.NextTry = w.nextTry.UTC()
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role < out[j].Role
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func report(agents map[string]*watched) string {
	b, _ := json.Marshal(states(agents))
	return string(b)
}

func writeReport(d rundir.Dir, agents map[string]*watched) error {
	b, err := json.MarshalIndent(Report{Time: time.Now().UTC(), PID: os.Getpid(), Agents: states(agents)}, "", "  ")
	if err != nil {
		return err
	}
	return rundir.WriteFileAtomic(d.SupervisorReport(), b, 0o600)
}
