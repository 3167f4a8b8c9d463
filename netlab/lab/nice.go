package lab

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// startNice is the nice value of the scheduling group of every agent up starts, until the
// fabric is wired (see yielding). 0 turns it off.
var startNice = 19

// fabricNice is the nice value of up's own thread while it makes the links and routes
// (see fabricFirst); 0 with startNice.
var fabricNice = -10

func init() {
	if v, err := strconv.Atoi(os.Getenv("NETLAB_UP_NICE")); err == nil {
		startNice = v
		if v == 0 {
			fabricNice = 0
		}
	}
}

// yielding lowers the CPU share of the agents up starts while up itself still has work
// on the critical path, and gives it back once that is done.
//
// Every agent is started in a session of its own (setsid), so with the kernel's
// autogroups (kernel.sched_autogroup_enabled, the default) each is a scheduling group of
// its own, weighing as much as up's whole session: while forty of them start beside the
// links, up's one thread making the links gets a fortieth of a CPU's time, and the links
// are what everything after waits for. Until restore, each agent's group runs at
// startNice (its /proc/PID/autogroup), as nice as a user's background job; restore sets
// it back to 0, which every agent has afterwards as it would have had from the start.
type yielding struct {
	mu       sync.Mutex
	pids     []int
	restored bool
}

// lower lowers pid's group, unless restore was called.
func (y *yielding) lower(pid int) {
	if startNice == 0 || pid <= 0 {
		return
	}
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.restored {
		return
	}
	if setAutogroupNice(pid, startNice) == nil {
		y.pids = append(y.pids, pid)
	}
}

// restore gives every lowered group its share back, and stops lowering.
func (y *yielding) restore() {
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.restored {
		return
	}
	y.restored = true
	for _, pid := range y.pids {
		_ = setAutogroupNice(pid, 0) // a process gone since has no group to restore
	}
	y.pids = nil
}

func setAutogroupNice(pid, nice int) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/autogroup", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(strconv.Itoa(nice)))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fabricFirst runs fn (the links and routes steps) on a thread of its own at fabricNice:
// within up's scheduling group, the thread making the fabric, which every agent's
// readiness waits for, goes before up's threads starting agents beside it. The thread's
// nice is set back before it is handed back to the Go runtime; where it cannot be set
// (no CAP_SYS_NICE) fn runs as it would anyway.
func fabricFirst(fn func() error) error {
	if fabricNice == 0 {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil || unix.Setpriority(unix.PRIO_PROCESS, tid, fabricNice) != nil {
		return fn()
	}
	// getpriority's raw value is 20 - nice (golang.org/x/sys/unix returns it as is).
	defer unix.Setpriority(unix.PRIO_PROCESS, tid, 20-old)
	return fn()
}
