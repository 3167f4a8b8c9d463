// Package privs drops an agent's capabilities to those its role needs and sets
// NoNewPrivs, as a container runtime does for a container's process.
//
// Capabilities belong to threads, and a Go program has several before main runs; so the
// agent restricts one locked thread (bounding, inheritable, permitted and effective sets,
// NoNewPrivs) and executes itself again from it. The new image's every thread then
// starts from those sets, and so does every command it runs (iptables-restore): for
// uid 0 the kernel grants at exec the bounding set, intersected under NoNewPrivs with
// what the caller had. The pid, its start time and the open readiness pipe stay the same.
package privs

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h).
const (
	NetBindService = unix.CAP_NET_BIND_SERVICE
	NetAdmin       = unix.CAP_NET_ADMIN
	NetRaw         = unix.CAP_NET_RAW
)

// Mask turns capability numbers into a bit mask.
func Mask(caps ...int) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}

// Current reads the effective and bounding sets and NoNewPrivs of this thread, from the
// kernel (capget, prctl) rather than /proc/self/status: every agent asks at its start,
// and the kernel writes the whole status text (a hundred-odd lines) for a read of it.
func Current() (eff, bnd uint64, nnp bool, err error) {
	n, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		return 0, 0, false, fmt.Errorf("get no_new_privs: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, false, fmt.Errorf("get capabilities: %w", err)
	}
	eff = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	// The bounding set, one capability at a time, up to the first the kernel does not know.
	for c := 0; c < 64; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			if err == unix.EINVAL {
				break
			}
			return 0, 0, false, fmt.Errorf("read the bounding set: %w", err)
		}
		if in == 1 {
			bnd |= 1 << uint(c)
		}
	}
	return eff, bnd, n == 1, nil
}

// Of reads the effective and bounding sets and NoNewPrivs of a process ("self" or a pid).
func Of(pid string) (eff, bnd uint64, nnp bool, err error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "CapEff":
			eff, err = strconv.ParseUint(v, 16, 64)
		case "CapBnd":
			bnd, err = strconv.ParseUint(v, 16, 64)
		case "NoNewPrivs":
			nnp = v == "1"
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("/proc/%s/status %s: %w", pid, k, err)
		}
	}
	return eff, bnd, nnp, sc.Err()
}

// Restrict makes this process run with exactly the capabilities in keep and NoNewPrivs.
// When it does not yet, it restricts a locked thread and executes the program again
// (it does not return then) with env as its environment; keepFDs are descriptors that
// must survive the exec. On the second run it finds the sets in place and returns nil.
// An agent whose starter confined the thread it was forked from (ConfineThread) finds
// them in place at once and pays for no second start.
func Restrict(keep uint64, env []string, keepFDs ...int) error {
	eff, bnd, nnp, err := Current()
	if err != nil {
		return err
	}
	if nnp && bnd == keep && eff == keep {
		return nil
	}
	runtime.LockOSThread() // never unlocked: this thread execs or the process fails
	if err := ConfineThread(keep); err != nil {
		return err
	}
	for _, fd := range keepFDs {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keep descriptor %d: %w", fd, err)
		}
	}
	return syscall.Exec("/proc/self/exe", os.Args, env)
}

// ConfineThread gives the calling thread NoNewPrivs and exactly the capabilities in keep
// (bounding, inheritable, permitted and effective sets). It cannot be undone: the caller
// has locked its goroutine to the thread and never unlocks it, so that the thread ends
// with the goroutine. A program started from that thread runs with those capabilities
// from its first instruction (for uid 0 the kernel grants at exec the bounding set,
// intersected under NoNewPrivs with what the thread had).
func ConfineThread(keep uint64) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	for c := 0; c <= last; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep), Inheritable: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32), Inheritable: uint32(keep >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	return nil
}

// ForAgent is what an agent started with args (`agent ROLE [flags]`, its command line
// without the program) keeps: restrict is false for the agents that keep every capability
// (the supervisor and the controller, which enter namespaces, in the root one); else keep is
// the set its role needs. Agents and their starters both ask it, so that the sets a starter
// confines an agent to are the ones the agent asks for.
func ForAgent(args []string) (keep uint64, restrict bool) {
	if len(args) < 2 || args[0] != "agent" {
		return 0, false
	}
	switch args[1] {
	case "pod":
		// The pod echo: none, or CAP_NET_BIND_SERVICE for a port below 1024.
		for i, a := range args {
			v, ok := strings.CutPrefix(a, "--port=")
			if !ok && a == "--port" && i+1 < len(args) {
				v, ok = args[i+1], true
			}
			if !ok {
				continue
			}
			num, _, _ := strings.Cut(v, "/")
			if n, err := strconv.Atoi(num); err == nil && n > 0 && n < 1024 {
				keep = Mask(NetBindService)
			}
		}
		return keep, true
	case "ingress", "dns":
		return Mask(NetBindService), true
	case "kube-proxy", "lb":
		return Mask(NetAdmin, NetRaw), true
	}
	return 0, false
}

// lastCap is the highest capability number the kernel knows (read once: a starter confines
// a thread for each of a big lab's thousand pods).
var lastCap = sync.OnceValues(func() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
})
