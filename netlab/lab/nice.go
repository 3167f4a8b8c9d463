package lab

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

// startNice is the nice value of the scheduling group of every agent up starts, until the
// fabric is wired (see yielding). 0 turns it off.
var startNice = 10

func init() {
	if v, err := strconv.Atoi(os.Getenv("NETLAB_UP_NICE")); err == nil {
		startNice = v
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
