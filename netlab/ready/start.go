package ready

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// An agent's start, before it reports ready, is a burst of serial work (the Go runtime's
// own start, the package inits, the first reads and writes) on a machine whose CPUs a
// lab's forty starting processes all want at once. Two settings of the Go runtime's make
// that burst dearer than its work, and a starter may ask for its agent's start without
// them (QuietStart); the agent takes its own settings back when it reports ready (Notify):
//
//   - A thread timer slack of StartTimerSlack: the runtime's system monitor (sysmon)
//     sleeps 20 µs at a time while any processor is busy or in a system call, and every
//     system call longer than that (most are, here) keeps it at 20 µs; a slack lets the
//     kernel wake it later, so it wakes tens of times where it woke thousands. The slack
//     is inherited from the thread the agent is forked from (QuietStartThread) by every
//     thread of the agent; Notify sets every thread's back to the starter's.
//   - GOMAXPROCS=1 (asked for a pod's start, whose work is a few system calls): with a
//     second processor, the runtime starts threads that find nothing to do in a start
//     (each a clone, a stack and a scheduler round). Not for agents whose start does
//     their heaviest work (kube-proxy's first full sync renders on every processor).
//
// docs/design-notes.md, "Bring-up, fourteenth stop: the agents' and pods' start".
const (
	// StartProcsEnv holds the GOMAXPROCS the starter's environment had ("" for none),
	// set when the starter gave the agent GOMAXPROCS=1 for its start.
	StartProcsEnv = "NETLAB_START_PROCS"
	// StartSlackEnv holds the timer slack (ns) the agent's threads get back at Notify, set
	// when the starter forked it from a thread with StartTimerSlack.
	StartSlackEnv = "NETLAB_START_SLACK"
)

// StartTimerSlack is the timer slack of an agent's threads until it reports ready.
const StartTimerSlack = 5 * time.Millisecond

const (
	prSetTimerSlack = 29 // PR_SET_TIMERSLACK
	prGetTimerSlack = 30 // PR_GET_TIMERSLACK
)

var start struct {
	sync.Mutex
	procs      bool   // started on one processor, not yet given its own count
	procsEnv   string // the GOMAXPROCS the starter had, "" for the runtime's default
	slack      bool   // started with StartTimerSlack, not yet set back
	slackValue uintptr
	warned     bool // said once that the slack could not be set back
}

// At initialisation the agent puts its environment back as its starter had it (GOMAXPROCS
// as given, the two variables gone): the commands it runs, an ingress's workers among
// them, see the starter's settings.
func init() {
	if v, ok := os.LookupEnv(StartProcsEnv); ok {
		os.Unsetenv(StartProcsEnv)
		if v == "" {
			os.Unsetenv("GOMAXPROCS")
		} else {
			os.Setenv("GOMAXPROCS", v)
		}
		start.procs, start.procsEnv = true, v
	}
	if v, ok := os.LookupEnv(StartSlackEnv); ok {
		os.Unsetenv(StartSlackEnv)
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			start.slack, start.slackValue = true, uintptr(n)
		}
	}
}

// QuietStart returns env (a starter's environment for an agent it starts) with the
// variable by which the agent, at Notify, sets its threads' timer slack back to this
// process's; and, with oneProc, GOMAXPROCS=1 and the variable by which it takes back
// what env had for GOMAXPROCS. The starter forks the agent from a thread that called
// QuietStartThread.
func QuietStart(env []string, oneProc bool) []string {
	prev := ""
	out := make([]string, 0, len(env)+3)
	for _, e := range env {
		switch {
		case oneProc && strings.HasPrefix(e, "GOMAXPROCS="):
			prev = strings.TrimPrefix(e, "GOMAXPROCS=") // the last one counts, as os/exec keeps it
		case strings.HasPrefix(e, StartProcsEnv+"="), strings.HasPrefix(e, StartSlackEnv+"="):
		default:
			out = append(out, e)
		}
	}
	out = append(out, StartSlackEnv+"="+strconv.FormatUint(uint64(ownSlack()), 10))
	if oneProc {
		out = append(out, "GOMAXPROCS=1", StartProcsEnv+"="+prev)
	}
	return out
}

// ownSlack is this process's timer slack: the calling thread's, or, while this process
// (an agent that starts others: the supervisor, the controller) still starts quietly
// itself, the one it will have once ready.
func ownSlack() uintptr {
	start.Lock()
	defer start.Unlock()
	if start.slack {
		return start.slackValue
	}
	slack, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 || slack == 0 {
		// Not readable (or a real-time thread's 0): the kernel's default. A 0 handed on
		// would not do: PR_SET_TIMERSLACK with 0 sets a thread's slack to its default,
		// which for an agent forked quietly is the start's.
		slack = 50_000
	}
	return slack
}

// StarterThread gives the calling thread, which must be locked to its goroutine and never
// handed back to the runtime, this process's own timer slack (ownSlack): a process that
// does not start quietly, forked from it, gets that for good, also when this process
// still starts quietly itself. Best effort: a thread that keeps its slack only costs the
// started process's timers their precision.
func StarterThread() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, ownSlack(), 0)
}

// ExecEnv returns env (this process's environment, for a program that executes itself
// again: privs.Restrict) with the variables of a quiet start this process has not ended
// yet put back, so that the program, which inherits the calling thread's slack, ends the
// start at its own Notify as this one would have.
func ExecEnv(env []string) []string {
	start.Lock()
	defer start.Unlock()
	if !start.procs && !start.slack {
		return env
	}
	out := make([]string, 0, len(env)+3)
	for _, e := range env {
		if !(start.procs && strings.HasPrefix(e, "GOMAXPROCS=")) {
			out = append(out, e)
		}
	}
	if start.slack {
		out = append(out, StartSlackEnv+"="+strconv.FormatUint(uint64(start.slackValue), 10))
	}
	if start.procs {
		out = append(out, "GOMAXPROCS=1", StartProcsEnv+"="+start.procsEnv)
	}
	return out
}

// QuietStartThread gives the calling thread, which must be locked to its goroutine and
// never handed back to the runtime, the timer slack an agent forked from it starts with.
// Best effort: an agent started without it only starts as it did before.
func QuietStartThread() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(StartTimerSlack.Nanoseconds()), 0)
}

// SetProcs sets the agent's GOMAXPROCS to n for good: Notify leaves it as it is.
func SetProcs(n int) {
	start.Lock()
	defer start.Unlock()
	start.procs = false
	runtime.GOMAXPROCS(n)
}

// endQuietStart gives the agent back what QuietStart took for its start (Notify).
func endQuietStart() {
	start.Lock()
	defer start.Unlock()
	if start.procs {
		start.procs = false
		if n, err := strconv.ParseInt(start.procsEnv, 10, 32); err == nil && n > 0 {
			runtime.GOMAXPROCS(int(n))
		} else {
			runtime.SetDefaultGOMAXPROCS()
		}
	}
	if start.slack {
		// Every thread of the process. A binary that links cgo cannot (ENOTSUP): starters
		// start only binaries built without it quietly (supervise), so this is said once.
		if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prSetTimerSlack, start.slackValue, 0); errno == 0 {
			start.slack = false
		} else if !start.warned {
			start.warned = true
			fmt.Fprintf(os.Stderr, "%s: the threads' timer slack of the start (%v) could not be set back: %v (a binary built with cgo; build it with CGO_ENABLED=0)\n",
				filepath.Base(os.Args[0]), StartTimerSlack, errno)
		}
	}
}

// QuietStarter gives every thread of this process, a starter's (netlab up's), the start's
// timer slack (StartTimerSlack) until the returned function is called, which sets every
// thread's back: up's own runtime monitor (sysmon) then wakes tens of times where it woke
// thousands while up forks and waits (about a tenth of up's own CPU was sysmon's). The
// agents it starts meanwhile are told this process's own slack, not the start's
// (ownSlack, StarterThread), as they were before. Best effort: a process whose threads
// cannot all be set (a binary built with cgo), or that starts quietly itself (an agent),
// is left as it is and the function does nothing.
func QuietStarter() (end func()) {
	start.Lock()
	defer start.Unlock()
	if start.slack {
		return func() {}
	}
	own, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 || own == 0 {
		return func() {}
	}
	if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(StartTimerSlack.Nanoseconds()), 0); errno != 0 {
		return func() {}
	}
	start.slack, start.slackValue = true, own
	return sync.OnceFunc(func() {
		start.Lock()
		defer start.Unlock()
		if start.slack && start.slackValue == own {
			if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prSetTimerSlack, own, 0); errno == 0 {
				start.slack = false
			}
		}
	})
}
