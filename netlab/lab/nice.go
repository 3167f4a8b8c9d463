package lab

import (
	"os"
	"strconv"
	"sync"

	"github.com/netlabdev/netlab/netlab/kernel"
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
	if kernel.SetAutogroupNice(pid, startNice) == nil {
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
		_ = kernel.SetAutogroupNice(pid, 0) // a process gone since has no group to restore
	}
	y.pids = nil
}

// fabricFirst runs fn (the links and routes steps) on a thread of its own at fabricNice:
// within up's scheduling group, the thread sending the fabric's netlink requests, which
// every agent's readiness waits for, goes before up's threads starting agents beside it.
func fabricFirst(fn func() error) error {
	if fabricNice == 0 {
		return fn()
	}
	return kernel.AtThreadNice(fabricNice, fn)
}
