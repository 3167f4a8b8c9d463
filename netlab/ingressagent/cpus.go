package ingressagent

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A node's ingress with a worker for every CPU it may run on runs worker i on the i-th of
// those CPUs (all its threads), and its proxy listeners carry that CPU as SO_INCOMING_CPU:
// for a new connection the kernel (6.2 and later) picks, among the node's SO_REUSEPORT
// listeners, the one of the worker on the CPU where the connection's handshake was handled,
// and falls back to its hash when none is there. In a lab the client's SYN, its request
// and the ACKs of the answer are handled on the CPU of the client's sending thread (veths
// pass packets on within the sender's system call), so a connection is served on the CPU
// its packets are handled on, and the answer's wake-up of the client stays on that CPU:
// no wake-up of a thread on the other CPU (an inter-processor interrupt, a VM exit on a
// guest like this one) between the packets and the proxy. nginx's `worker_cpu_affinity
// auto` pins its workers alike; SO_INCOMING_CPU is what its `reuseport` listeners lack
// (docs/design-notes.md, "The ingress data path, twelfth pass"; figures in
// docs/performance.md, "L7 path, fourteenth stop").
//
// With fewer workers than CPUs nothing is pinned: a connection handled on a CPU with no
// worker would wait for another CPU's worker, which the scheduler could otherwise move.
// CPUAffinityEnv=off turns it off.

// CPUAffinityEnv names the environment variable that turns the workers' CPU affinity off:
// "off" (or "0", "false", "no"; any case). Unset, "on" ("1", "true", "yes") leave it on;
// any other value leaves it on too, and affinityOff says what was wrong with it.
const CPUAffinityEnv = "NETLAB_INGRESS_CPU_AFFINITY"

// workerCPUs is the CPU of each worker (index i-1 for worker i) when a node's ingress runs
// workers on allowed, the CPUs it may run on: none (nil) with fewer workers than CPUs,
// with one CPU, or when off; else worker i takes allowed[(i-1) mod len(allowed)].
func workerCPUs(workers int, allowed []int, off bool) []int {
	if off || len(allowed) < 2 || workers < len(allowed) {
		return nil
	}
	out := make([]int, workers)
	for i := range out {
		out[i] = allowed[i%len(allowed)]
	}
	return out
}

// affinityOff says whether CPUAffinityEnv turns the workers' CPU affinity off; a value it
// does not know leaves it on, with an error that names the variable and the value.
func affinityOff() (bool, error) { return parseAffinity(os.Getenv(CPUAffinityEnv)) }

func parseAffinity(v string) (off bool, err error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "on", "1", "true", "yes":
		return false, nil
	case "off", "0", "false", "no":
		return true, nil
	}
	return false, fmt.Errorf("%s=%q is neither on nor off: taken as on", CPUAffinityEnv, v)
}

// allowedCPUs lists the CPUs this process may run on, lowest first.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	return cpuList(&set), nil
}

func cpuList(set *unix.CPUSet) []int {
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

// processThreads lists the thread ids of this process.
func processThreads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}

// setProcessAffinity sets the CPU affinity of every thread of this process to set. A
// thread inherits its creator's affinity, so the threads the runtime starts later follow;
// one started while the list is walked is caught by the next walk (it ends when a walk
// finds no thread it has not set, and fails when ten walks each found new ones).
func setProcessAffinity(set *unix.CPUSet) error {
	const walks = 10
	done := map[int]bool{}
	for range walks {
		tids, err := processThreads()
		if err != nil {
			return err
		}
		fresh := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh = true
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			done[tid] = true
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("threads kept starting through %d walks of /proc/self/task", walks)
}

// affinityMu orders the changes of this process's threads' CPUs: a pin's walk, its undo
// and a start on other CPUs (which sets one thread's mask and then puts it back).
var affinityMu sync.Mutex

// startOn starts cmd from the calling thread, locked and set for that moment to run on
// cpus (none: cmd starts as it would), so
// that the child begins with that affinity, not the one of the thread that happens to
// start it (a pinned worker's: a worker started again after worker 1 pinned every
// thread of this process to its CPU would begin there, and stay there if its own pin
// failed). The thread gets its affinity back and is kept, not ended: a child's
// parent-death signal follows the thread that started it.
func startOn(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	// The lock first: a goroutine locked to its thread while it waits would hold that
	// thread, and the runtime would start another (kept for good) to run the rest.
	affinityMu.Lock() // a pin's walk of the threads waits for this one's mask to be back
	defer affinityMu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		return cmd.Start()
	}
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return cmd.Start()
	}
	err := cmd.Start()
	_ = unix.SchedSetaffinity(0, &before) // the mask it had a moment ago: nothing to fail on
	return err
}

// pinProcess runs every thread of this process on cpu; undo gives them back the CPUs this
// process could run on before (tests run worker 1 in their own process).
func pinProcess(cpu int) (undo func(), err error) {
	affinityMu.Lock()
	defer affinityMu.Unlock()
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		return func() {}, err
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := setProcessAffinity(&one); err != nil {
		_ = setProcessAffinity(&before)
		return func() {}, err
	}
	return func() {
		affinityMu.Lock()
		defer affinityMu.Unlock()
		_ = setProcessAffinity(&before)
	}, nil
}

// setIncomingCPU sets SO_INCOMING_CPU on a listener's socket (nil: nothing to do).
func setIncomingCPU(ln net.Listener, cpu int) error {
	if ln == nil {
		return nil
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("listener %T has no socket", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_INCOMING_CPU, cpu)
	}); err != nil {
		return err
	}
	return serr
}

// pinWorker runs this process on cpu and marks its proxy listeners (nil ones skipped) with
// it. On an error nothing stays changed; undo gives the threads back their CPUs.
func pinWorker(cpu int, lns ...net.Listener) (undo func(), err error) {
	undo, err = pinProcess(cpu)
	if err != nil {
		return func() {}, fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	for _, ln := range lns {
		if err := setIncomingCPU(ln, cpu); err != nil {
			for _, ln := range lns {
				_ = setIncomingCPU(ln, -1)
			}
			undo()
			return func() {}, fmt.Errorf("SO_INCOMING_CPU %d: %w", cpu, err)
		}
	}
	return undo, nil
}

// cpuText is a worker's CPU for its log line ("any" when it is not pinned).
func cpuText(cpu *int) string {
	if cpu == nil {
		return "any"
	}
	return strconv.Itoa(*cpu)
}
