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

// Current reads the effective and bounding sets and NoNewPrivs of this process.
func Current() (eff, bnd uint64, nnp bool, err error) {
	return Of("self")
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
// (it does not return then); keepFDs are descriptors that must survive the exec. On the
// second run it finds the sets in place and returns nil.
func Restrict(keep uint64, keepFDs ...int) error {
	eff, bnd, nnp, err := Current()
	if err != nil {
		return err
	}
	if nnp && bnd == keep && eff == keep {
		return nil
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	runtime.LockOSThread() // never unlocked: this thread execs or the process fails
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
	for _, fd := range keepFDs {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keep descriptor %d: %w", fd, err)
		}
	}
	return syscall.Exec("/proc/self/exe", os.Args, os.Environ())
}

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
